"""Django admin for tenant admins.

A tenant admin (staff user with an admin flag on a tenant membership) sees and edits only their
own tenants' rows; every queryset, choice list and save is scoped here. Superusers see all.
Sessions are read-only: they change only through the lifecycle.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.loader import render_to_string

from sessions_app import errors, selectors, services
from sessions_app.forms import AgentPolicyForm
from sessions_app.models import (
    Agent,
    AgentSession,
    ApiToken,
    Initiative,
    Membership,
    PolicyChange,
    Project,
    RuntimeCommand,
    Tenant,
    TenantMembership,
)

User = get_user_model()


def _admin_tenants(request: HttpRequest) -> frozenset[int]:
    return selectors.access_for(request.user).admin_tenant_ids


def _is_scoped_admin(request: HttpRequest) -> bool:
    user: Any = request.user
    return bool(user.is_active and user.is_staff and (user.is_superuser or _admin_tenants(request)))


class TenantScopedAdmin(admin.ModelAdmin[Any]):
    """Scopes rows, foreign-key choices and writes to the viewer's admin tenants."""

    tenant_path = "tenant_id"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        qs = super().get_queryset(request)
        if getattr(request.user, "is_superuser", False):
            return qs
        return qs.filter(**{f"{self.tenant_path}__in": _admin_tenants(request)})

    def has_module_permission(self, request: HttpRequest) -> bool:
        return _is_scoped_admin(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _is_scoped_admin(request) and self._owns(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _is_scoped_admin(request) and self._owns(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return _is_scoped_admin(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _is_scoped_admin(request) and self._owns(request, obj)

    def _owns(self, request: HttpRequest, obj: Any) -> bool:
        if obj is None or getattr(request.user, "is_superuser", False):
            return True
        tenant_id = obj
        for part in self.tenant_path.split("__"):
            tenant_id = getattr(tenant_id, part)
        return tenant_id in _admin_tenants(request)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if not getattr(request.user, "is_superuser", False):
            tenants = _admin_tenants(request)
            model = db_field.related_model
            if model is Tenant:
                kwargs["queryset"] = Tenant.objects.filter(pk__in=tenants)
            elif model is User:
                kwargs["queryset"] = User.objects.filter(
                    tenant_memberships__tenant_id__in=tenants
                ).distinct()
            elif hasattr(model, "tenant_id"):
                kwargs["queryset"] = model._default_manager.filter(tenant_id__in=tenants)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if not getattr(request.user, "is_superuser", False) and hasattr(
            db_field.related_model, "tenant_id"
        ):
            kwargs["queryset"] = db_field.related_model._default_manager.filter(
                tenant_id__in=_admin_tenants(request)
            )
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not self._owns(request, obj):
            raise PermissionDenied("That row belongs to another workspace.")
        super().save_model(request, obj, form, change)


@admin.register(Tenant)
class TenantAdmin(TenantScopedAdmin):
    tenant_path = "pk"
    list_display = ("name", "slug", "created_at")
    prepopulated_fields = {"slug": ("name",)}

    def has_add_permission(self, request: HttpRequest) -> bool:
        return bool(getattr(request.user, "is_superuser", False))

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(getattr(request.user, "is_superuser", False))

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        qs = admin.ModelAdmin.get_queryset(self, request)
        if getattr(request.user, "is_superuser", False):
            return qs
        return qs.filter(pk__in=_admin_tenants(request))


@admin.register(TenantMembership)
class TenantMembershipAdmin(TenantScopedAdmin):
    list_display = ("user", "tenant", "is_admin")
    list_filter = ("is_admin",)


@admin.register(Project)
class ProjectAdmin(TenantScopedAdmin):
    list_display = ("name", "slug", "tenant")
    prepopulated_fields = {"slug": ("name",)}


@admin.register(Membership)
class MembershipAdmin(TenantScopedAdmin):
    list_display = ("user", "project", "role", "tenant")
    list_filter = ("role",)


@admin.register(Agent)
class AgentAdmin(TenantScopedAdmin):
    # The policy form validates the policy fields; save_model saves them through the service.
    form = AgentPolicyForm
    list_display = (
        "name",
        "project",
        "owner",
        "default_model",
        "idle_timeout_seconds",
        "max_duration_seconds",
        "max_concurrent_sessions_per_user",
        "retention_days",
    )
    fieldsets = (
        (
            None,
            {"fields": ("tenant", "project", "owner", "name", "default_model", "allowed_models")},
        ),
        (
            "Session policy",
            {
                "fields": (
                    "idle_timeout_seconds",
                    "max_duration_seconds",
                    "max_concurrent_sessions_per_user",
                    "auto_archive_days",
                    "retention_days",
                    "allow_model_override",
                )
            },
        ),
    )

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change:
            if not self._owns(request, obj):
                raise PermissionDenied("That row belongs to another workspace.")
            # Policy first: the service reads the old values from the database to audit them,
            # which it could not do once obj.save() below had written the new ones.
            try:
                services.agent_policy_update(
                    agent=obj, user=request.user, changes=form.policy_changes()
                )
            except errors.NotAllowed as exc:
                raise PermissionDenied(str(exc)) from exc
        super().save_model(request, obj, form, change)


@admin.register(PolicyChange)
class PolicyChangeAdmin(TenantScopedAdmin):
    """The policy audit trail: read-only, never deleted by hand."""

    list_display = ("agent", "changed_by", "created_at", "changes")
    # RelatedOnly: the choices come from the (tenant-scoped) rows, not from every agent.
    list_filter = (("agent", admin.RelatedOnlyFieldListFilter),)
    list_select_related = ("agent", "changed_by")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Initiative)
class InitiativeAdmin(TenantScopedAdmin):
    list_display = ("name", "tenant")


@admin.register(ApiToken)
class ApiTokenAdmin(TenantScopedAdmin):
    list_display = ("name", "kind", "prefix", "user", "created_at", "last_used_at", "revoked_at")
    list_filter = ("kind",)
    fields = ("tenant", "kind", "name", "user", "agents", "prefix", "created_at", "revoked_at")
    readonly_fields = ("prefix", "created_at")
    filter_horizontal = ("agents",)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        if not self._owns(request, obj):
            raise PermissionDenied("That row belongs to another workspace.")
        token, raw = services.token_create(
            tenant=obj.tenant,
            kind=obj.kind,
            name=obj.name,
            user=obj.user,
            agents=form.cleaned_data.get("agents") or [],
        )
        obj.pk, obj.prefix, obj.token_hash, obj.created_at = (
            token.pk,
            token.prefix,
            token.token_hash,
            token.created_at,
        )
        self.message_user(
            request,
            f"Token created. Copy it now; it will not be shown again: {raw}",
            messages.WARNING,
        )


class ReadOnlyTenantAdmin(TenantScopedAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AgentSession)
class AgentSessionAdmin(ReadOnlyTenantAdmin):
    list_display = ("title", "kind", "status", "agent", "owner", "last_activity_at")
    list_filter = ("kind", "status_group", "status")
    search_fields = ("title", "short_id")
    list_select_related = ("agent", "owner")
    readonly_fields = ("transcript",)
    TRANSCRIPT_LIMIT = 500

    @admin.display(description="Transcript (latest events)")
    def transcript(self, obj: AgentSession) -> str:
        events = list(obj.events.order_by("-seq")[: self.TRANSCRIPT_LIMIT])[::-1]
        return render_to_string(
            "sessions_app/admin_transcript.html",
            {"events": events, "total": obj.last_seq, "limit": self.TRANSCRIPT_LIMIT},
        )

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        base = [f.name for f in AgentSession._meta.concrete_fields]
        return [*base, "transcript"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.get_fields(request, obj)


@admin.register(RuntimeCommand)
class RuntimeCommandAdmin(ReadOnlyTenantAdmin):
    list_display = ("kind", "session", "status", "created_at", "acked_at")
    list_filter = ("kind", "status")

"""Workspaces, projects, memberships, agents, policy changes and initiatives."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest

from sessions_app import errors, services
from sessions_app.admin.scoped import TenantScopedAdmin, admin_tenants
from sessions_app.forms import AgentPolicyForm
from sessions_app.models import (
    Agent,
    AgentSession,
    Initiative,
    Membership,
    PolicyChange,
    Project,
    Tenant,
    TenantMembership,
)


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
        return qs.filter(pk__in=admin_tenants(request))


@admin.register(TenantMembership)
class TenantMembershipAdmin(TenantScopedAdmin):
    """Writes go through the access services: audited, and open sockets re-check at once.
    Removing a membership also removes the person's project roles and personal tokens there."""

    list_display = ("user", "tenant", "is_admin")
    list_filter = ("is_admin",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ("tenant", "user") if obj is not None else ()

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not self._owns(request, obj):
            raise PermissionDenied("That row belongs to another workspace.")
        saved = services.tenant_member_set(
            tenant=obj.tenant, user=obj.user, is_admin=obj.is_admin, by=request.user
        )
        obj.pk = saved.pk

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        services.membership_remove(membership=obj, by=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for membership in queryset:
            services.membership_remove(membership=membership, by=request.user)


@admin.register(Project)
class ProjectAdmin(TenantScopedAdmin):
    list_display = ("name", "slug", "tenant")
    prepopulated_fields = {"slug": ("name",)}

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # As for agents: deleting would take sessions and roles with it around the services.
        if obj is not None and obj.sessions.exists():
            return False
        return super().has_delete_permission(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        if AgentSession.objects.filter(project__in=queryset).exists():
            raise PermissionDenied("Projects with sessions cannot be deleted here.")
        super().delete_queryset(request, queryset)


@admin.register(Membership)
class MembershipAdmin(TenantScopedAdmin):
    """Project roles, written through the access services (audited, re-checked live)."""

    list_display = ("user", "project", "role", "tenant")
    list_filter = ("role",)
    fields = ("project", "user", "role")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ("project", "user") if obj is not None else ()

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        obj.tenant_id = obj.project.tenant_id
        if not self._owns(request, obj):
            raise PermissionDenied("That row belongs to another workspace.")
        try:
            saved = services.project_member_set(
                project=obj.project, user=obj.user, role=obj.role, by=request.user
            )
        except errors.InvalidInput as exc:
            raise PermissionDenied(str(exc)) from exc
        obj.pk = saved.pk

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        services.project_member_remove(membership=obj, by=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for membership in queryset:
            services.project_member_remove(membership=membership, by=request.user)


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
        old_owner_id = None
        if change:
            if not self._owns(request, obj):
                raise PermissionDenied("That row belongs to another workspace.")
            old_owner_id = Agent.objects.values_list("owner_id", flat=True).get(pk=obj.pk)
            # Policy first: the service reads the old values from the database to audit them,
            # which it could not do once obj.save() below had written the new ones.
            try:
                services.agent_policy_update(
                    agent=obj, user=request.user, changes=form.policy_changes()
                )
            except errors.NotAllowed as exc:
                raise PermissionDenied(str(exc)) from exc
        super().save_model(request, obj, form, change)
        if old_owner_id is not None:
            # The old and the new owner see different sessions from now on.
            services.agent_owner_changed(agent=obj, old_owner_id=old_owner_id, by=request.user)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Deleting an agent would delete its sessions around the services (no live removal,
        # no audit): an agent with sessions is kept.
        if obj is not None and obj.sessions.exists():
            return False
        return super().has_delete_permission(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        if AgentSession.objects.filter(agent__in=queryset).exists():
            raise PermissionDenied("Agents with sessions cannot be deleted here.")
        super().delete_queryset(request, queryset)


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

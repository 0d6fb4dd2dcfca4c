"""API tokens in the admin."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest

from sessions_app import selectors, services
from sessions_app.admin.scoped import TenantScopedAdmin
from sessions_app.models import (
    ApiToken,
    TenantMembership,
    TokenKind,
)


class ApiTokenAddForm(forms.ModelForm[ApiToken]):
    """A token is always minted by, and (when personal) for, the person filling in the form:
    nobody mints a personal token that acts as someone else."""

    request_user: Any = None

    class Meta:
        model = ApiToken
        fields = ("tenant", "kind", "name", "agents")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        kind, tenant, agents = cleaned.get("kind"), cleaned.get("tenant"), cleaned.get("agents")
        if kind == TokenKind.RUNTIME and not agents:
            self.add_error("agents", "A runtime token needs at least one agent.")
        if kind == TokenKind.PERSONAL and agents:
            self.add_error("agents", "A personal token acts as you, not for agents.")
        if (
            kind == TokenKind.PERSONAL
            and tenant is not None
            and not TenantMembership.objects.filter(tenant=tenant, user=self.request_user).exists()
        ):
            self.add_error("tenant", "You can mint a personal token only where you are a member.")
        if (
            kind == TokenKind.RUNTIME
            and tenant is not None
            and not selectors.is_tenant_admin(self.request_user, tenant.pk)
        ):
            self.add_error("tenant", "Only the workspace's admins make runtime tokens.")
        return cleaned


@admin.register(ApiToken)
class ApiTokenAdmin(TenantScopedAdmin):
    """Tenant admins list and revoke their workspace's tokens and make runtime tokens; anyone
    here mints personal tokens for themselves only. No secret is stored, so none is shown after
    the one message at creation."""

    list_display = (
        "name",
        "kind",
        "prefix",
        "user",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    list_filter = ("kind",)
    list_select_related = ("user", "created_by")
    filter_horizontal = ("agents",)
    actions = ("revoke",)
    CHANGE_FIELDS = (
        "tenant",
        "kind",
        "name",
        "user",
        "created_by",
        "agents",
        "prefix",
        "created_at",
        "last_used_at",
        "revoked_at",
    )

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kw: Any
    ) -> Any:
        if obj is None:
            kw["form"] = ApiTokenAddForm
        # A fresh class per call (modelform_factory), so this is per request.
        form: Any = super().get_form(request, obj, change=change, **kw)
        form.request_user = request.user
        return form

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ("tenant", "kind", "name", "agents") if obj is None else self.CHANGE_FIELDS

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # Only the name changes in place; a token with other rights is a new token.
        return () if obj is None else tuple(f for f in self.CHANGE_FIELDS if f != "name")

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change:
            ApiToken.objects.filter(pk=obj.pk).update(name=obj.name)
            return
        if not self._owns(request, obj) and obj.kind == TokenKind.RUNTIME:
            raise PermissionDenied("That row belongs to another workspace.")
        token, raw = services.token_create(
            tenant=obj.tenant,
            kind=obj.kind,
            name=obj.name,
            user=request.user,
            created_by=request.user,
            agents=form.cleaned_data.get("agents") or [],
        )
        obj.pk, obj.user, obj.prefix, obj.token_hash, obj.created_at = (
            token.pk,
            token.user,
            token.prefix,
            token.token_hash,
            token.created_at,
        )
        self.message_user(
            request,
            f"Token created. Copy it now; it will not be shown again: {raw}",
            messages.WARNING,
        )

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # token_create set the agents; a change never touches them.
        return

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        done = sum(services.token_revoke(token=t, by=request.user) for t in queryset)
        self.message_user(request, f"{done} token(s) revoked.", messages.SUCCESS)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        services.token_delete(token=obj, by=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for token in queryset:
            services.token_delete(token=token, by=request.user)

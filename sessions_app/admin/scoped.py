"""The tenant scoping every admin page shares: rows, choices and writes limited to the
viewer's admin workspaces (superusers see all)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.db.models.constants import LOOKUP_SEP
from django.http import HttpRequest

from sessions_app import selectors
from sessions_app.models import (
    Tenant,
)

User = get_user_model()


def admin_tenants(request: HttpRequest) -> frozenset[int]:
    return selectors.access_for(request.user).admin_tenant_ids


def is_scoped_admin(request: HttpRequest) -> bool:
    user: Any = request.user
    return bool(user.is_active and user.is_staff and (user.is_superuser or admin_tenants(request)))


class TenantScopedAdmin(admin.ModelAdmin[Any]):
    """Scopes rows, foreign-key choices and writes to the viewer's admin tenants."""

    tenant_path = "tenant_id"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        qs = super().get_queryset(request)
        if getattr(request.user, "is_superuser", False):
            return qs
        return qs.filter(**{f"{self.tenant_path}__in": admin_tenants(request)})

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        """Changelist query parameters: only the fields this changelist offers filters for,
        and no regular expressions. Django allows any lookup on the model's own fields, and a
        hand-written one such as `title__regex=(` fails in the database (a 500); refused here
        it is a 400."""
        parts = lookup.split(LOOKUP_SEP)
        offered: set[Any] = {self.date_hierarchy}
        for item in self.get_list_filter(request) if request is not None else self.list_filter:
            if isinstance(item, str):
                offered.add(item)
            elif isinstance(item, list | tuple):
                offered.add(item[0])
            else:
                offered.add(getattr(item, "parameter_name", None))
        if parts[0] not in offered or {"regex", "iregex"} & set(parts):
            return False
        return super().lookup_allowed(lookup, value, request)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_scoped_admin(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_scoped_admin(request) and self._owns(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_scoped_admin(request) and self._owns(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return is_scoped_admin(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_scoped_admin(request) and self._owns(request, obj)

    def _owns(self, request: HttpRequest, obj: Any) -> bool:
        if obj is None or getattr(request.user, "is_superuser", False):
            return True
        tenant_id = obj
        for part in self.tenant_path.split("__"):
            tenant_id = getattr(tenant_id, part)
        return tenant_id in admin_tenants(request)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if not getattr(request.user, "is_superuser", False):
            tenants = admin_tenants(request)
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
                tenant_id__in=admin_tenants(request)
            )
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not self._owns(request, obj):
            raise PermissionDenied("That row belongs to another workspace.")
        super().save_model(request, obj, form, change)


class ReadOnlyTenantAdmin(TenantScopedAdmin):
    """Sessions, commands and audit rows change only through the services (lifecycle, live
    removal, audit), which the admin's generic writes would go around."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

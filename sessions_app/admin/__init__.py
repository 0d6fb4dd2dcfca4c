"""Django admin for tenant admins.

A tenant admin (staff user with an admin flag on a tenant membership) sees and edits only their
own tenants' rows; every queryset, choice list and save is scoped here. Superusers see all.
Sessions, commands and audit rows are read-only: they change only through the services.
Memberships, roles, agent owners and tokens are written through the access services, so each
change is audited and open sockets re-check at once.
"""

from __future__ import annotations

# Importing the modules registers their ModelAdmins.
from sessions_app.admin import sessions, tokens, workspace
from sessions_app.admin.scoped import ReadOnlyTenantAdmin, TenantScopedAdmin

__all__ = ["ReadOnlyTenantAdmin", "TenantScopedAdmin", "sessions", "tokens", "workspace"]

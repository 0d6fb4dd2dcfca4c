"""Who belongs where: workspace and project memberships and agent ownership.

Tenant membership is the root of access (DESIGN 7). Every change here writes an `AccessChange`
audit row and, after commit, tells the live views whose access changed, so open sockets
re-check within seconds instead of keeping the rights they had when they connected.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from sessions_app import hooks
from sessions_app.errors import InvalidInput
from sessions_app.models import (
    AccessChange,
    Agent,
    ApiToken,
    Membership,
    Project,
    Role,
    Tenant,
    TenantMembership,
    TokenKind,
)

Action = AccessChange.Action


def access_audit(
    *, tenant_id: int, action: str, subject: Any, by: Any, **details: Any
) -> AccessChange:
    return AccessChange.objects.create(
        tenant_id=tenant_id,
        action=action,
        subject_id=getattr(subject, "pk", subject),
        changed_by_id=getattr(by, "pk", by),
        details=details,
    )


def tenant_member_set(*, tenant: Tenant, user: Any, is_admin: bool, by: Any) -> TenantMembership:
    """Add a person to a workspace, or change whether they are its admin."""
    with transaction.atomic():
        membership, created = TenantMembership.objects.select_for_update().get_or_create(
            tenant=tenant, user=user, defaults={"is_admin": is_admin}
        )
        if not created and membership.is_admin == is_admin:
            return membership
        old = None if created else membership.is_admin
        if not created:
            TenantMembership.objects.filter(pk=membership.pk).update(is_admin=is_admin)
            membership.is_admin = is_admin
        access_audit(
            tenant_id=tenant.pk,
            action=Action.TENANT_MEMBER_SET,
            subject=user,
            by=by,
            is_admin=[old, is_admin],
        )
        hooks.access_changed([user.pk])
    return membership


def membership_remove(*, membership: TenantMembership, by: Any) -> None:
    """Remove a person from a workspace. Their project roles there are deleted and their
    personal tokens there revoked in the same transaction, so nothing they held in the
    workspace outlives the membership; one audit row says what went."""
    now = timezone.now()
    with transaction.atomic():
        roles = Membership.objects.filter(
            tenant_id=membership.tenant_id, user_id=membership.user_id
        )
        removed_roles = dict(roles.values_list("project__name", "role"))
        roles.delete()
        tokens = ApiToken.objects.filter(
            tenant_id=membership.tenant_id,
            user_id=membership.user_id,
            kind=TokenKind.PERSONAL,
            revoked_at__isnull=True,
        )
        revoked = list(tokens.values_list("pk", "prefix"))
        tokens.update(revoked_at=now)
        deleted, _ = TenantMembership.objects.filter(pk=membership.pk).delete()
        if not deleted and not removed_roles and not revoked:
            return
        access_audit(
            tenant_id=membership.tenant_id,
            action=Action.TENANT_MEMBER_REMOVED,
            subject=membership.user_id,
            by=by,
            was_admin=membership.is_admin,
            project_roles=removed_roles,
            tokens_revoked=[prefix for _, prefix in revoked],
        )
        hooks.access_changed([membership.user_id])
        hooks.tokens_changed(pk for pk, _ in revoked)


def project_member_set(*, project: Project, user: Any, role: int, by: Any) -> Membership:
    """Give a workspace member a role on a project, or change it."""
    if role not in Role.values:
        raise InvalidInput("role", f"must be one of {', '.join(map(str, Role.values))}")
    if not TenantMembership.objects.filter(tenant_id=project.tenant_id, user=user).exists():
        raise InvalidInput("user", f"{user} is not a member of this workspace")
    with transaction.atomic():
        membership, created = Membership.objects.select_for_update().get_or_create(
            project=project, user=user, defaults={"tenant_id": project.tenant_id, "role": role}
        )
        if not created and membership.role == role:
            return membership
        old = None if created else membership.role
        if not created:
            Membership.objects.filter(pk=membership.pk).update(role=role)
            membership.role = role
        access_audit(
            tenant_id=project.tenant_id,
            action=Action.PROJECT_ROLE_SET,
            subject=user,
            by=by,
            project=project.name,
            role=[old, role],
        )
        hooks.access_changed([user.pk])
    return membership


def project_member_remove(*, membership: Membership, by: Any) -> None:
    with transaction.atomic():
        deleted, _ = Membership.objects.filter(pk=membership.pk).delete()
        if not deleted:
            return
        access_audit(
            tenant_id=membership.tenant_id,
            action=Action.PROJECT_ROLE_REMOVED,
            subject=membership.user_id,
            by=by,
            project=Project.objects.filter(pk=membership.project_id)
            .values_list("name", flat=True)
            .first(),
            role=membership.role,
        )
        hooks.access_changed([membership.user_id])


def agent_owner_changed(*, agent: Agent, old_owner_id: int, by: Any) -> None:
    """Record that an agent changed hands (the caller saved it): the old and the new owner see
    different sessions now."""
    if old_owner_id == agent.owner_id:
        return
    with transaction.atomic():
        access_audit(
            tenant_id=agent.tenant_id,
            action=Action.AGENT_OWNER_CHANGED,
            subject=agent.owner_id,
            by=by,
            agent=agent.name,
            owner=[old_owner_id, agent.owner_id],
        )
        hooks.access_changed([old_owner_id, agent.owner_id])

"""Who may see and act on what (DESIGN.md section 7): as SQL for queries and as a function of
plain values for live pushes, from one set of grants."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Q, QuerySet

from sessions_app.models import (
    Agent,
    AgentSession,
    Membership,
    Role,
    TenantMembership,
)
from sessions_app.states import Kind

AnyUser = AbstractBaseUser | AnonymousUser


@dataclass(frozen=True)
class Access:
    """What a user's memberships grant. Cached on the user object for the length of a request;
    anything that outlives a request (a socket) asks for `access_for(user, fresh=True)` again
    whenever access may have changed."""

    user_id: int | None
    superuser: bool
    tenant_ids: frozenset[int]
    admin_tenant_ids: frozenset[int]
    developer_project_ids: frozenset[int]
    maintainer_project_ids: frozenset[int]


def access_for(user: Any, *, fresh: bool = False) -> Access:
    cached = getattr(user, "_scc_access", None)
    if isinstance(cached, Access) and not fresh:
        return cached
    if not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", True):
        access = Access(None, False, frozenset(), frozenset(), frozenset(), frozenset())
    else:
        tenant_rows = list(
            TenantMembership.objects.filter(user=user).values_list("tenant_id", "is_admin")
        )
        # Tenant membership is the root of access: a project role left behind in a workspace
        # the person no longer belongs to grants nothing.
        project_rows = list(
            Membership.objects.filter(
                user=user,
                role__gte=Role.DEVELOPER,
                tenant_id__in=[t for t, _ in tenant_rows],
            ).values_list("project_id", "role")
        )
        access = Access(
            user_id=user.pk,
            superuser=bool(user.is_superuser),
            tenant_ids=frozenset(t for t, _ in tenant_rows),
            admin_tenant_ids=frozenset(t for t, admin in tenant_rows if admin),
            developer_project_ids=frozenset(p for p, _ in project_rows),
            maintainer_project_ids=frozenset(p for p, r in project_rows if r >= Role.MAINTAINER),
        )
    user._scc_access = access
    return access


def use_access(user: Any, access: Access) -> None:
    """Let `user` answer `access_for` with `access`, read for another object of the same person
    (sockets of one person reconnecting together share one read)."""
    if access.user_id not in (None, user.pk):
        raise ValueError("an access is only ever used for the person it was read for")
    user._scc_access = access


def _grants_q(access: Access, project_ids: frozenset[int]) -> Q:
    if access.superuser:
        return Q()
    if access.user_id is None or not access.tenant_ids:
        return Q(pk__in=[])
    q = Q(owner_id=access.user_id) | Q(agent__owner_id=access.user_id)
    if access.admin_tenant_ids:
        q |= Q(tenant_id__in=access.admin_tenant_ids)
    if project_ids:
        # Chats are private to their owner, the agent owner and tenant admins.
        q |= Q(project_id__in=project_ids) & ~Q(kind=Kind.CHAT)
    # Owning a session or an agent grants nothing in a workspace one has left.
    return Q(tenant_id__in=access.tenant_ids) & q


def visibility_q(access: Access) -> Q:
    """`may_view` as SQL."""
    return _grants_q(access, access.developer_project_ids)


def actable_q(access: Access) -> Q:
    """`may_act` as SQL."""
    return _grants_q(access, access.maintainer_project_ids)


def sessions_visible_to(user: Any) -> QuerySet[AgentSession]:
    return AgentSession.objects.filter(visibility_q(access_for(user)))


def _grants(
    a: Access,
    project_ids: frozenset[int],
    *,
    owner_id: int,
    agent_owner_id: int,
    tenant_id: int,
    project_id: int,
    kind: str,
) -> bool:
    if a.superuser:
        return True
    if a.user_id is None or tenant_id not in a.tenant_ids:
        return False
    return (
        owner_id == a.user_id
        or agent_owner_id == a.user_id
        or tenant_id in a.admin_tenant_ids
        # Chats are private to their owner, the agent owner and tenant admins.
        or (kind != Kind.CHAT and project_id in project_ids)
    )


def may_view(a: Access, **facts: Any) -> bool:
    """DESIGN 7 on plain values, so live pushes apply the same rule as queries: project
    developers and up see the project's flow runs and background tasks."""
    return _grants(a, a.developer_project_ids, **facts)


def may_act(a: Access, **facts: Any) -> bool:
    """End, pause, resume, stop, cancel, transfer, delete, approve: as viewing, but from
    project maintainer up."""
    return _grants(a, a.maintainer_project_ids, **facts)


SESSION_FACTS = ("owner_id", "agent_owner_id", "tenant_id", "project_id", "kind")


def session_facts(session: AgentSession) -> dict[str, Any]:
    return {
        "owner_id": session.owner_id,
        "agent_owner_id": session.agent.owner_id,
        "tenant_id": session.tenant_id,
        "project_id": session.project_id,
        "kind": session.kind,
    }


def can_view(user: Any, session: AgentSession) -> bool:
    return may_view(access_for(user), **session_facts(session))


def can_act(user: Any, session: AgentSession) -> bool:
    return may_act(access_for(user), **session_facts(session))


def is_tenant_admin(user: Any, tenant_id: int) -> bool:
    a = access_for(user)
    return a.superuser or tenant_id in a.admin_tenant_ids


def can_edit_policy(user: Any, agent: Agent) -> bool:
    """Tenant admins of the agent's workspace and the agent's owner may change its policy."""
    access = access_for(user)
    if access.user_id is None:
        return False
    return (
        access.superuser
        or agent.tenant_id in access.admin_tenant_ids
        or (agent.owner_id == access.user_id and agent.tenant_id in access.tenant_ids)
    )

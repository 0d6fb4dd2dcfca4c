"""Small factories for the domain; tests read better with explicit arguments than fixtures."""

from __future__ import annotations

import itertools
from typing import Any

from django.contrib.auth import get_user_model

from sessions_app import lifecycle, services, states
from sessions_app.models import (
    Agent,
    AgentSession,
    Initiative,
    Membership,
    Project,
    Role,
    Tenant,
    TenantMembership,
)

User = get_user_model()
_n = itertools.count(1)


def make_tenant(name: str | None = None) -> Tenant:
    i = next(_n)
    return Tenant.objects.create(name=name or f"Tenant {i}", slug=f"tenant-{i}")


def make_user(
    username: str | None = None, *, tenant: Tenant | None = None, admin: bool = False, **kw: Any
) -> Any:
    user = User.objects.create_user(
        username=username or f"user{next(_n)}", password="pw-123456789", **kw
    )
    if tenant is not None:
        TenantMembership.objects.create(tenant=tenant, user=user, is_admin=admin)
    return user


def make_project(tenant: Tenant, name: str | None = None) -> Project:
    i = next(_n)
    return Project.objects.create(tenant=tenant, name=name or f"Project {i}", slug=f"project-{i}")


def add_member(project: Project, user: Any, role: int = Role.DEVELOPER) -> Membership:
    TenantMembership.objects.get_or_create(tenant=project.tenant, user=user)
    return Membership.objects.create(tenant=project.tenant, project=project, user=user, role=role)


def make_agent(project: Project, owner: Any, **kw: Any) -> Agent:
    kw.setdefault("name", f"agent-{next(_n)}")
    return Agent.objects.create(tenant=project.tenant, project=project, owner=owner, **kw)


def make_initiative(tenant: Tenant, name: str | None = None) -> Initiative:
    return Initiative.objects.create(tenant=tenant, name=name or f"Initiative {next(_n)}")


def make_session(
    agent: Agent,
    owner: Any,
    kind: str = states.Kind.FLOW_RUN,
    *,
    status: str | None = None,
    **kw: Any,
) -> AgentSession:
    """Create through the service (so invariants hold), then walk to `status` if asked."""
    session = services.session_create(agent=agent, owner=owner, kind=kind, actor="test", **kw)
    if status and status != session.status:
        walk_to(session, status)
    return session


_PATHS: dict[str, list[str]] = {
    # A legal route from the initial status to each status, per kind.
    "flow_run": ["pending", "running"],
    "background_task": ["queued", "provisioning", "running"],
    "chat": ["running"],
}


def walk_to(session: AgentSession, status: str) -> AgentSession:
    route = list(_PATHS[session.kind])
    if status in route:
        route = route[: route.index(status) + 1]
    elif status in ("stopped",):
        route += ["stopping", "stopped"]
    else:
        route.append(status)
    for step in route[1:]:
        if session.status != step:
            lifecycle.transition(session, step, actor="test")
    return session

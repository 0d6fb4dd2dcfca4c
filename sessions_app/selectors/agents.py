"""Agents and their policies as a person sees them."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from sessions_app.errors import NotAllowed, NotFound
from sessions_app.models import (
    Agent,
    Initiative,
    Membership,
    PolicyChange,
    Role,
    TenantMembership,
)
from sessions_app.selectors.access import access_for, can_edit_policy


def agent_for_policy_edit(user: Any, agent_id: int) -> Agent:
    """The agent if the viewer may edit its policy. Project members who may not get 403 (they
    know the agent: its sessions are in their list); everyone else gets 404, as if it did not
    exist, which is what another workspace's agent must look like."""
    agent = Agent.objects.select_related("project", "owner").filter(pk=agent_id).first()
    if agent is None:
        raise NotFound(f"agent {agent_id}")
    if can_edit_policy(user, agent):
        return agent
    access = access_for(user)
    if (
        access.user_id is not None
        and agent.tenant_id in access.tenant_ids
        and Membership.objects.filter(project_id=agent.project_id, user_id=access.user_id).exists()
    ):
        raise NotAllowed("Only tenant admins and the agent's owner may change its policy.")
    raise NotFound(f"agent {agent_id}")


def policy_history(agent: Agent, *, limit: int = 20) -> list[PolicyChange]:
    return list(PolicyChange.objects.filter(agent=agent).select_related("changed_by")[:limit])


def agents_usable_by(user: Any) -> QuerySet[Agent]:
    """The agents a person may start sessions on (and hand sessions to): the agent's owner,
    the workspace's admins, and reporters and up on the agent's project; always only as a
    member of the agent's workspace (tenant membership is the root of access)."""
    if not getattr(user, "is_authenticated", False):
        return Agent.objects.none()
    tenants = TenantMembership.objects.filter(user=user)
    admin_of = tenants.filter(is_admin=True).values("tenant_id")
    projects = Membership.objects.filter(user=user, role__gte=Role.REPORTER).values("project_id")
    return (
        Agent.objects.filter(tenant_id__in=tenants.values("tenant_id"))
        .filter(Q(owner=user) | Q(tenant_id__in=admin_of) | Q(project_id__in=projects))
        .select_related("project")
        .order_by("name", "pk")
    )


def initiatives_of(user: Any) -> QuerySet[Initiative]:
    """The initiatives of the person's workspaces (a new session may be tied to one)."""
    if not getattr(user, "is_authenticated", False):
        return Initiative.objects.none()
    tenants = TenantMembership.objects.filter(user=user).values("tenant_id")
    return Initiative.objects.filter(tenant_id__in=tenants).order_by("name", "pk")

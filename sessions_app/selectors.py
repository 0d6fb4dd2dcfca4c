"""Reads. Every query that returns sessions to a person starts from `sessions_visible_to`, so
the rules of DESIGN.md section 7 live in exactly one place."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Q, QuerySet
from django.utils import timezone

from sessions_app import states
from sessions_app.errors import InvalidCursor, NotAllowed, NotFound
from sessions_app.models import (
    Agent,
    AgentSession,
    ApiToken,
    CommandStatus,
    EventType,
    Initiative,
    Membership,
    PolicyChange,
    Project,
    Role,
    RuntimeCommand,
    SessionEvent,
    TenantMembership,
    TokenKind,
)
from sessions_app.states import Kind

AnyUser = AbstractBaseUser | AnonymousUser


@dataclass(frozen=True)
class Access:
    """What a user's memberships grant; computed once per request and cached on the user."""

    user_id: int | None
    superuser: bool
    tenant_ids: frozenset[int]
    admin_tenant_ids: frozenset[int]
    developer_project_ids: frozenset[int]
    maintainer_project_ids: frozenset[int]


def access_for(user: Any) -> Access:
    cached = getattr(user, "_scc_access", None)
    if cached is not None:
        return cached
    if not getattr(user, "is_authenticated", False):
        access = Access(None, False, frozenset(), frozenset(), frozenset(), frozenset())
    else:
        tenant_rows = list(
            TenantMembership.objects.filter(user=user).values_list("tenant_id", "is_admin")
        )
        project_rows = list(
            Membership.objects.filter(user=user, role__gte=Role.DEVELOPER).values_list(
                "project_id", "role"
            )
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


def visibility_q(access: Access) -> Q:
    if access.superuser:
        return Q()
    if access.user_id is None:
        return Q(pk__in=[])
    q = Q(owner_id=access.user_id) | Q(agent__owner_id=access.user_id)
    if access.admin_tenant_ids:
        q |= Q(tenant_id__in=access.admin_tenant_ids)
    if access.developer_project_ids:
        # Chats are private to their owner, the agent owner and tenant admins.
        q |= Q(project_id__in=access.developer_project_ids) & ~Q(kind=Kind.CHAT)
    return q


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
    if a.user_id is None:
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


def session_get_for_user(user: Any, session_id: Any) -> AgentSession:
    try:
        pk = uuid.UUID(str(session_id))
    except ValueError:
        raise NotFound(str(session_id)) from None
    session = (
        sessions_visible_to(user)
        .select_related("agent", "owner", "project", "initiative", "parent", "tenant")
        .filter(pk=pk)
        .first()
    )
    if session is None:
        raise NotFound(str(session_id))
    return session


# --- lists ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionFilter:
    owner: str = ""  # "" everyone, "me", or a user id
    kind: str = ""
    initiative: int | None = None
    group: str = ""
    agent: int | None = None
    project: int | None = None
    q: str = ""
    active_only: bool = False
    archived: bool = False


def active_now_q(now: datetime) -> Q:
    return Q(live=True) & (
        ~Q(kind=Kind.CHAT) | Q(last_activity_at__gte=now - states.ACTIVE_CHAT_WINDOW)
    )


def filtered_sessions(
    user: Any,
    flt: SessionFilter,
    *,
    now: datetime | None = None,
    base: QuerySet[AgentSession] | None = None,
) -> QuerySet[AgentSession]:
    """`base` replaces the visible set (an API token's scope); it must already be scoped."""
    now = now or timezone.now()
    qs = sessions_visible_to(user) if base is None else base
    qs = qs.filter(archived_at__isnull=not flt.archived)
    if flt.owner == "me":
        qs = qs.filter(owner_id=getattr(user, "pk", None))
    elif flt.owner:
        qs = qs.filter(owner_id=int(flt.owner)) if flt.owner.isdigit() else qs.none()
    if flt.kind:
        qs = qs.filter(kind=flt.kind)
    if flt.initiative is not None:
        qs = qs.filter(initiative_id=flt.initiative)
    if flt.group:
        qs = qs.filter(status_group=flt.group)
    if flt.agent is not None:
        qs = qs.filter(agent_id=flt.agent)
    if flt.project is not None:
        qs = qs.filter(project_id=flt.project)
    text = flt.q.strip()
    if text.startswith("#") and len(text) > 1:
        qs = qs.filter(short_id__startswith=text[1:9].lower())
    elif text:
        qs = qs.filter(title__icontains=text)
    if flt.active_only:
        qs = qs.filter(active_now_q(now))
    return qs


LIST_ORDER = ("-live", "-last_activity_at", "-id")


def encode_cursor(session: AgentSession) -> str:
    raw = json.dumps([session.live, session.last_activity_at.isoformat(), str(session.pk)])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[bool, datetime, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        live, ts, pk = json.loads(base64.urlsafe_b64decode(padded.encode()))
        parsed = datetime.fromisoformat(ts)
        if not isinstance(live, bool) or not isinstance(pk, str) or parsed.tzinfo is None:
            raise ValueError("bad cursor fields")
        return live, parsed, uuid.UUID(pk)
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError):
        raise InvalidCursor from None


def after_cursor_q(cursor: str) -> Q:
    """Keyset condition for rows strictly after the cursor in LIST_ORDER (no OFFSET)."""
    live, ts, pk = decode_cursor(cursor)
    later = Q(live=live, last_activity_at__lt=ts) | Q(live=live, last_activity_at=ts, id__lt=pk)
    if live:
        later |= Q(live=False)
    return later


@dataclass(frozen=True)
class Page:
    items: list[AgentSession]
    next_cursor: str | None


def session_page(
    user: Any,
    flt: SessionFilter,
    *,
    cursor: str | None = None,
    limit: int = 50,
    base: QuerySet[AgentSession] | None = None,
) -> Page:
    qs = filtered_sessions(user, flt, base=base)
    if cursor:
        qs = qs.filter(after_cursor_q(cursor))
    rows = list(
        qs.select_related("agent", "owner", "project", "initiative").order_by(*LIST_ORDER)[
            : limit + 1
        ]
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, encode_cursor(rows[-1]) if more and rows else None)


def active_now(user: Any, *, now: datetime | None = None) -> QuerySet[AgentSession]:
    now = now or timezone.now()
    return (
        sessions_visible_to(user)
        .filter(archived_at__isnull=True)
        .filter(active_now_q(now))
        .select_related("agent", "owner", "project", "initiative")
        .order_by(*LIST_ORDER)
    )


def recent(user: Any, *, now: datetime | None = None) -> QuerySet[AgentSession]:
    now = now or timezone.now()
    return (
        sessions_visible_to(user)
        .filter(archived_at__isnull=True, last_activity_at__gte=now - states.RECENT_WINDOW)
        .exclude(active_now_q(now))
        .select_related("agent", "owner", "project", "initiative")
        .order_by("-last_activity_at", "-id")
    )


NEEDS_YOU_STATUSES = frozenset({states.Status.WAITING_INPUT, states.Status.PAUSED})


def needs_you(user: Any, *, now: datetime | None = None) -> QuerySet[AgentSession]:
    """Active Now sessions waiting on a person: input, a checkpoint approval, or paused."""
    return active_now(user, now=now).filter(status__in=NEEDS_YOU_STATUSES)


@dataclass(frozen=True)
class PanelSection:
    items: list[AgentSession]
    count: int


def command_center_panel(
    user: Any, *, now: datetime | None = None, limit: int = 15
) -> dict[str, PanelSection]:
    """The three disjoint panel sections: needs (you), active (the rest of Active Now), recent.
    Six queries whatever the number of rows."""
    now = now or timezone.now()
    needs = needs_you(user, now=now)
    active = active_now(user, now=now).exclude(status__in=NEEDS_YOU_STATUSES)
    recent_qs = recent(user, now=now)
    return {
        name: PanelSection(list(qs[:limit]), qs.count())
        for name, qs in (("needs", needs), ("active", active), ("recent", recent_qs))
    }


def command_center_counts(user: Any, *, now: datetime | None = None) -> dict[str, int]:
    now = now or timezone.now()
    return {
        "needs": needs_you(user, now=now).count(),
        "active": active_now(user, now=now).exclude(status__in=NEEDS_YOU_STATUSES).count(),
        "recent": recent(user, now=now).count(),
    }


def session_events(
    session: AgentSession, *, after: int = 0, limit: int = 200, types: list[str] | None = None
) -> list[SessionEvent]:
    qs = SessionEvent.objects.filter(session=session, seq__gt=after)
    if types:
        qs = qs.filter(type__in=types)
    return list(qs.order_by("seq")[:limit])


# --- API tokens -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenAccess:
    """What an API token may reach: a runtime token its agents, a personal token what its user
    sees; both only inside the token's workspace."""

    token: ApiToken
    agent_ids: frozenset[int]

    @property
    def is_runtime(self) -> bool:
        return self.token.kind == TokenKind.RUNTIME

    @property
    def tenant_id(self) -> int:
        return self.token.tenant_id

    @property
    def user(self) -> Any:
        return self.token.user


def token_access_by_hash(token_hash: str) -> TokenAccess | None:
    """The live token with this hash; None when unknown, revoked, or a personal token whose user
    was deactivated."""
    token = (
        ApiToken.objects.select_related("user", "tenant")
        .filter(token_hash=token_hash, revoked_at__isnull=True)
        .first()
    )
    if token is None:
        return None
    if token.kind == TokenKind.PERSONAL:
        if not token.user.is_active:
            return None
        return TokenAccess(token, frozenset())
    agent_ids = frozenset(
        token.agents.filter(tenant_id=token.tenant_id).values_list("id", flat=True)
    )
    return TokenAccess(token, agent_ids)


def sessions_visible_to_token(access: TokenAccess) -> QuerySet[AgentSession]:
    if access.is_runtime:
        return AgentSession.objects.filter(
            tenant_id=access.tenant_id, agent_id__in=sorted(access.agent_ids)
        )
    return sessions_visible_to(access.user).filter(tenant_id=access.tenant_id)


SESSION_RELATED = ("agent", "owner", "project", "initiative", "tenant")


def session_get_for_token(
    access: TokenAccess, session_id: Any, *, related: tuple[str, ...] = SESSION_RELATED
) -> AgentSession:
    """`related`: the relations to join (ingestion needs only agent and owner)."""
    try:
        pk = uuid.UUID(str(session_id))
    except ValueError:
        raise NotFound(str(session_id)) from None
    session = sessions_visible_to_token(access).select_related(*related).filter(pk=pk).first()
    if session is None:
        raise NotFound(str(session_id))
    return session


def agents_for_token(access: TokenAccess) -> QuerySet[Agent]:
    """Runtime tokens: their agents. Personal tokens: the agents their user may start sessions
    with (agent owner, tenant admin, or at least reporter on the agent's project)."""
    qs = Agent.objects.filter(tenant_id=access.tenant_id).select_related("owner", "project")
    if access.is_runtime:
        return qs.filter(pk__in=sorted(access.agent_ids))
    a = access_for(access.user)
    if a.superuser or access.tenant_id in a.admin_tenant_ids:
        return qs
    return qs.filter(
        Q(owner_id=a.user_id)
        | Q(
            project__memberships__user_id=a.user_id,
            project__memberships__role__gte=Role.REPORTER,
        )
    ).distinct()


def commands_for_session(session: AgentSession, *, limit: int = 100) -> list[RuntimeCommand]:
    return list(RuntimeCommand.objects.filter(session=session).order_by("-created_at")[:limit])


PENDING_COMMAND_STATUSES = (CommandStatus.QUEUED, CommandStatus.DELIVERED)


def agent_in_tenant(*, tenant_id: int, agent_id: int) -> Agent | None:
    return Agent.objects.filter(pk=agent_id, tenant_id=tenant_id).select_related("project").first()


def member_by_username(*, tenant_id: int, username: str) -> Any:
    """A member of the workspace by username; None for strangers (who look like unknowns)."""
    return (
        get_user_model()
        .objects.filter(username=username, is_active=True, tenant_memberships__tenant_id=tenant_id)
        .first()
    )


def initiative_in_tenant(*, tenant_id: int, initiative_id: int) -> Initiative | None:
    return Initiative.objects.filter(pk=initiative_id, tenant_id=tenant_id).first()


def filter_facets(user: Any) -> dict[str, Any]:
    """The choices of the list's filter dropdowns: only the people, agents, projects and
    initiatives the viewer can see sessions of, so a dropdown never names what the list hides."""
    visible = sessions_visible_to(user)
    return {
        "people": get_user_model()
        .objects.filter(pk__in=visible.values("owner_id"))
        .order_by("username"),
        "agents": Agent.objects.filter(pk__in=visible.values("agent_id")).order_by("name"),
        "projects": Project.objects.filter(pk__in=visible.values("project_id")).order_by("name"),
        "initiatives": Initiative.objects.filter(
            pk__in=visible.filter(initiative__isnull=False).values("initiative_id")
        ).order_by("name"),
    }


def session_children(user: Any, session: AgentSession, *, limit: int = 50) -> list[AgentSession]:
    return list(
        sessions_visible_to(user)
        .filter(parent=session)
        .select_related("agent")
        .order_by("-created_at")[:limit]
    )


def step_payloads(session: AgentSession) -> list[Any]:
    return list(
        SessionEvent.objects.filter(session=session, type=EventType.STEP).values_list(
            "payload", flat=True
        )
    )


def status_history(session: AgentSession, *, limit: int = 100) -> list[SessionEvent]:
    return list(
        SessionEvent.objects.filter(session=session, type=EventType.STATUS_CHANGE).order_by("seq")[
            :limit
        ]
    )


def transcript_tail(session: AgentSession, *, before: int | None, limit: int) -> list[SessionEvent]:
    """The `limit` events before seq `before` (the newest when None), oldest first."""
    qs = SessionEvent.objects.filter(session=session)
    if before is not None:
        qs = qs.filter(seq__lt=before)
    return list(qs.order_by("-seq")[:limit])[::-1]


def events_after(session_id: Any, *, after: int, limit: int = 500) -> list[SessionEvent]:
    return list(
        SessionEvent.objects.filter(session_id=session_id, seq__gt=after).order_by("seq")[:limit]
    )


def events_for_export(session: AgentSession) -> Any:
    return session.events.order_by("seq").iterator(chunk_size=1000)


def visible_agents(user: Any) -> list[Agent]:
    """Agents in the viewer's workspaces, for the agent settings list."""
    access = access_for(user)
    qs = Agent.objects.select_related("project", "owner").order_by("name")
    if not access.superuser:
        qs = qs.filter(tenant_id__in=access.tenant_ids)
    return list(qs)


def can_edit_policy(user: Any, agent: Agent) -> bool:
    """Tenant admins of the agent's workspace and the agent's owner may change its policy."""
    access = access_for(user)
    if access.user_id is None:
        return False
    return (
        access.superuser
        or agent.tenant_id in access.admin_tenant_ids
        or agent.owner_id == access.user_id
    )


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

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

from sessions_app import lifecycle
from sessions_app.lifecycle import Kind
from sessions_app.models import (
    Agent,
    AgentSession,
    ApiToken,
    CommandStatus,
    Initiative,
    Membership,
    Role,
    RuntimeCommand,
    SessionEvent,
    TenantMembership,
    TokenKind,
)

AnyUser = AbstractBaseUser | AnonymousUser


class NotFound(Exception):
    """The session does not exist or the viewer may not see it (both look the same: 404)."""


class InvalidCursor(ValueError):
    pass


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


def _facts(session: AgentSession) -> dict[str, Any]:
    return {
        "owner_id": session.owner_id,
        "agent_owner_id": session.agent.owner_id,
        "tenant_id": session.tenant_id,
        "project_id": session.project_id,
        "kind": session.kind,
    }


def can_view(user: Any, session: AgentSession) -> bool:
    return may_view(access_for(user), **_facts(session))


def can_act(user: Any, session: AgentSession) -> bool:
    return may_act(access_for(user), **_facts(session))


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
        ~Q(kind=Kind.CHAT) | Q(last_activity_at__gte=now - lifecycle.ACTIVE_CHAT_WINDOW)
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
        raise InvalidCursor("The cursor is not valid; start again from the first page.") from None


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
        .filter(archived_at__isnull=True, last_activity_at__gte=now - lifecycle.RECENT_WINDOW)
        .exclude(active_now_q(now))
        .select_related("agent", "owner", "project", "initiative")
        .order_by("-last_activity_at", "-id")
    )


NEEDS_YOU_STATUSES = frozenset({lifecycle.Status.WAITING_INPUT, lifecycle.Status.PAUSED})


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

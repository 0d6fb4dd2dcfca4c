"""Reads. Every query that returns sessions to a person starts from `sessions_visible_to`, so
the rules of DESIGN.md section 7 live in exactly one place."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Q, QuerySet
from django.utils import timezone

from sessions_app import lifecycle
from sessions_app.lifecycle import Kind
from sessions_app.models import AgentSession, Membership, Role, SessionEvent, TenantMembership

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


def can_view(user: Any, session: AgentSession) -> bool:
    a = access_for(user)
    if a.superuser:
        return True
    if a.user_id is None:
        return False
    return (
        session.owner_id == a.user_id
        or session.agent.owner_id == a.user_id
        or session.tenant_id in a.admin_tenant_ids
        or (session.kind != Kind.CHAT and session.project_id in a.developer_project_ids)
    )


def can_act(user: Any, session: AgentSession) -> bool:
    """End, pause, resume, stop, cancel, transfer, delete, approve (DESIGN 7)."""
    a = access_for(user)
    if a.superuser:
        return True
    if a.user_id is None:
        return False
    return (
        session.owner_id == a.user_id
        or session.agent.owner_id == a.user_id
        or session.tenant_id in a.admin_tenant_ids
        or (session.kind != Kind.CHAT and session.project_id in a.maintainer_project_ids)
    )


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
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def with_(self, **changes: Any) -> SessionFilter:
        return replace(self, **changes)


def active_now_q(now: datetime) -> Q:
    return Q(live=True) & (
        ~Q(kind=Kind.CHAT) | Q(last_activity_at__gte=now - lifecycle.ACTIVE_CHAT_WINDOW)
    )


def filtered_sessions(
    user: Any, flt: SessionFilter, *, now: datetime | None = None
) -> QuerySet[AgentSession]:
    now = now or timezone.now()
    qs = sessions_visible_to(user)
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
        if not isinstance(live, bool) or parsed.tzinfo is None:
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
    user: Any, flt: SessionFilter, *, cursor: str | None = None, limit: int = 50
) -> Page:
    qs = filtered_sessions(user, flt)
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


def needs_you(user: Any) -> QuerySet[AgentSession]:
    return (
        sessions_visible_to(user)
        .filter(
            archived_at__isnull=True,
            status__in=[lifecycle.Status.WAITING_INPUT, lifecycle.Status.PAUSED],
        )
        .select_related("agent", "owner", "project", "initiative")
        .order_by("-last_activity_at", "-id")
    )


def session_events(
    session: AgentSession, *, after: int = 0, limit: int = 200, types: list[str] | None = None
) -> list[SessionEvent]:
    qs = SessionEvent.objects.filter(session=session, seq__gt=after)
    if types:
        qs = qs.filter(type__in=types)
    return list(qs.order_by("seq")[:limit])


def open_sessions_count(*, owner_id: int, agent_id: int) -> int:
    return AgentSession.objects.filter(owner_id=owner_id, agent_id=agent_id, live=True).count()

"""The Sessions list and the Command Center panel: filters, keyset pages, sections, counts."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Min, Q, QuerySet
from django.utils import timezone

from sessions_app import states
from sessions_app.errors import InvalidCursor
from sessions_app.models import (
    Agent,
    AgentSession,
    Initiative,
    Project,
)
from sessions_app.selectors.access import access_for, actable_q, sessions_visible_to
from sessions_app.states import Kind


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
    stalled: bool = False
    sort: str = ""  # "" (live first, then recency), or a key of USAGE_SORTS


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
        qs = (
            qs.filter(owner_id=int(flt.owner))
            if flt.owner.isascii() and flt.owner.isdigit()
            else qs.none()
        )
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
        qs = qs.filter(title_folded__contains=states.fold(text))
    if flt.active_only:
        qs = qs.filter(active_now_q(now))
    if flt.stalled:
        qs = qs.filter(stalled=True)
    return qs


LIST_ORDER = ("-live", "-last_activity_at", "-id")
# The list sorted by usage, most first; each has its index (session_cost_idx, ...).
USAGE_SORTS = {"cost": "cost", "tokens": "tokens_total"}


def list_order(sort: str) -> tuple[str, ...]:
    return ("-" + USAGE_SORTS[sort], "-id") if sort else LIST_ORDER


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


def encode_usage_cursor(session: AgentSession, sort: str) -> str:
    value = getattr(session, USAGE_SORTS[sort])
    raw = json.dumps([sort, str(value), str(session.pk)])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _usage_after_q(cursor: str, sort: str) -> Q:
    """Rows strictly after the cursor in `list_order(sort)`: a smaller value, or the same
    value and a smaller id."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        name, raw_value, pk = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if name != sort or not isinstance(raw_value, str) or not isinstance(pk, str):
            raise ValueError("bad cursor fields")
        value: Decimal | int = Decimal(raw_value) if sort == "cost" else int(raw_value)
        if isinstance(value, Decimal) and not value.is_finite():
            raise ValueError("bad cursor value")
        after = uuid.UUID(pk)
    except (ValueError, TypeError, ArithmeticError, binascii.Error, json.JSONDecodeError):
        raise InvalidCursor from None
    field = USAGE_SORTS[sort]
    return Q(**{f"{field}__lt": value}) | Q(**{field: value, "id__lt": after})


def after_cursor_q(cursor: str, sort: str = "") -> Q:
    """Keyset condition for rows strictly after the cursor in the list order (no OFFSET)."""
    if sort:
        return _usage_after_q(cursor, sort)
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
        qs = qs.filter(after_cursor_q(cursor, flt.sort))
    rows = list(
        qs.select_related("agent", "owner", "project", "initiative").order_by(
            *list_order(flt.sort)
        )[: limit + 1]
    )
    more = len(rows) > limit
    rows = rows[:limit]
    if not (more and rows):
        return Page(rows, None)
    last = rows[-1]
    return Page(rows, encode_usage_cursor(last, flt.sort) if flt.sort else encode_cursor(last))


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


def waits_on_a_person_q() -> Q:
    """`states.waits_on_a_person` as SQL."""
    return Q(live=True, archived_at__isnull=True) & (
        Q(status__in=sorted(states.WAITS_ON_A_PERSON))
        | Q(stalled=True)
        | Q(agent_status=states.AGENT_WAITING_INPUT)
    )


def _needs_q(user: Any) -> Q:
    return waits_on_a_person_q() & actable_q(access_for(user))


def needs_you(user: Any, *, now: datetime | None = None) -> QuerySet[AgentSession]:
    """Sessions waiting on a person that this viewer may act on: input, a checkpoint, a pause,
    an idle chat, a stall, an agent waiting for an answer. Exactly what the viewer can act on,
    so the badge never counts what they could only look at."""
    return (
        sessions_visible_to(user)
        .filter(_needs_q(user))
        .select_related("agent", "owner", "project", "initiative")
        .order_by(*LIST_ORDER)
    )


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
    active = active_now(user, now=now).exclude(_needs_q(user))
    recent_qs = recent(user, now=now).exclude(_needs_q(user))
    return {
        name: PanelSection(list(qs[:limit]), qs.count())
        for name, qs in (("needs", needs), ("active", active), ("recent", recent_qs))
    }


def command_center_counts(user: Any, *, now: datetime | None = None) -> dict[str, int]:
    now = now or timezone.now()
    return {
        "needs": needs_you(user, now=now).count(),
        "active": active_now(user, now=now).exclude(_needs_q(user)).count(),
        "recent": recent(user, now=now).exclude(_needs_q(user)).count(),
    }


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


def panel_next_move(user: Any, *, now: datetime | None = None) -> datetime | None:
    """When the viewer's panel next changes with nothing else happening: the first chat in
    Active Now to pass its 30 quiet minutes, or the first Recent item to pass 24 hours."""
    now = now or timezone.now()
    needs = _needs_q(user)
    quiet_chat = (
        active_now(user, now=now)
        .exclude(needs)
        .filter(kind=Kind.CHAT)
        .aggregate(first=Min("last_activity_at"))["first"]
    )
    oldest_recent = (
        recent(user, now=now).exclude(needs).aggregate(first=Min("last_activity_at"))["first"]
    )
    moves = [
        t + window
        for t, window in (
            (quiet_chat, states.ACTIVE_CHAT_WINDOW),
            (oldest_recent, states.RECENT_WINDOW),
        )
        if t is not None
    ]
    return min(moves) if moves else None

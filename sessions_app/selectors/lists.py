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
from django.db.models import Q, QuerySet
from django.utils import timezone

from sessions_app import states
from sessions_app.errors import InvalidCursor
from sessions_app.models import (
    Agent,
    AgentSession,
    Initiative,
    Project,
)
from sessions_app.selectors import keyset
from sessions_app.selectors.access import Access, access_for, actable_q, sessions_visible_to
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


def filter_q(user: Any, flt: SessionFilter, *, now: datetime | None = None) -> Q:
    """The list filter as a condition, visibility apart."""
    now = now or timezone.now()
    q = Q(archived_at__isnull=not flt.archived)
    if flt.owner == "me":
        q &= Q(owner_id=getattr(user, "pk", None))
    elif flt.owner:
        q &= (
            Q(owner_id=int(flt.owner))
            if flt.owner.isascii() and flt.owner.isdigit()
            else Q(pk__in=[])
        )
    if flt.kind:
        q &= Q(kind=flt.kind)
    if flt.initiative is not None:
        q &= Q(initiative_id=flt.initiative)
    if flt.group:
        q &= Q(status_group=flt.group)
    if flt.agent is not None:
        q &= Q(agent_id=flt.agent)
    if flt.project is not None:
        q &= Q(project_id=flt.project)
    text = flt.q.strip()
    if text.startswith("#") and len(text) > 1:
        q &= Q(short_id__startswith=text[1:9].lower())
    elif text:
        q &= Q(title_folded__contains=states.fold(text))
    if flt.active_only:
        q &= active_now_q(now)
    if flt.stalled:
        q &= Q(stalled=True)
    return q


def filtered_sessions(
    user: Any,
    flt: SessionFilter,
    *,
    now: datetime | None = None,
    base: QuerySet[AgentSession] | None = None,
) -> QuerySet[AgentSession]:
    """`base` replaces the visible set (an API token's scope); it must already be scoped."""
    qs = sessions_visible_to(user) if base is None else base
    return qs.filter(filter_q(user, flt, now=now))


def viewer_audience(user: Any) -> list[Q]:
    """What `user` may see, as index-served branches (selectors/keyset.py)."""
    access = access_for(user)
    return _audience(user, access, access.developer_project_ids)


def _actor_audience(user: Any) -> list[Q]:
    access = access_for(user)
    return _audience(user, access, access.maintainer_project_ids)


def _audience(user: Any, access: Access, project_ids: frozenset[int]) -> list[Q]:
    """Remembered with the access it was built from, on the user object: a dashboard socket
    re-reads its panel counts after pushes, and the branches (its agents, its projects) cost
    two queries. A re-read access (`access_for(fresh=True)`, after any change of memberships,
    roles or agent ownership) is a new object, so the branches are built anew with it."""
    memo: tuple[Access, dict[frozenset[int], list[Q]]] | None
    memo = getattr(user, "_scc_audience", None)
    if memo is None or memo[0] is not access:
        memo = (access, {})
        user._scc_audience = memo
    built = memo[1]
    if project_ids not in built:
        built[project_ids] = keyset.audience(access, project_ids)
    return list(built[project_ids])


LIST_ORDER = keyset.LIST_ORDER
# The list sorted by usage, most first; each has its index (session_cost_idx, ...).
USAGE_SORTS = {"cost": "cost", "tokens": "tokens_total"}


def list_order(sort: str) -> tuple[str, ...]:
    return ("-" + USAGE_SORTS[sort], "-id") if sort else tuple(LIST_ORDER)


_ROW_RELATED = ("agent", "owner", "project", "initiative")


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


def after_cursor(cursor: str) -> Any:
    """Keyset condition for rows strictly after the cursor in LIST_ORDER (no OFFSET): a row
    value comparison, the range condition of the list indexes."""
    return keyset.before_row(*decode_cursor(cursor))


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
    branches: list[Q] | None = None,
) -> Page:
    """A keyset page of the list. `branches` replaces the viewer's audience (an API token's
    scope, `selectors.token_audience`)."""
    order = list_order(flt.sort)
    rows = AgentSession.objects.filter(filter_q(user, flt))
    if cursor:
        rows = rows.filter(_usage_after_q(cursor, flt.sort) if flt.sort else after_cursor(cursor))
    audience = viewer_audience(user) if branches is None else branches
    ids = keyset.pick(rows, audience, order=order, limit=limit + 1)
    items = keyset.in_order(ids[:limit], AgentSession.objects.select_related(*_ROW_RELATED), order)
    more = len(ids) > limit
    if not (more and items):
        return Page(items, None)
    last = items[-1]
    return Page(items, encode_usage_cursor(last, flt.sort) if flt.sort else encode_cursor(last))


def match_count(user: Any, flt: SessionFilter) -> int:
    """How many sessions the list's filter matches for `user`, counted up to
    keyset.COUNT_CAP ("999+"): read like a page, whatever the size of the table."""
    return keyset.capped_count(
        AgentSession.objects.filter(filter_q(user, flt)), viewer_audience(user)
    )


def active_now(user: Any, *, now: datetime | None = None) -> QuerySet[AgentSession]:
    now = now or timezone.now()
    return (
        sessions_visible_to(user)
        .filter(archived_at__isnull=True)
        .filter(active_now_q(now))
        .select_related(*_ROW_RELATED)
        .order_by(*LIST_ORDER)
    )


def recent(user: Any, *, now: datetime | None = None) -> QuerySet[AgentSession]:
    now = now or timezone.now()
    return (
        sessions_visible_to(user)
        .filter(archived_at__isnull=True, last_activity_at__gte=now - states.RECENT_WINDOW)
        .exclude(active_now_q(now))
        .select_related(*_ROW_RELATED)
        .order_by(*keyset.RECENT_ORDER)
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
        .select_related(*_ROW_RELATED)
        .order_by(*LIST_ORDER)
    )


@dataclass(frozen=True)
class _Section:
    rows: QuerySet[AgentSession]
    audience: list[Q]
    order: tuple[str, ...]
    parts: tuple[Q, ...]


def _sections(user: Any, now: datetime) -> dict[str, _Section]:
    """The three disjoint panel sections as index-served reads: needs (you), active (the rest
    of Active Now), recent (the rest of the last 24 hours). Recent orders by recency alone, so
    it reads live and ended rows as two index ranges."""
    needs = _needs_q(user)
    seen = viewer_audience(user)
    sessions = AgentSession.objects.all()
    return {
        "needs": _Section(
            sessions.filter(waits_on_a_person_q()), _actor_audience(user), LIST_ORDER, (Q(),)
        ),
        "active": _Section(
            sessions.filter(archived_at__isnull=True).filter(active_now_q(now)).exclude(needs),
            seen,
            LIST_ORDER,
            (Q(),),
        ),
        "recent": _Section(
            sessions.filter(
                archived_at__isnull=True, last_activity_at__gte=now - states.RECENT_WINDOW
            )
            .exclude(active_now_q(now))
            .exclude(needs),
            seen,
            keyset.RECENT_ORDER,
            (Q(live=False), Q(live=True)),
        ),
    }


@dataclass(frozen=True)
class PanelSection:
    items: list[AgentSession]
    count: int


def command_center_panel(
    user: Any, *, now: datetime | None = None, limit: int = 15
) -> dict[str, PanelSection]:
    """The panel: the first `limit` items of each section and its count (capped at
    keyset.COUNT_CAP). Every read is bounded by the page size, not the table."""
    sections = _sections(user, now or timezone.now())
    counts = _counts(sections)
    panel = {}
    for name, section in sections.items():
        ids = keyset.pick(
            section.rows, section.audience, order=section.order, limit=limit, parts=section.parts
        )
        items = keyset.in_order(
            ids, AgentSession.objects.select_related(*_ROW_RELATED), section.order
        )
        panel[name] = PanelSection(items, counts[name])
    return panel


def command_center_counts(user: Any, *, now: datetime | None = None) -> dict[str, int]:
    return _counts(_sections(user, now or timezone.now()))


def _counts(sections: dict[str, _Section]) -> dict[str, int]:
    # Split as the section's pick is (Recent: live and ended rows are two index ranges); one
    # range per grant counted Recent by walking the workspace's whole index (46 ms at 1M).
    return keyset.capped_counts(
        {
            name: (s.rows, [branch & part for branch in s.audience for part in s.parts])
            for name, s in sections.items()
        }
    )


# The filter dropdowns name what the viewer's latest sessions name (see filter_facets).
FACET_SAMPLE = 2000
FACET_FIELDS = ("owner_id", "agent_id", "project_id", "initiative_id")


def filter_facets(user: Any) -> dict[str, Any]:
    """The choices of the list's filter dropdowns: the people, agents, projects and initiatives
    of the viewer's latest FACET_SAMPLE visible, unarchived sessions, so a dropdown never names
    what the list hides.

    Read in the audience's index range scans (like a list page of that size), names and all:
    reading the sample's rows again by id cost more than picking them. Asking, for
    every candidate, whether one visible session of it exists read a large share of the table
    for a viewer whose grants cover few of the candidates."""
    rows = AgentSession.objects.filter(archived_at__isnull=True)
    named = keyset.pick_values(
        rows, viewer_audience(user), order=LIST_ORDER, limit=FACET_SAMPLE, fields=FACET_FIELDS
    )

    def of(field: str) -> list[int]:
        column = FACET_FIELDS.index(field)
        return sorted({row[column] for row in named if row[column] is not None})

    return {
        "people": get_user_model().objects.filter(pk__in=of("owner_id")).order_by("username"),
        "agents": Agent.objects.filter(pk__in=of("agent_id")).order_by("name"),
        "projects": Project.objects.filter(pk__in=of("project_id")).order_by("name"),
        "initiatives": Initiative.objects.filter(pk__in=of("initiative_id")).order_by("name"),
    }


def panel_next_move(user: Any, *, now: datetime | None = None) -> datetime | None:
    """When the viewer's panel next changes with nothing else happening: the first chat in
    Active Now to pass its 30 quiet minutes, or the first Recent item to pass 24 hours."""
    now = now or timezone.now()
    sections = _sections(user, now)
    moves = []
    for rows, section, window in (
        (
            sections["active"].rows.filter(kind=Kind.CHAT),
            sections["active"],
            states.ACTIVE_CHAT_WINDOW,
        ),
        (sections["recent"].rows, sections["recent"], states.RECENT_WINDOW),
    ):
        oldest = keyset.pick(
            rows,
            section.audience,
            order=("last_activity_at", "id"),
            limit=1,
            parts=section.parts,
        )
        first = (
            AgentSession.objects.filter(pk__in=oldest)
            .values_list("last_activity_at", flat=True)
            .first()
        )
        if first is not None:
            moves.append(first + window)
    return min(moves) if moves else None

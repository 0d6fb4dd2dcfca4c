"""The index-shaped reads (selectors/keyset.py) pick exactly what the plain visibility query
picks, in the same order, for every persona, filter and page size; and on PostgreSQL each of
their queries is a range scan of one of the list indexes, never a scan of the table."""

from __future__ import annotations

import random
import re
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from sessions_app import selectors, services
from sessions_app.models import AgentSession, Role
from sessions_app.selectors import keyset
from sessions_app.states import Kind
from tests import factories as f
from tests.conftest import World

PERSONAS = ("owner", "developer", "maintainer", "agent_owner", "admin", "outsider", "other_admin")
STATUSES = {
    Kind.FLOW_RUN: ["running", "paused", "completed", "failed", "waiting_input"],
    Kind.BACKGROUND_TASK: ["queued", "running", "completed", "cancelled"],
    Kind.CHAT: ["running", "idle", "ended"],
}
FILTERS = [
    selectors.SessionFilter(),
    selectors.SessionFilter(kind=Kind.CHAT),
    selectors.SessionFilter(group="attention"),
    selectors.SessionFilter(active_only=True),
    selectors.SessionFilter(owner="me"),
    selectors.SessionFilter(archived=True),
    selectors.SessionFilter(q="report"),
]


@pytest.fixture
def crowd(world: World) -> list[AgentSession]:
    """Sessions of every kind, mixed owners, agents (one owned by the developer), projects,
    statuses, recency (ties included) and archived rows."""
    rng = random.Random(7)
    own_agent = f.make_agent(world.other_project, world.developer, name="dev-agent")
    f.add_member(world.other_project, world.maintainer, Role.MAINTAINER)
    agents = [world.agent, own_agent]
    owners = [world.owner, world.developer, world.maintainer, world.admin]
    now = timezone.now()
    made = []
    for i in range(48):
        kind = [Kind.FLOW_RUN, Kind.BACKGROUND_TASK, Kind.CHAT][i % 3]
        s = f.make_session(
            agents[i % 2],
            owners[i % 4],
            kind,
            status=rng.choice(STATUSES[kind]),
            title=f"{'report' if i % 5 == 0 else 'task'} {i}",
        )
        made.append(s)
    made.append(f.make_session(world.other_agent, world.other_admin, Kind.CHAT))
    for i, s in enumerate(made):
        # Every fourth pair shares a timestamp: the id breaks the tie.
        minutes = rng.randrange(0, 60 * 30) if i % 4 else 90
        AgentSession.objects.filter(pk=s.pk).update(
            last_activity_at=now - timedelta(minutes=minutes),
            archived_at=now if i % 11 == 0 else None,
        )
    return made


def _walk(user: Any, flt: selectors.SessionFilter, limit: int) -> list[Any]:
    ids: list[Any] = []
    cursor = None
    for _ in range(200):
        page = selectors.session_page(user, flt, cursor=cursor, limit=limit)
        ids += [s.pk for s in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return ids
    raise AssertionError("the pages never ended")


@pytest.mark.parametrize("persona", PERSONAS)
def test_every_page_walk_equals_the_plain_query(world: World, crowd: Any, persona: str) -> None:
    user = getattr(world, persona)
    seen_any = False
    for flt in FILTERS:
        expected = list(
            selectors.filtered_sessions(user, flt)
            .order_by(*selectors.LIST_ORDER)
            .values_list("pk", flat=True)
        )
        seen_any = seen_any or bool(expected)
        for limit in (1, 7, 50):
            assert _walk(user, flt, limit) == expected, (persona, flt, limit)
    # Positive control: every persona but the stranger to this workspace sees something.
    assert seen_any or persona == "other_admin"


@pytest.mark.parametrize("persona", PERSONAS)
def test_the_panel_equals_the_plain_sections(world: World, crowd: Any, persona: str) -> None:
    user = getattr(world, persona)
    now = timezone.now()
    panel = selectors.command_center_panel(user, now=now, limit=5)
    needs = selectors.needs_you(user, now=now)
    need_ids = set(needs.values_list("pk", flat=True))
    plain = {
        "needs": list(needs.values_list("pk", flat=True)),
        "active": [
            pk
            for pk in selectors.active_now(user, now=now).values_list("pk", flat=True)
            if pk not in need_ids
        ],
        "recent": [
            pk
            for pk in selectors.recent(user, now=now).values_list("pk", flat=True)
            if pk not in need_ids
        ],
    }
    counts = selectors.command_center_counts(user, now=now)
    for name, ids in plain.items():
        assert [s.pk for s in panel[name].items] == ids[:5], (persona, name)
        assert panel[name].count == counts[name] == len(ids), (persona, name)


def test_counts_stop_at_the_cap(world: World, crowd: Any, monkeypatch: Any) -> None:
    full = selectors.command_center_counts(world.admin)
    assert full["recent"] > 3
    monkeypatch.setattr(keyset, "COUNT_CAP", 3)
    capped = selectors.command_center_counts(world.admin)
    assert capped["recent"] == 3
    assert capped["needs"] == min(full["needs"], 3)


def test_a_token_lists_exactly_what_it_reaches(world: World, crowd: Any) -> None:
    for kind, user, agents in (
        ("runtime", world.agent_owner, [world.agent]),
        ("personal", world.developer, []),
    ):
        token, _ = services.token_create(
            tenant=world.tenant, kind=kind, name=kind, user=user, agents=agents
        )
        access = selectors.token_access_by_id(token.pk)
        assert access is not None
        flt = selectors.SessionFilter()
        expected = list(
            selectors.filtered_sessions(
                access.user, flt, base=selectors.sessions_visible_to_token(access)
            )
            .order_by(*selectors.LIST_ORDER)
            .values_list("pk", flat=True)
        )
        assert expected
        got: list[Any] = []
        cursor = None
        while True:
            page = selectors.session_page(
                access.user,
                flt,
                cursor=cursor,
                limit=9,
                branches=selectors.token_audience(access),
            )
            got += [s.pk for s in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert got == expected, kind


# --- plans ------------------------------------------------------------------------------------

LIST_INDEXES = {
    "session_list_idx",
    "session_owner_list_idx",
    "session_agent_list_idx",
    "session_project_list_idx",
}


def _plans(run: Any) -> list[str]:
    with CaptureQueriesContext(connection) as ctx:
        run()
    plans = []
    with connection.cursor() as cursor:
        for q in ctx.captured_queries:
            if not q["sql"].startswith(("SELECT", "(")):  # a union starts with "("
                continue
            cursor.execute("EXPLAIN " + q["sql"])
            plans.append("\n".join(row[0] for row in cursor.fetchall()))
    return plans


@pytest.mark.postgres
@pytest.mark.parametrize("persona", ["admin", "maintainer", "developer", "owner", "agent_owner"])
def test_list_and_panel_reads_are_index_range_scans(world: World, crowd: Any, persona: str) -> None:
    user = getattr(world, persona)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE sessions_app_agentsession")
        # A few thousand rows would often be read whole; make any scan of the table visible
        # (it stays possible, at a prohibitive cost, where no index can serve the query).
        cursor.execute("SET enable_seqscan = off")
        cursor.execute("SET enable_bitmapscan = off")
    first = selectors.session_page(user, selectors.SessionFilter(), limit=5)
    assert first.next_cursor is not None
    plans = _plans(
        lambda: (
            selectors.session_page(user, selectors.SessionFilter(), limit=5),
            selectors.session_page(
                user, selectors.SessionFilter(), cursor=first.next_cursor, limit=5
            ),
            selectors.command_center_panel(user),
        )
    )
    used: set[str] = set()
    session_plans = [p for p in plans if "sessions_app_agentsession" in p]
    assert session_plans
    for plan in session_plans:
        assert not re.search(r"Seq Scan on sessions_app_(agentsession|sessionevent)", plan), plan
        used |= set(re.findall(r"using (\w+)", plan))
        # The list indexes lead with (..., live, last_activity_at): a recency bound without
        # `live` fixed walks every entry of the leading columns (Recent counted that way read
        # a workspace's whole index).
        index = ""
        for line in plan.splitlines():
            if found := re.search(r"using (\w+)", line):
                index = found[1]
            cond = line.partition("Index Cond: ")[2]
            if index in LIST_INDEXES and "last_activity_at" in cond and "ROW(live, " not in cond:
                assert "live = " in cond, plan  # (a keyset cursor compares ROW(live, ...))
    assert used & LIST_INDEXES, used
    expected = {
        "admin": "session_list_idx",
        "maintainer": "session_project_list_idx",
        "developer": "session_project_list_idx",
        "owner": "session_owner_list_idx",
        "agent_owner": "session_agent_list_idx",
    }[persona]
    assert expected in used, used


@pytest.mark.parametrize("persona", PERSONAS)
def test_filter_choices_are_what_the_visible_sessions_name(
    world: World, crowd: Any, persona: str
) -> None:
    user = getattr(world, persona)
    # The choices come from the latest unarchived sessions (all of them at this size).
    visible = selectors.sessions_visible_to(user).filter(archived_at__isnull=True)
    facets = selectors.filter_facets(user)
    for name, field in (("people", "owner_id"), ("agents", "agent_id"), ("projects", "project_id")):
        expected = set(visible.values_list(field, flat=True))
        assert {o.pk for o in facets[name]} == expected, (persona, name)
    if persona != "other_admin":
        assert facets["agents"], persona  # positive control

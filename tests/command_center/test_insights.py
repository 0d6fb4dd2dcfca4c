"""Insights: every figure on the page equals a direct query over a seeded world with known
answers, within the viewer's visible scope and the list's filter."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.urls import reverse

from sessions_app import lifecycle, selectors, services
from sessions_app.models import AgentSession, EventType, SessionEvent
from sessions_app.states import Kind
from tests import factories as f

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 10, 15, 30, tzinfo=UTC)
YESTERDAY_10 = datetime(2026, 3, 9, 10, 0, tzinfo=UTC)


def _at(moment: datetime) -> Any:
    return time_machine.travel(moment, tick=False)


def _usage(session: AgentSession, eid: str, tokens_in: int, tokens_out: int, cost: str) -> None:
    services.events_record(
        session=session,
        events=[
            services.EventIn(
                eid, "usage", {"tokens_in": tokens_in, "tokens_out": tokens_out, "cost": cost}
            )
        ],
    )


def _move(session: AgentSession, to: str) -> None:
    session.refresh_from_db()
    lifecycle.transition(session, to, actor="test")


@pytest.fixture
def seeded(world: Any) -> dict[str, AgentSession]:
    second = f.make_agent(world.project, world.agent_owner, name="reviewer")
    s: dict[str, AgentSession] = {}
    with _at(NOW - timedelta(days=10)):
        s["E"] = f.make_session(world.agent, world.owner, Kind.FLOW_RUN, status="running")
    with _at(NOW - timedelta(days=9)):
        _move(s["E"], "failed")
        _usage(s["E"], "e1", 10, 10, "100")
    with _at(YESTERDAY_10):
        s["C"] = f.make_session(world.agent, world.owner, Kind.BACKGROUND_TASK, status="running")
    with _at(YESTERDAY_10 + timedelta(hours=1)):
        _usage(s["C"], "c1", 1000, 200, "2")
    with _at(YESTERDAY_10 + timedelta(hours=2)):
        _move(s["C"], "failed")
    with _at(NOW - timedelta(hours=5)):
        s["D"] = f.make_session(world.agent, world.owner, Kind.CHAT)
    with _at(NOW - timedelta(hours=4)):
        _move(s["D"], "paused")
    with _at(NOW - timedelta(hours=3)):
        _move(s["D"], "running")
        s["B"] = f.make_session(world.agent, world.owner, Kind.FLOW_RUN, status="running")
    with _at(NOW - timedelta(hours=2)):
        _move(s["B"], "waiting_input")
        s["A"] = f.make_session(second, world.developer, Kind.FLOW_RUN, status="running")
        # The developer's chat: the owner may not see it (nor its cost).
        s["F"] = f.make_session(world.agent, world.developer, Kind.CHAT)
        _usage(s["F"], "f1", 5000, 5000, "7")
    with _at(NOW - timedelta(minutes=90)):
        _usage(s["A"], "a1", 100, 20, "0.5")
    with _at(NOW - timedelta(minutes=70)):
        _usage(s["A"], "a2", 50, 0, "0.25")
    with _at(NOW - timedelta(hours=1)):
        _move(s["A"], "completed")
    with _at(NOW - timedelta(minutes=30)):
        _move(s["B"], "failed")
    return s


def _tables(body: str) -> dict[str, list[list[str]]]:
    """plot id -> rows of data-value strings."""
    out = {}
    for plot, inner in re.findall(
        r'<table class="plot-table" data-plot="(\w+)">(.*?)</table>', body, re.S
    ):
        rows = re.findall(r"<tr>(.*?)</tr>", inner.split("<tbody>")[1], re.S)
        out[plot] = [re.findall(r'data-value="([^"]*)"', row) for row in rows]
    return out


def _direct_usage(user: Any, since: datetime, until: datetime) -> tuple[int, Decimal]:
    """Tokens and cost of the usage events in [since, until) of what `user` may see, read
    straight from the stored payloads."""
    visible = selectors.sessions_visible_to(user).filter(archived_at__isnull=True)
    tokens, cost = 0, Decimal(0)
    for payload in SessionEvent.objects.filter(
        session__in=visible, type=EventType.USAGE, created_at__gte=since, created_at__lt=until
    ).values_list("payload", flat=True):
        tokens += payload.get("tokens_in", 0) + payload.get("tokens_out", 0)
        cost += Decimal(str(payload.get("cost", 0)))
    return tokens, cost


def test_the_selector_has_the_known_answers(world: Any, seeded: dict[str, AgentSession]) -> None:
    ins = selectors.insights_for(world.owner, selectors.SessionFilter(), days=7, now=NOW)
    assert ins.totals["started"] == 4  # A, B, C, D; E is older, F is not visible
    assert {g: n for g, _, n in ins.groups} == {
        "active": 1,
        "attention": 0,
        "success": 1,
        "problem": 2,
        "stopped": 0,
    }
    today, yesterday = ins.per_day[-1], ins.per_day[-2]
    assert (today.finished, today.failed, today.failure_rate) == (2, 1, 0.5)
    assert (yesterday.finished, yesterday.failed, yesterday.failure_rate) == (1, 1, 1.0)
    assert (today.tokens, today.cost) == (170, Decimal("0.75"))
    assert (yesterday.tokens, yesterday.cost) == (1200, Decimal("2"))
    assert today.waiting_seconds == 2.5 * 3600  # D paused 1 h, B waited 1.5 h
    hours = {h.start.hour: h.counts for h in ins.hours if h.total}
    assert hours == {
        10: {"flow_run": 0, "background_task": 0, "chat": 1},
        12: {"flow_run": 1, "background_task": 0, "chat": 0},
        13: {"flow_run": 1, "background_task": 0, "chat": 0},
    }
    assert ins.durations["all"].finished == 3
    assert ins.durations["all"].p50 == timedelta(hours=2)
    assert ins.durations["all"].p95 == timedelta(hours=2.5)
    assert ins.durations["flow_run"].p50 == timedelta(hours=1)
    assert ins.durations["chat"].p50 is None
    agents = {b.name: (b.started, b.finished, b.failed, b.tokens, b.cost) for b in ins.per_agent}
    assert agents == {
        "reviewer": (1, 1, 0, 170, Decimal("0.75")),
        "builder": (3, 2, 2, 1200, Decimal("2")),
    }
    owners = {b.name: b.cost for b in ins.per_owner}
    assert owners == {"developer": Decimal("0.75"), "owner": Decimal("2")}


def test_the_list_filter_narrows_every_figure(world: Any, seeded: dict[str, AgentSession]) -> None:
    ins = selectors.insights_for(
        world.owner, selectors.SessionFilter(kind=Kind.FLOW_RUN), days=7, now=NOW
    )
    assert ins.totals["started"] == 2
    assert ins.totals["cost"] == Decimal("0.75")
    assert ins.per_day[-2].finished == 0  # the task is filtered out
    admin = selectors.insights_for(world.admin, selectors.SessionFilter(), days=7, now=NOW)
    assert admin.totals["cost"] == Decimal("9.75")  # the admin sees the developer's chat


def test_every_number_on_the_page_equals_a_direct_query(
    client: Any, world: Any, seeded: dict[str, AgentSession]
) -> None:
    client.force_login(world.owner)
    with _at(NOW):
        body = client.get(reverse("insights"), {"days": 7}).content.decode()
    tables = _tables(body)
    visible = selectors.sessions_visible_to(world.owner).filter(archived_at__isnull=True)
    start = datetime(2026, 3, 4, tzinfo=UTC)
    # Totals
    started = re.search(r'data-total="started" data-value="(\d+)"', body)
    assert started is not None
    assert started.group(1) == str(visible.filter(created_at__gte=start).count())
    # Failure rate per day: rows are days, oldest first.
    for row, day in zip(tables["failure"], range(6, -1, -1), strict=True):
        since = datetime(2026, 3, 10, tzinfo=UTC) - timedelta(days=day)
        ended = visible.filter(ended_at__gte=since, ended_at__lt=since + timedelta(days=1))
        finished, failed = ended.count(), ended.filter(status="failed").count()
        assert row[1:3] == [str(finished), str(failed)]
        assert row[3] == (str(failed / finished) if finished else "")
    # Cost and tokens per day
    for row, day in zip(tables["cost"], range(6, -1, -1), strict=True):
        since = datetime(2026, 3, 10, tzinfo=UTC) - timedelta(days=day)
        tokens, cost = _direct_usage(world.owner, since, since + timedelta(days=1))
        assert int(row[1]) == tokens
        assert Decimal(row[2]) == cost
    assert int(tables["cost"][-1][1]) == 170
    assert Decimal(tables["cost"][-1][2]) == Decimal("0.75")
    # Status mix
    mix = {row[0]: int(row[1]) for row in tables["mix"]}
    for group, n in mix.items():
        assert n == visible.filter(created_at__gte=start, status_group=group).count()
    # Started per hour, by kind
    for row in tables["started"]:
        assert sum(int(v) for v in row[1:4]) == int(row[4])
    assert (
        sum(int(row[4]) for row in tables["started"])
        == visible.filter(created_at__gte=NOW.replace(minute=0) - timedelta(hours=23)).count()
    )
    # Durations: the direct nearest-rank over the finished sessions
    durations = sorted(
        (s.ended_at - (s.started_at or s.created_at)).total_seconds()  # type: ignore[operator]
        for s in visible.filter(ended_at__gte=start)
    )
    assert tables["duration"][0][1:] == [
        "3",
        str(durations[1]),
        str(durations[2]),
    ]
    # Waiting, per owner and per agent
    assert float(tables["waiting"][-1][1]) == 9000.0
    owner_costs = {row[0]: Decimal(row[5]) for row in tables["owners"]}
    assert owner_costs == {"developer": Decimal("0.75"), "owner": Decimal("2")}
    # The total cost is what the owner may see: the developer's $7 chat is not in it (the
    # admin's figure, which includes it, is checked in test_the_list_filter_narrows...).
    total = re.search(r'data-total="cost" data-value="([^"]+)"', body)
    assert total is not None
    assert Decimal(total.group(1)) == _direct_usage(world.owner, start, NOW)[1] == Decimal("2.75")


def test_the_strip_shows_today(client: Any, world: Any, seeded: dict[str, AgentSession]) -> None:
    client.force_login(world.owner)
    with _at(NOW):
        body = client.get(reverse("insights_strip")).content.decode()
        narrowed = client.get(reverse("insights_strip"), {"kind": "chat"}).content.decode()
    assert 'data-strip="failure_rate" data-value="0.5"' in body
    cost = re.search(r'data-strip="cost" data-value="([^"]+)"', body)
    assert cost is not None
    assert Decimal(cost.group(1)) == Decimal("0.75")
    assert 'data-strip="started" data-value="3"' in body  # D, B, A in the last 24 hours
    assert 'data-strip="started" data-value="1"' in narrowed  # the chat only


@pytest.mark.parametrize("query", [{"days": "5"}, {"kind": "boat"}, {"days": "²"}])
def test_bad_parameters_are_400(client: Any, world: Any, query: dict[str, str]) -> None:
    client.force_login(world.owner)
    resp = client.get(reverse("insights"), query)
    assert resp.status_code == 400
    assert next(iter(query)) in resp.content.decode()


def test_the_page_polls_for_fresh_numbers(client: Any, world: Any) -> None:
    client.force_login(world.owner)
    body = client.get(reverse("insights"), {"kind": "chat"}).content.decode()
    assert 'hx-trigger="every 5s"' in body
    assert "kind=chat&amp;days=7&amp;fragment=body" in body
    fragment = client.get(reverse("insights"), {"fragment": "body"}).content.decode()
    assert fragment.lstrip().startswith('<div id="insights-body"')

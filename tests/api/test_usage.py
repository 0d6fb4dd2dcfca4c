"""Usage events: validated at the edge, stored redacted, folded into the session's totals
exactly once, shown in the API, and sortable with keyset pages."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest

from sessions_app import selectors, services
from sessions_app.models import AgentSession, SessionEvent
from tests import factories as f
from tests.api.conftest import Api, error, events

pytestmark = pytest.mark.django_db


@pytest.fixture
def flow(world: Any) -> AgentSession:
    return f.make_session(world.agent, world.owner, status="running")


def post(api: Api, session: AgentSession, batch: dict[str, Any]) -> Any:
    return api.post(f"/sessions/{session.pk}/events", batch)


def totals(session: AgentSession) -> tuple[int, int, Decimal]:
    session.refresh_from_db()
    return session.tokens_in, session.tokens_out, session.cost


def test_usage_events_add_up(runtime: Api, flow: AgentSession) -> None:
    batch = events(
        ("usage", {"tokens_in": 100, "tokens_out": 20, "cost": "0.0015"}),
        ("thinking", {"text": "hm"}),
        ("usage", {"tokens_in": 50, "cost": 0.25}),
    )
    assert post(runtime, flow, batch).status_code == 200
    assert totals(flow) == (150, 20, Decimal("0.251500"))
    assert post(runtime, flow, events(("usage", {"tokens_out": 5}), prefix="n")).status_code == 200
    assert totals(flow) == (150, 25, Decimal("0.251500"))


def test_a_retried_batch_folds_exactly_once(runtime: Api, flow: AgentSession) -> None:
    batch = events(
        ("usage", {"tokens_in": 1000, "tokens_out": 300, "cost": "0.120000"}),
        ("usage", {"tokens_in": 10, "tokens_out": 3, "cost": "0.000100"}),
    )
    first = post(runtime, flow, batch)
    assert first.status_code == 200
    assert first.json()["created"] == 2
    after_first = totals(flow)
    assert after_first == (1010, 303, Decimal("0.120100"))  # positive control: it did add
    for _ in range(3):
        again = post(runtime, flow, batch)
        assert again.status_code == 200
        assert again.json()["duplicates"] == 2
        assert totals(flow) == after_first
    # A retry that carries one new event besides the old ones adds only the new one.
    mixed = events(
        ("usage", {"tokens_in": 1000, "tokens_out": 300, "cost": "0.120000"}),
        ("usage", {"tokens_in": 10, "tokens_out": 3, "cost": "0.000100"}),
        ("usage", {"tokens_in": 1, "tokens_out": 1, "cost": "1"}),
    )
    assert post(runtime, flow, mixed).json()["created"] == 1
    assert totals(flow) == (1011, 304, Decimal("1.120100"))
    assert SessionEvent.objects.filter(session=flow, type="usage").count() == 3


def test_the_service_folds_once_when_called_twice(world: Any, flow: AgentSession) -> None:
    batch = [services.EventIn("u1", "usage", {"tokens_in": 7, "tokens_out": 2, "cost": "0.5"})]
    services.events_record(session=flow, events=batch)
    services.events_record(session=flow, events=batch)
    assert totals(flow) == (7, 2, Decimal("0.5"))


def test_usage_after_the_end_is_still_counted(runtime: Api, flow: AgentSession) -> None:
    """The final bill often arrives after the runtime reported completion."""
    post(runtime, flow, events(("status_change", {"to": "completed"}), prefix="s"))
    response = post(runtime, flow, events(("usage", {"tokens_in": 9, "cost": "0.01"})))
    assert response.json()["results"][0]["status"] == "stored"
    assert totals(flow) == (9, 0, Decimal("0.01"))
    refused = post(runtime, flow, events(("thinking", {"text": "late"}), prefix="t"))
    assert refused.json()["results"][0]["status"] == "session_ended"  # control


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"tokens_in": -1}, "tokens_in"),
        ({"tokens_out": "many"}, "tokens_out"),
        ({"cost": "-0.1"}, "cost"),
        ({"cost": "0.0000001"}, "cost"),
        ({"cost": "NaN"}, "cost"),
        ({"tokens_in": 10**13}, "tokens_in"),
    ],
)
def test_bad_usage_is_refused_naming_the_field(
    runtime: Api, flow: AgentSession, payload: dict[str, Any], field: str
) -> None:
    response = post(runtime, flow, events(("usage", payload)))
    assert response.status_code == 422, response.content
    assert field in str(error(response))
    assert totals(flow) == (0, 0, Decimal(0))


def test_usage_extras_are_redacted_like_everything_stored(runtime: Api, flow: AgentSession) -> None:
    secret = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
    post(runtime, flow, events(("usage", {"tokens_in": 1, "model_key": secret})))
    stored = SessionEvent.objects.get(session=flow, type="usage")
    assert secret not in str(stored.payload)
    assert stored.redactions


def test_the_api_shows_usage(runtime: Api, flow: AgentSession) -> None:
    post(runtime, flow, events(("usage", {"tokens_in": 3, "tokens_out": 4, "cost": "0.25"})))
    body = runtime.get(f"/sessions/{flow.pk}").json()
    assert body["usage"] == {"tokens_in": 3, "tokens_out": 4, "cost": "0.250000"}


def _seed_costs(world: Any, n: int) -> list[AgentSession]:
    rng = random.Random(7)
    sessions = []
    for i in range(n):
        s = f.make_session(world.agent, world.owner)
        # Many ties, so the id breaks them.
        cost = Decimal(rng.choice(["0", "0.5", "1.25", "3"])) + Decimal(i % 3) / 1000
        tokens = rng.choice([0, 10, 10, 500])
        AgentSession.objects.filter(pk=s.pk).update(cost=cost, tokens_in=tokens)
        sessions.append(s)
    return sessions


@pytest.mark.parametrize(("sort", "field"), [("cost", "cost"), ("tokens", "tokens_total")])
def test_sorting_by_usage_is_keyset_paginated(world: Any, sort: str, field: str) -> None:
    _seed_costs(world, 47)
    flt = selectors.SessionFilter(sort=sort)
    seen: list[Any] = []
    cursor = None
    pages = 0
    while True:
        page = selectors.session_page(world.admin, flt, cursor=cursor, limit=10)
        seen += [s.pk for s in page.items]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    expected = list(
        selectors.sessions_visible_to(world.admin)
        .filter(archived_at__isnull=True)
        .order_by(f"-{field}", "-id")
        .values_list("pk", flat=True)
    )
    assert pages == 5
    assert seen == expected
    assert len(set(seen)) == 47


def test_the_api_sorts_by_cost_with_cursors(world: Any, personal: Any) -> None:
    _seed_costs(world, 12)
    api = personal(world.admin)
    items: list[dict[str, Any]] = []
    cursor = ""
    while True:
        body = api.get("/sessions", {"sort": "cost", "limit": 5, "cursor": cursor}).json()
        items += body["items"]
        if not body["next_cursor"]:
            break
        cursor = body["next_cursor"]
    costs = [Decimal(i["usage"]["cost"]) for i in items]
    assert len(items) == 12
    assert costs == sorted(costs, reverse=True)
    bad = api.get("/sessions", {"sort": "cost", "cursor": "bm9wZQ"})
    assert bad.status_code == 422
    assert "cursor" in str(error(bad))

"""What one batch of runtime events costs the database, and the token cache that keeps it low.

The ingest path is the product's hottest: these counts are its budget. Savepoints are left out:
the test client runs inside a transaction, where a request's own BEGIN/COMMIT become savepoints.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from sessions_app import services
from sessions_app.models import AgentSession, ApiToken, SessionEvent
from tests import factories as f
from tests.api.conftest import Api, events

MIXED = (
    ("message", {"role": "agent", "text": "working on it"}),
    ("step", {"state": "started", "index": 2, "total": 5, "name": "build"}),
    ("status_change", {"to": "waiting_input"}),
    ("checkpoint", {"state": "awaiting", "name": "deploy?"}),
)


def _statements(api: Api, session: AgentSession, batch: dict[str, Any]) -> list[str]:
    with CaptureQueriesContext(connection) as ctx:
        response = api.post(f"/sessions/{session.pk}/events", batch)
    assert response.status_code == 200, response.content
    return [
        q["sql"]
        for q in ctx.captured_queries
        if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))
    ]


@pytest.fixture
def flow(world: Any) -> AgentSession:
    return f.make_session(world.agent, world.owner, status="running")


def test_a_batch_with_a_status_change_is_four_statements(
    world: Any, runtime: Api, flow: AgentSession
) -> None:
    # Warm: token use and runtime liveness are recorded at most once a minute.
    _statements(runtime, flow, events(("thinking", {"text": "warm"}), prefix="w"))

    sql = _statements(runtime, flow, events(*MIXED))

    # lock (the lookup itself), stored ids, one COPY (an INSERT off PostgreSQL), one UPDATE;
    # the token is remembered.
    assert len(sql) == 4, sql
    assert sql[0].startswith("SELECT")
    assert "sessions_app_agentsession" in sql[0]
    assert sql[2].startswith(
        ('COPY "sessions_app_sessionevent"', 'INSERT INTO "sessions_app_sessionevent"')
    )
    assert sql[3].startswith('UPDATE "sessions_app_agentsession"')
    flow.refresh_from_db()
    assert flow.status == "waiting_input"
    assert flow.status_group == "attention"
    assert flow.checkpoint_state == "awaiting"
    assert flow.current_step == 2
    seqs = list(
        SessionEvent.objects.filter(session=flow).order_by("seq").values_list("seq", "type")
    )
    # The status change keeps its place in the batch (gap-free seqs, request order).
    assert [t for _, t in seqs[-4:]] == ["message", "step", "status_change", "checkpoint"]
    assert [s for s, _ in seqs] == list(range(seqs[0][0], seqs[0][0] + len(seqs)))


def test_the_answer_is_the_row_as_stored(world: Any, runtime: Api, flow: AgentSession) -> None:
    answer = runtime.post(f"/sessions/{flow.pk}/events", events(*MIXED)).json()["session"]
    flow.refresh_from_db()
    assert answer["status"] == flow.status == "waiting_input"
    assert answer["status_group"] == flow.status_group
    assert answer["version"] == flow.version
    assert answer["last_seq"] == flow.last_seq


def test_without_the_token_cache_the_token_costs_two_more(
    world: Any, runtime: Api, flow: AgentSession, settings: Any
) -> None:
    _statements(runtime, flow, events(("thinking", {"text": "warm"}), prefix="w"))
    cached = _statements(runtime, flow, events(*MIXED, prefix="a"))
    settings.SCC_TOKEN_CACHE_SECONDS = 0
    uncached = _statements(runtime, flow, events(("thinking", {"text": "x"}), prefix="b"))
    assert len(cached) == 4
    assert len(uncached) == 6
    assert "sessions_app_apitoken" in uncached[0]


def test_a_revoked_token_is_refused_at_once_in_this_process(
    world: Any, runtime: Api, flow: AgentSession
) -> None:
    assert runtime.get("/token").status_code == 200  # cached now
    token = ApiToken.objects.get(kind="runtime", user=world.agent_owner)
    services.token_revoke(token=token)
    assert runtime.get("/token").status_code == 401


def test_a_revocation_made_elsewhere_takes_effect_within_the_cache_time(
    world: Any, runtime: Api, settings: Any
) -> None:
    settings.SCC_TOKEN_CACHE_SECONDS = 0.5
    assert runtime.get("/token").status_code == 200
    # Another process revoking: a raw UPDATE, no signal or hook reaches this process.
    ApiToken.objects.filter(user=world.agent_owner).update(revoked_at=timezone.now())
    deadline = time.monotonic() + 0.5 + 0.3
    while runtime.get("/token").status_code == 200:
        assert time.monotonic() < deadline, "revocation not seen within the cache time"
        time.sleep(0.05)
    assert runtime.get("/token").status_code == 401


def test_usage_adds_no_statement(world: Any, runtime: Api, flow: AgentSession) -> None:
    """Usage totals ride the batch's one UPDATE as increments."""
    _statements(runtime, flow, events(("thinking", {"text": "warm"}), prefix="w"))
    batch = events(*MIXED, ("usage", {"tokens_in": 40, "tokens_out": 2, "cost": "0.01"}))
    sql = _statements(runtime, flow, batch)
    assert len(sql) == 4, sql
    assert '"tokens_in" = ' in sql[3]
    flow.refresh_from_db()
    assert (flow.tokens_in, flow.tokens_out, str(flow.cost)) == (40, 2, "0.010000")

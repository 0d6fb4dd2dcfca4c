"""Terminal means terminal, and a reused event id is a conflict, not a silent duplicate."""

from __future__ import annotations

from typing import Any

import pytest

from sessions_app.models import AgentSession, SessionEvent
from tests import factories as f
from tests.api.conftest import Api, events

TERMINAL = [
    ("flow_run", "completed"),
    ("flow_run", "cancelled"),
    ("flow_run", "failed"),
    ("background_task", "completed"),
    ("chat", "ended"),
    ("chat", "failed"),
]


def post(api: Api, session: AgentSession, batch: dict[str, Any]) -> Any:
    response = api.post(f"/sessions/{session.pk}/events", batch)
    assert response.status_code == 200, response.content
    return response.json()


def count(session: AgentSession) -> int:
    return SessionEvent.objects.filter(session=session).count()


@pytest.mark.parametrize(("kind", "status"), TERMINAL)
def test_events_for_an_ended_session_are_refused_per_item(
    world: Any, runtime: Api, kind: str, status: str
) -> None:
    session = f.make_session(world.agent, world.owner, kind, status=status)
    before, last_seq = count(session), session.last_seq
    body = post(
        runtime,
        session,
        events(
            ("message", {"role": "agent", "text": "late"}),
            ("thinking", {"text": "late"}),
            ("status_change", {"to": status}),
            ("error", {"code": "oom", "message": "the runtime died"}),
        ),
    )
    assert [r["status"] for r in body["results"]] == [
        "session_ended",
        "session_ended",
        "stored",
        "stored",
    ]
    assert [r["seq"] for r in body["results"][:2]] == [None, None]
    assert (body["created"], body["refused"], body["conflicts"]) == (2, 2, 0)
    assert count(session) == before + 2
    session.refresh_from_db()
    assert session.status == status
    assert session.last_seq == last_seq + 2
    assert session.error_code == "oom"
    assert not SessionEvent.objects.filter(session=session, type="message").exists()


def test_a_transition_out_of_a_terminal_status_is_refused_per_item(
    world: Any, runtime: Api
) -> None:
    flow = f.make_session(world.agent, world.owner, status="completed")
    body = post(runtime, flow, events(("status_change", {"to": "running"})))
    assert body["results"][0]["status"] == "session_ended"
    flow.refresh_from_db()
    assert flow.status == "completed"


def test_events_after_the_end_in_the_same_batch_are_refused(world: Any, runtime: Api) -> None:
    flow = f.make_session(world.agent, world.owner, status="running")
    body = post(
        runtime,
        flow,
        events(
            ("thinking", {"text": "before"}),
            ("status_change", {"to": "completed"}),
            ("thinking", {"text": "after"}),
        ),
    )
    assert [r["status"] for r in body["results"]] == ["stored", "stored", "session_ended"]


def test_a_retry_after_the_end_still_gets_its_first_answer(world: Any, runtime: Api) -> None:
    flow = f.make_session(world.agent, world.owner, status="running")
    batch = events(("thinking", {"text": "a"}), ("status_change", {"to": "completed"}))
    first = post(runtime, flow, batch)
    again = post(runtime, flow, batch)
    assert again["results"] == first["results"]
    assert (again["created"], again["duplicates"]) == (0, 2)


def test_an_event_id_resent_with_other_content_is_a_conflict(world: Any, runtime: Api) -> None:
    flow = f.make_session(world.agent, world.owner, status="running")
    first = post(runtime, flow, events(("thinking", {"text": "original"})))
    body = post(
        runtime,
        flow,
        events(
            ("thinking", {"text": "changed"}),
            ("message", {"role": "agent", "text": "new"}),
            prefix="e",
        ),
    )
    assert body["results"][0] == {
        "event_id": "e1",
        "seq": first["results"][0]["seq"],
        "status": "conflict",
    }
    assert (body["created"], body["duplicates"], body["conflicts"]) == (1, 0, 1)
    stored = SessionEvent.objects.get(session=flow, event_id="e1")
    assert stored.payload == {"text": "original"}


def test_a_resent_event_with_a_secret_is_a_duplicate_not_a_conflict(
    world: Any, runtime: Api
) -> None:
    flow = f.make_session(world.agent, world.owner, status="running")
    batch = events(("tool_result", {"call_id": "c", "output": "GITHUB_TOKEN=ghp_" + "x1Y2" * 9}))
    post(runtime, flow, batch)
    again = post(runtime, flow, batch)
    assert (again["duplicates"], again["conflicts"]) == (1, 0)


def test_a_resent_status_report_is_a_duplicate(world: Any, runtime: Api) -> None:
    flow = f.make_session(world.agent, world.owner, status="running")
    post(runtime, flow, events(("status_change", {"to": "paused"})))
    again = post(runtime, flow, events(("status_change", {"to": "paused"})))
    other = post(runtime, flow, events(("status_change", {"to": "running"})))
    assert (again["duplicates"], again["conflicts"]) == (1, 0)
    assert other["results"][0]["status"] == "conflict"

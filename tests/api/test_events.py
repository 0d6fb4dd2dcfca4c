from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from sessions_app.models import AgentSession, SessionEvent
from tests import factories as f
from tests.api.conftest import Api, error, events

pytestmark = pytest.mark.django_db


@pytest.fixture
def flow(world: Any) -> AgentSession:
    return f.make_session(world.agent, world.owner, status="running")


def post(api: Api, session: AgentSession, batch: dict[str, Any]) -> Any:
    return api.post(f"/sessions/{session.pk}/events", batch)


def stored(session: AgentSession) -> list[SessionEvent]:
    return list(SessionEvent.objects.filter(session=session).order_by("seq"))


def test_it_stores_a_batch_with_gap_free_seqs(world: Any, runtime: Api, flow: AgentSession) -> None:
    before = flow.last_seq
    response = post(runtime, flow, events(("thinking", {"text": "a"}), ("thinking", {"text": "b"})))
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["results"] == [
        {"event_id": "e1", "seq": before + 1, "status": "stored"},
        {"event_id": "e2", "seq": before + 2, "status": "stored"},
    ]
    assert (data["created"], data["duplicates"]) == (2, 0)
    assert data["session"]["last_seq"] == before + 2
    assert [e.seq for e in stored(flow)] == list(range(1, before + 3))


def test_every_event_type_is_stored_and_applied(
    world: Any, runtime: Api, flow: AgentSession
) -> None:
    batch = events(
        ("message", {"role": "user", "text": "hi"}),
        ("message", {"role": "agent", "text": "hello", "tokens": 12}),
        ("thinking", {"text": "hmm"}),
        ("tool_call", {"call_id": "c1", "name": "run_shell", "arguments": {"command": "ls"}}),
        ("tool_result", {"call_id": "c1", "output": "a.txt", "is_error": False}),
        ("file_edit", {"path": "a.txt", "before": None, "after": "new"}),
        ("step", {"state": "started", "name": "Build", "index": 2, "total": 5}),
        ("checkpoint", {"state": "awaiting", "name": "Deploy?"}),
        ("progress", {"turns": 7}),
        ("error", {"code": "E1", "message": "it broke"}),
        ("agent_status", {"status": "waiting_input"}),
        ("artifact", {"name": "report.md", "uri": "s3://x/report.md", "size_bytes": 10}),
        ("status_change", {"to": "waiting_input", "reason": "checkpoint"}),
    )
    response = post(runtime, flow, batch)
    assert response.status_code == 200, response.content
    flow.refresh_from_db()
    assert flow.status == "waiting_input"
    assert (flow.current_step, flow.total_steps, flow.current_step_name) == (2, 5, "Build")
    assert flow.message_count == 2
    assert flow.turns == 7  # the progress event sets it after the agent message counted one
    assert (flow.checkpoint_state, flow.checkpoint_name) == ("awaiting", "Deploy?")
    assert (flow.error_code, flow.error_message) == ("E1", "it broke")
    assert flow.agent_status == "waiting_input"
    rows = {e.event_id: e for e in stored(flow)}
    assert rows["e1"].actor == "owner"  # a user's message is theirs
    assert rows["e2"].actor == "builder"
    assert rows["e2"].payload == {"role": "agent", "text": "hello", "tokens": 12}
    assert rows["e6"].payload == {"path": "a.txt", "before": None, "after": "new"}
    assert rows["e13"].payload["from"] == "running"


def test_a_retried_batch_adds_nothing_and_answers_the_same(
    world: Any, runtime: Api, flow: AgentSession
) -> None:
    batch = events(
        ("message", {"role": "agent", "text": "one"}),
        ("status_change", {"to": "running"}),  # the status it already has
        ("step", {"state": "started", "name": "A", "index": 1}),
    )
    first = post(runtime, flow, batch).json()
    count = SessionEvent.objects.filter(session=flow).count()
    for _ in range(2):
        again = post(runtime, flow, batch).json()
        assert again["results"] == first["results"]
        assert (again["created"], again["duplicates"]) == (0, 3)
    assert SessionEvent.objects.filter(session=flow).count() == count
    flow.refresh_from_db()
    assert flow.message_count == 1


def test_a_batch_overlapping_an_earlier_one_adds_only_the_new_events(
    world: Any, runtime: Api, flow: AgentSession
) -> None:
    first = post(runtime, flow, events(("thinking", {"text": "1"}), ("thinking", {"text": "2"})))
    overlap = {
        "events": [
            {"event_id": "e2", "type": "thinking", "payload": {"text": "2"}},
            {"event_id": "e3", "type": "thinking", "payload": {"text": "3"}},
        ]
    }
    second = post(runtime, flow, overlap).json()
    e2 = first.json()["results"][1]
    assert second["results"] == [e2, {"event_id": "e3", "seq": e2["seq"] + 1, "status": "stored"}]
    assert (second["created"], second["duplicates"]) == (1, 1)


def test_status_changes_go_through_the_lifecycle(world: Any, runtime: Api) -> None:
    task = f.make_session(world.agent, world.owner, "background_task")
    response = post(
        runtime,
        task,
        events(("status_change", {"to": "provisioning"}), ("status_change", {"to": "running"})),
    )
    assert response.status_code == 200
    task.refresh_from_db()
    assert task.status == "running"
    assert task.started_at is not None
    changes = [e.payload for e in stored(task) if e.type == "status_change"]
    assert [(c["from"], c["to"]) for c in changes] == [
        (None, "queued"),
        ("queued", "provisioning"),
        ("provisioning", "running"),
    ]


def test_an_illegal_transition_is_a_409_naming_from_and_to_and_stores_nothing(
    world: Any, runtime: Api
) -> None:
    flow = f.make_session(world.agent, world.owner, status="pending")
    count = SessionEvent.objects.filter(session=flow).count()
    response = post(
        runtime, flow, events(("thinking", {"text": "early"}), ("status_change", {"to": "stopped"}))
    )
    assert response.status_code == 409
    body = error(response)
    assert body["code"] == "illegal_transition"
    assert body["details"] == {"kind": "flow_run", "from": "pending", "to": "stopped"}
    assert "pending" in body["message"]
    assert "stopped" in body["message"]
    assert SessionEvent.objects.filter(session=flow).count() == count


def test_a_status_the_kind_does_not_have_is_a_422_naming_the_event(
    world: Any, runtime: Api
) -> None:
    chat = f.make_session(world.agent, world.owner, "chat")
    response = post(
        runtime, chat, events(("thinking", {"text": "x"}), ("status_change", {"to": "completed"}))
    )
    assert response.status_code == 422
    assert error(response)["field"] == "events[1].payload.to"


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"type": "message", "payload": {"role": "robot", "text": "x"}}, "events[0].payload.role"),
        ({"type": "message", "payload": {"role": "agent"}}, "events[0].payload.text"),
        (
            {"type": "step", "payload": {"state": "started", "name": "A", "index": 0}},
            "events[0].payload.index",
        ),
        (
            {"type": "step", "payload": {"state": "started", "name": "A", "index": 10**20}},
            "events[0].payload.index",
        ),
        (
            {"type": "step", "payload": {"state": "started", "name": "A", "index": 4, "total": 3}},
            "events[0].payload",
        ),
        (
            {"type": "file_edit", "payload": {"path": "a", "before": None, "after": None}},
            "events[0].payload",
        ),
        ({"type": "progress", "payload": {"turns": -1}}, "events[0].payload.turns"),
        ({"type": "agent_status", "payload": {"status": "asleep"}}, "events[0].payload.status"),
        ({"type": "status_change", "payload": {"to": "exploded"}}, "events[0].payload.to"),
        ({"type": "teleport", "payload": {}}, "events[0]"),
        ({"type": "thinking", "payload": "text"}, "events[0].payload"),
        ({"type": "thinking", "payload": {"text": "x"}, "colour": "red"}, "events[0].colour"),
        ({"type": "thinking"}, "events[0].payload"),
    ],
)
def test_a_malformed_event_is_a_422_naming_the_item_and_field(
    world: Any, runtime: Api, flow: AgentSession, event: dict[str, Any], field: str
) -> None:
    good = {"event_id": "ok", "type": "thinking", "payload": {"text": "fine"}}
    response = post(runtime, flow, {"events": [{"event_id": "bad", **event}, good]})
    assert response.status_code == 422, response.content
    assert error(response)["field"] == field
    assert not SessionEvent.objects.filter(session=flow, event_id="ok").exists()


@pytest.mark.parametrize(
    "batch",
    [
        {"events": []},
        {"events": "nope"},
        {},
        {"events": [{"event_id": "", "type": "thinking", "payload": {"text": "x"}}]},
        {"events": [{"event_id": "x" * 101, "type": "thinking", "payload": {"text": "x"}}]},
        {"events": [{"type": "thinking", "payload": {"text": "x"}}]},
    ],
)
def test_a_malformed_batch_is_a_422(
    world: Any, runtime: Api, flow: AgentSession, batch: dict[str, Any]
) -> None:
    assert post(runtime, flow, batch).status_code == 422


def test_event_ids_must_be_unique_within_a_batch(
    world: Any, runtime: Api, flow: AgentSession
) -> None:
    batch = {
        "events": [
            {"event_id": "same", "type": "thinking", "payload": {"text": str(i)}} for i in range(2)
        ]
    }
    response = post(runtime, flow, batch)
    assert response.status_code == 422
    assert "events[1].event_id" in error(response)["message"]


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (
            '{"events": [{"event_id": "a", "type": "thinking", "payload": {"text": "nul \\u0000"}}]}',
            422,
        ),
        (
            '{"events": [{"event_id": "a", "type": "thinking", "payload": {"text": "half \\ud800"}}]}',
            422,
        ),
        (
            '{"events": [{"event_id": "a", "type": "thinking", "payload": {"text": "x", "\\u0000": 1}}]}',
            422,
        ),
        ('{"events": [{"event_id": "a", "type": "progress", "payload": {"turns": NaN}}]}', 400),
        (
            '{"events": [{"event_id": "a", "type": "progress", "payload": {"turns": Infinity}}]}',
            400,
        ),
        (
            '{"events": [{"event_id": "a", "type": "tool_call", "payload": {"call_id": "c", "name": "n", "arguments": {"n": 1e999}}}]}',
            400,
        ),
        ('{"events": [', 400),
    ],
)
def test_unstorable_text_and_numbers_are_refused_not_a_500(
    world: Any, runtime: Api, flow: AgentSession, raw: str, status: int
) -> None:
    response = post_raw(runtime, flow, raw)
    assert response.status_code == status, response.content
    assert error(response)


def post_raw(api: Api, session: AgentSession, raw: str | bytes) -> Any:
    return api.post(f"/sessions/{session.pk}/events", raw=raw)


def test_a_huge_but_finite_number_in_a_payload_is_stored(
    world: Any, runtime: Api, flow: AgentSession
) -> None:
    batch = events(("tool_call", {"call_id": "c", "name": "n", "arguments": {"n": 10**30}}))
    assert post(runtime, flow, batch).status_code == 200


def test_more_than_500_events_is_a_413_naming_the_limit(
    world: Any, runtime: Api, flow: AgentSession
) -> None:
    batch = events(*[("thinking", {"text": "x"})] * 501)
    response = post(runtime, flow, batch)
    assert response.status_code == 413
    assert "500 events" in error(response)["message"]
    assert error(response)["details"] == {"limit": 500, "actual": 501}
    assert post(runtime, flow, events(*[("thinking", {"text": "x"})] * 500)).status_code == 200


def test_a_body_over_1_mib_is_a_413_naming_the_limit(
    world: Any, runtime: Api, flow: AgentSession
) -> None:
    text = "x" * (200 * 1024)
    batch = events(*[("thinking", {"text": text})] * 6)
    assert len(json.dumps(batch)) > 1024 * 1024
    response = post(runtime, flow, batch)
    assert response.status_code == 413
    assert "1 MiB" in error(response)["message"]
    assert error(response)["details"]["limit"] == 1024 * 1024
    assert not SessionEvent.objects.filter(session=flow, type="thinking").exists()


def test_an_event_over_256_kib_is_a_413_naming_the_event(
    world: Any, runtime: Api, flow: AgentSession
) -> None:
    batch = events(("thinking", {"text": "small"}), ("thinking", {"text": "y" * (257 * 1024)}))
    response = post(runtime, flow, batch)
    assert response.status_code == 413
    assert "events[1]" in error(response)["message"]
    assert "256 KiB" in error(response)["message"]
    just_under = events(("thinking", {"text": "y" * (255 * 1024)}))
    assert post(runtime, flow, just_under).status_code == 200


def test_a_posted_secret_is_stored_redacted_with_counts(
    world: Any, runtime: Api, flow: AgentSession
) -> None:
    secret = "ghp_" + "a1B2" * 9
    batch = events(
        (
            "tool_result",
            {"call_id": "c1", "output": f"export GITHUB_TOKEN={secret}\nAKIAIOSFODNN7EXAMPLE"},
        ),
        ("message", {"role": "agent", "text": "nothing to hide"}),
    )
    assert post(runtime, flow, batch).status_code == 200
    row = SessionEvent.objects.get(session=flow, event_id="e1")
    assert secret not in json.dumps(row.payload)
    assert "AKIAIOSFODNN7EXAMPLE" not in json.dumps(row.payload)
    assert row.payload["output"].startswith("export GITHUB_TOKEN=[REDACTED:github_token]")
    assert row.redactions == {"github_token": 1, "aws_access_key_id": 1}
    assert SessionEvent.objects.get(session=flow, event_id="e2").redactions == {}
    served = runtime.get(f"/sessions/{flow.pk}/events").json()["items"]
    assert secret not in json.dumps(served)
    assert [e["redactions"] for e in served if e["event_id"] == "e1"] == [
        {"github_token": 1, "aws_access_key_id": 1}
    ]


def test_only_runtime_tokens_post_events(world: Any, personal: Any, flow: AgentSession) -> None:
    response = post(personal(world.admin), flow, events(("thinking", {"text": "x"})))
    assert response.status_code == 403


def test_posting_to_an_unknown_or_foreign_session_is_a_404(world: Any, runtime: Api) -> None:
    batch = events(("thinking", {"text": "x"}))
    response = runtime.post("/sessions/00000000-0000-0000-0000-000000000000/events", batch)
    assert response.status_code == 404
    other_agent = f.make_agent(world.project, world.agent_owner, name="other")
    theirs = f.make_session(other_agent, world.owner)
    assert post(runtime, theirs, batch).status_code == 404


def _queries_for_batch(runtime: Api, session: AgentSession, n: int, prefix: str) -> int:
    batch = events(
        *[("message", {"role": "agent", "text": f"m{i}"}) for i in range(n)], prefix=prefix
    )
    with CaptureQueriesContext(connection) as ctx:
        response = post(runtime, session, batch)
    assert response.status_code == 200
    assert response.json()["created"] == n
    return len(ctx.captured_queries)


@pytest.mark.postgres
def test_a_batch_of_500_costs_the_same_queries_as_a_batch_of_1(
    world: Any, runtime: Api, flow: AgentSession
) -> None:
    _queries_for_batch(runtime, flow, 1, "warm")  # token use is recorded once a minute
    assert _queries_for_batch(runtime, flow, 1, "one") == _queries_for_batch(
        runtime, flow, 500, "many"
    )


def test_a_batch_of_100_costs_the_same_queries_as_a_batch_of_1(
    world: Any, runtime: Api, flow: AgentSession
) -> None:
    # SQLite splits inserts of more than ~120 rows (999 variables per statement); 100 fits
    # on both databases.
    _queries_for_batch(runtime, flow, 1, "warm")
    assert _queries_for_batch(runtime, flow, 1, "one") == _queries_for_batch(
        runtime, flow, 100, "many"
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_batch_retried_three_times_concurrently_is_stored_once_with_gap_free_seqs(
    world: Any, runtime_token: str
) -> None:
    session = f.make_session(world.agent, world.owner, status="running")
    start_seq = session.last_seq
    batch = events(
        *[("message", {"role": "agent", "text": f"m{i}"}) for i in range(50)],
        ("status_change", {"to": "waiting_input"}),
        ("checkpoint", {"state": "awaiting", "name": "go?"}),
    )
    barrier = threading.Barrier(3)
    answers: list[Any] = []
    failures: list[BaseException] = []

    def deliver() -> None:
        try:
            api = Api(runtime_token)
            barrier.wait()
            response = api.post(f"/sessions/{session.pk}/events", batch)
            answers.append((response.status_code, response.json()))
        except BaseException as exc:  # reported below; a thread cannot fail the test itself
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not failures
    assert [status for status, _ in answers] == [200, 200, 200]
    results = [body["results"] for _, body in answers]
    assert results[0] == results[1] == results[2]
    assert sorted(body["created"] for _, body in answers) == [0, 0, 52]

    rows = stored(session)
    assert [e.seq for e in rows] == list(range(1, start_seq + 53))
    assert len({e.event_id for e in rows}) == len(rows)
    session.refresh_from_db()
    assert session.last_seq == start_seq + 52
    assert session.message_count == 50
    assert session.status == "waiting_input"

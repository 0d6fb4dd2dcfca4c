from __future__ import annotations

from typing import Any

import pytest

from sessions_app.models import AgentSession, RuntimeCommand, SessionEvent
from tests import factories as f
from tests.api.conftest import Api, error, events

pytestmark = pytest.mark.django_db


def commands(session: AgentSession) -> list[str]:
    return list(
        RuntimeCommand.objects.filter(session=session)
        .order_by("created_at")
        .values_list("kind", flat=True)
    )


@pytest.mark.parametrize(
    ("kind", "start", "verb", "status", "command"),
    [
        ("flow_run", "running", "cancel", "cancelled", "cancel"),
        ("flow_run", "running", "stop", "stopping", "stop"),
        ("flow_run", "running", "pause", "paused", "pause"),
        ("flow_run", "paused", "resume", "running", "resume"),
        ("flow_run", "stopped", "resume", "running", "resume"),
        ("background_task", "running", "pause", "paused", "pause"),
        ("chat", "running", "end", "ended", "end"),
        ("chat", "running", "pause", "paused", "pause"),
    ],
)
def test_each_verb_changes_the_session_and_queues_a_command(
    world: Any, personal: Any, kind: str, start: str, verb: str, status: str, command: str
) -> None:
    session = f.make_session(world.agent, world.owner, kind, status=start)
    response = personal(world.owner).post(f"/sessions/{session.pk}/{verb}")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == status
    session.refresh_from_db()
    assert session.status == status
    assert commands(session) == [command]
    assert SessionEvent.objects.filter(
        session=session, type="action", payload__action=verb
    ).exists()


def test_repeating_a_verb_is_a_no_op_that_queues_nothing_more(world: Any, personal: Any) -> None:
    session = f.make_session(world.agent, world.owner, status="running")
    api = personal(world.owner)
    assert api.post(f"/sessions/{session.pk}/pause").status_code == 200
    assert api.post(f"/sessions/{session.pk}/pause").status_code == 200
    assert commands(session) == ["pause"]


@pytest.mark.parametrize(
    ("kind", "start", "verb", "from_", "to"),
    [
        ("flow_run", "completed", "pause", "completed", "paused"),
        ("flow_run", "cancelled", "resume", "cancelled", "running"),
        ("background_task", "failed", "stop", "failed", "stopping"),
        ("chat", "ended", "pause", "ended", "paused"),
    ],
)
def test_an_illegal_transition_is_a_409_naming_from_and_to(
    world: Any, personal: Any, kind: str, start: str, verb: str, from_: str, to: str
) -> None:
    session = f.make_session(world.agent, world.owner, kind, status=start)
    response = personal(world.owner).post(f"/sessions/{session.pk}/{verb}")
    assert response.status_code == 409
    body = error(response)
    assert body["code"] == "illegal_transition"
    assert (body["details"]["from"], body["details"]["to"]) == (from_, to)
    assert commands(session) == []


def test_ending_a_flow_run_is_a_409(world: Any, personal: Any) -> None:
    session = f.make_session(world.agent, world.owner, status="running")
    response = personal(world.owner).post(f"/sessions/{session.pk}/end")
    assert response.status_code == 409
    assert "Only chats" in error(response)["message"]


def test_resuming_past_the_concurrency_cap_is_a_409(world: Any, personal: Any) -> None:
    world.agent.max_concurrent_sessions_per_user = 1
    world.agent.save()
    stopped = f.make_session(world.agent, world.owner, status="stopped")
    f.make_session(world.agent, world.owner)
    response = personal(world.owner).post(f"/sessions/{stopped.pk}/resume")
    assert response.status_code == 409
    assert error(response)["code"] == "concurrency_limit"


def test_a_viewer_who_may_not_act_gets_403_and_a_stranger_404(world: Any, personal: Any) -> None:
    session = f.make_session(world.agent, world.owner, status="running")
    assert personal(world.developer).post(f"/sessions/{session.pk}/pause").status_code == 403
    assert personal(world.outsider).post(f"/sessions/{session.pk}/pause").status_code == 404
    assert personal(world.other_admin).post(f"/sessions/{session.pk}/pause").status_code == 404
    for user in (world.maintainer, world.agent_owner):
        assert personal(user).post(f"/sessions/{session.pk}/pause").status_code == 200
    session.refresh_from_db()
    assert session.status == "paused"


def test_runtime_tokens_may_not_act(world: Any, runtime: Api) -> None:
    session = f.make_session(world.agent, world.owner, status="running")
    response = runtime.post(f"/sessions/{session.pk}/cancel")
    assert response.status_code == 403
    assert "personal token" in error(response)["message"]


def _awaiting(world: Any, runtime: Api) -> AgentSession:
    session = f.make_session(world.agent, world.owner, status="running")
    batch = events(
        ("status_change", {"to": "waiting_input"}),
        ("checkpoint", {"state": "awaiting", "name": "Deploy?"}),
    )
    assert runtime.post(f"/sessions/{session.pk}/events", batch).status_code == 200
    return session


def test_approving_a_checkpoint_resumes_the_run(world: Any, personal: Any, runtime: Api) -> None:
    session = _awaiting(world, runtime)
    response = personal(world.owner).post(
        f"/sessions/{session.pk}/checkpoint/approve", {"note": "go"}
    )
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "running"
    assert response.json()["checkpoint"] == {"state": "approved", "name": "Deploy?"}
    command = RuntimeCommand.objects.get(session=session)
    assert (command.kind, command.payload) == ("approve", {"checkpoint": "Deploy?", "note": "go"})


def test_rejecting_a_checkpoint_marks_a_problem_for_the_runtime_to_fail(
    world: Any, personal: Any, runtime: Api
) -> None:
    session = _awaiting(world, runtime)
    response = personal(world.owner).post(f"/sessions/{session.pk}/checkpoint/reject")
    assert response.status_code == 200, response.content
    assert response.json()["status_group"] == "problem"
    assert commands(session) == ["reject"]


def test_deciding_without_a_waiting_checkpoint_is_a_409(world: Any, personal: Any) -> None:
    session = f.make_session(world.agent, world.owner, status="running")
    response = personal(world.owner).post(f"/sessions/{session.pk}/checkpoint/approve")
    assert response.status_code == 409
    assert "no checkpoint" in error(response)["message"]


def test_a_message_is_stored_redacted_and_sent_to_the_runtime(world: Any, personal: Any) -> None:
    chat = f.make_session(world.agent, world.owner, "chat")
    response = personal(world.owner).post(
        f"/sessions/{chat.pk}/messages", {"text": "use password=hunter2hunter2 please"}
    )
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["command"]["kind"] == "message"
    assert "hunter2" not in data["command"]["payload"]["text"]
    assert data["session"]["progress"]["message_count"] == 1
    event = SessionEvent.objects.get(session=chat, type="message")
    assert "hunter2" not in event.payload["text"]
    assert event.redactions


def test_a_message_brings_an_idle_chat_back(world: Any, personal: Any) -> None:
    chat = f.make_session(world.agent, world.owner, "chat", status="idle")
    response = personal(world.owner).post(f"/sessions/{chat.pk}/messages", {"text": "hello?"})
    assert response.json()["session"]["status"] == "running"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"text": ""}, 422),
        ({"text": "   "}, 422),
        ({}, 422),
        ({"text": "x" * 20_001}, 422),
        ({"text": 5}, 422),
    ],
)
def test_a_bad_message_is_a_422(
    world: Any, personal: Any, body: dict[str, Any], status: int
) -> None:
    chat = f.make_session(world.agent, world.owner, "chat")
    response = personal(world.owner).post(f"/sessions/{chat.pk}/messages", body)
    assert response.status_code == status
    assert error(response)["field"] == "text"


def test_a_message_to_an_ended_chat_is_a_409(world: Any, personal: Any) -> None:
    chat = f.make_session(world.agent, world.owner, "chat", status="ended")
    assert (
        personal(world.owner).post(f"/sessions/{chat.pk}/messages", {"text": "hi"}).status_code
        == 409
    )


def test_actions_on_an_unknown_session_are_404(world: Any, personal: Any) -> None:
    api = personal(world.admin)
    for verb in (
        "cancel",
        "stop",
        "pause",
        "resume",
        "end",
        "checkpoint/approve",
        "checkpoint/reject",
    ):
        assert api.post(f"/sessions/00000000-0000-0000-0000-000000000000/{verb}").status_code == 404

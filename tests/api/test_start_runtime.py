"""Sessions the server creates start on a runtime: new (personal token), clone and transfer (to a
person and to an agent) of each kind, end to end with the demo runtime as the fake runtime
(in-process, on a fake clock, consuming commands by long-poll); the start timeout; a refused
start; two runtimes racing for one start."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from sessions_app import sweeps
from sessions_app.models import AgentSession, RuntimeCommand, SessionEvent, TokenKind
from sessions_app.runtime.client import RuntimeClient
from sessions_app.runtime.demo.engine import Demo
from tests import factories as f
from tests.api.conftest import Api, make_token
from tests.api.test_demo_runtime import Clock, advance, make_demo
from tests.conftest import KINDS, World

pytestmark = pytest.mark.django_db

RUNNING = {"flow_run": "running", "background_task": "running", "chat": "running"}


class Person:
    """A person's personal token on the in-process client. (Django's test client would
    reconnect the signal that closes the shared test connection after each request.)"""

    def __init__(self, client: RuntimeClient) -> None:
        self.client = client

    def post(self, path: str, body: Any = None) -> Any:
        return self.client.request("POST", path, json_body=body)


@pytest.fixture
def personal(world: World, in_process: Callable[..., RuntimeClient]) -> Callable[[Any], Person]:
    return lambda user: Person(in_process(make_token(world, TokenKind.PERSONAL, user)))


@pytest.fixture
def reviewer(world: World) -> Any:
    return f.make_agent(world.project, world.agent_owner, name="reviewer")


@pytest.fixture
def demo(
    world: World, reviewer: Any, in_process: Callable[..., RuntimeClient]
) -> tuple[Demo, Clock]:
    """The demo runtime serving both agents, polling for commands."""
    token = make_token(world, TokenKind.RUNTIME, world.agent_owner, [world.agent, reviewer])
    clock = Clock()
    demo = make_demo(world, in_process(token), clock, spawn_task_chance=0.0)
    demo._next_start = float("inf")  # only the sessions the tests ask for
    return demo, clock


def runtime_events(session_id: Any) -> list[SessionEvent]:
    """What the runtime posted (server-made events have `srv-` ids)."""
    return list(
        SessionEvent.objects.filter(session_id=session_id)
        .exclude(event_id__startswith="srv-")
        .order_by("seq")
    )


def started_source(demo: Demo, clock: Clock, kind: str) -> AgentSession:
    """A session the runtime itself started and has been running for a while."""
    player = demo.start_session(kind)
    assert player is not None
    advance(demo, clock, 12)
    source = AgentSession.objects.get(pk=player.id)
    assert source.status in ("running", "waiting_input"), source.status
    return source


@pytest.mark.parametrize("kind", KINDS)
def test_a_new_session_from_the_api_reaches_running(
    world: World, personal: Any, demo: tuple[Demo, Clock], kind: str
) -> None:
    runtime, clock = demo
    response = personal(world.owner).post(
        "/sessions", {"kind": kind, "agent": world.agent.pk, "input": "Tidy the changelog"}
    )
    session_id = response["id"]
    assert AgentSession.objects.get(pk=session_id).awaiting_runtime_since is not None
    advance(runtime, clock, 10)
    session = AgentSession.objects.get(pk=session_id)
    assert session.status == RUNNING[kind]
    assert session.awaiting_runtime_since is None
    start = RuntimeCommand.objects.get(session_id=session_id, kind="start")
    assert start.status == "applied"
    assert runtime_events(session_id), "the runtime posted nothing"
    if kind == "chat":
        replies = [e for e in runtime_events(session_id) if e.payload.get("role") == "agent"]
        assert replies, "the first message got no answer"


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_a_clone_starts_fresh_with_the_same_configuration(
    world: World, personal: Any, demo: tuple[Demo, Clock], kind: str
) -> None:
    runtime, clock = demo
    source = started_source(runtime, clock, kind)
    clone_id = personal(world.owner).post(f"/sessions/{source.pk}/clone")["id"]
    advance(runtime, clock, 10)
    clone = AgentSession.objects.get(pk=clone_id)
    assert clone.status == RUNNING[kind]
    assert (clone.model, clone.temperature, clone.repo) == (
        source.model,
        source.temperature,
        source.repo,
    )
    first = runtime_events(clone_id)[0]
    assert str(source.pk) not in str(first.payload)  # fresh: nothing carried over
    source.refresh_from_db()
    assert source.live  # cloning leaves the source alone


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("to", ["person", "agent"])
def test_a_transferred_session_continues_where_the_source_stopped(
    world: World, personal: Any, demo: tuple[Demo, Clock], reviewer: Any, kind: str, to: str
) -> None:
    runtime, clock = demo
    source = started_source(runtime, clock, kind)
    body = {"to_user": "admin"} if to == "person" else {"to_agent": reviewer.pk}
    successor_id = personal(world.owner).post(f"/sessions/{source.pk}/transfer", body)["id"]
    source.refresh_from_db()
    assert source.stop_reason == "transfer"
    assert source.status == ("ended" if kind == "chat" else "stopped")

    advance(runtime, clock, 8)
    successor = AgentSession.objects.get(pk=successor_id)
    assert successor.transferred_from_id == source.pk
    assert successor.awaiting_runtime_since is None
    assert successor.status == "running"
    first = runtime_events(successor_id)[0]
    assert str(source.pk) in first.payload["text"]  # the first runtime input names the source
    if to == "agent":
        assert (successor.agent_id, successor.owner_id) == (reviewer.pk, source.owner_id)
    else:
        assert (successor.agent_id, successor.owner_id) == (source.agent_id, world.admin.pk)
    if kind == "chat":
        # The chat picks up on the user's next turn.
        owner = world.owner if to == "agent" else world.admin
        personal(owner).post(f"/sessions/{successor_id}/messages", {"text": "Go on"})
        advance(runtime, clock, 5)
        replies = [e for e in runtime_events(successor_id) if e.payload.get("role") == "agent"]
        assert replies, "the user's next turn got no answer"
    elif kind == "flow_run":
        assert successor.current_step >= max(1, source.current_step)
    else:
        assert successor.turns >= 1 or runtime_events(successor_id)[1:]


def test_the_start_payload_of_a_transfer_carries_the_redacted_context(
    world: World, runtime: Api
) -> None:
    personal = Api(make_token(world, TokenKind.PERSONAL, world.owner))
    created = runtime.post("/sessions", {"kind": "chat", "agent": world.agent.pk, "owner": "owner"})
    source_id = created.json()["id"]
    secret = "ghp_" + "x1Y2" * 9
    runtime.post(
        f"/sessions/{source_id}/events",
        {
            "events": [
                {"event_id": "m1", "type": "message", "payload": {"role": "user", "text": "Hi"}},
                {
                    "event_id": "m2",
                    "type": "message",
                    "payload": {"role": "agent", "text": f"token {secret}"},
                },
            ]
        },
    )
    response = personal.post(f"/sessions/{source_id}/transfer", {"to_user": "admin"})
    start = RuntimeCommand.objects.get(session_id=response.json()["id"], kind="start")
    transfer = start.payload["transfer"]
    assert transfer["from_session"] == source_id
    assert [e["payload"]["role"] for e in transfer["transcript"]] == ["user", "agent"]
    assert transfer["transcript_complete"] is True
    assert secret not in str(start.payload)
    assert "Last user message: Hi" in transfer["summary"]


def test_a_start_nobody_accepts_fails_after_the_start_timeout(
    world: World, personal: Any, settings: Any
) -> None:
    settings.SCC_START_TIMEOUT_SECONDS = 60
    response = personal(world.owner).post(
        "/sessions", {"kind": "flow_run", "agent": world.agent.pk}
    )
    session_id = response["id"]
    now = timezone.now()
    early = sweeps.policy_sweep(now=now + timedelta(seconds=30))
    assert early.start_timeout == 0
    assert AgentSession.objects.get(pk=session_id).status == "pending"  # control: still waiting
    report = sweeps.policy_sweep(now=now + timedelta(seconds=61))
    assert report.start_timeout == 1
    session = AgentSession.objects.get(pk=session_id)
    assert (session.status, session.error_code) == ("failed", "no_runtime")
    assert "builder" in session.error_message
    assert session.awaiting_runtime_since is None
    start = RuntimeCommand.objects.get(session_id=session_id)
    assert start.status == "rejected"  # withdrawn: a runtime that comes late is not handed it
    assert sweeps.policy_sweep(now=now + timedelta(seconds=120)).start_timeout == 0


def test_a_refused_start_fails_the_session_saying_why(
    world: World, personal: Any, runtime_token: str, in_process: Any
) -> None:
    response = personal(world.owner).post("/sessions", {"kind": "chat", "agent": world.agent.pk})
    client = in_process(runtime_token)
    [command] = client.poll_commands(wait=0)
    assert command["kind"] == "start"
    client.ack(command["id"], "rejected", "no sandbox capacity")
    session = AgentSession.objects.get(pk=response["id"])
    assert (session.status, session.error_code) == ("failed", "start_rejected")
    assert "no sandbox capacity" in session.error_message


def test_the_first_runtime_to_accept_wins(
    world: World, personal: Any, runtime_token: str, in_process: Any
) -> None:
    personal(world.owner).post("/sessions", {"kind": "flow_run", "agent": world.agent.pk})
    first, second = in_process(runtime_token), in_process(runtime_token)
    [command] = first.poll_commands(wait=0)
    assert first.accept_start(command) is True
    assert second.accept_start(command) is False


def test_transferring_a_session_still_waiting_withdraws_its_start(
    world: World, personal: Any
) -> None:
    first = personal(world.owner).post("/sessions", {"kind": "flow_run", "agent": world.agent.pk})
    successor = personal(world.owner).post(
        f"/sessions/{first['id']}/transfer", {"to_user": "admin"}
    )
    starts = {
        str(session_id): status
        for session_id, status in RuntimeCommand.objects.filter(kind="start").values_list(
            "session_id", "status"
        )
    }
    assert starts[first["id"]] == "rejected"  # no runtime will run the source now
    assert starts[successor["id"]] == "queued"  # control: the successor's start waits
    assert AgentSession.objects.get(pk=first["id"]).awaiting_runtime_since is None

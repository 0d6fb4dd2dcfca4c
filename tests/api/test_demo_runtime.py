"""The runtime client and the demo runtime against the real API, in-process and on a fake clock."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from typing import Any
from uuid import UUID

import httpx
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.core.wsgi import get_wsgi_application

from sessions_app import services
from sessions_app.models import AgentSession, ApiToken, RuntimeCommand, SessionEvent
from sessions_app.runtime.client import RuntimeClient
from sessions_app.runtime.demo.engine import Demo, DemoConfig, Target, parse_mix
from tests.conftest import World

pytestmark = pytest.mark.django_db


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def advance(demo: Demo, clock: Clock, seconds: float) -> None:
    end = clock.now + seconds
    while clock.now < end:
        clock.sleep(max(demo.tick(), 0.05))


def make_demo(
    world: World,
    client: RuntimeClient,
    clock: Clock,
    *,
    owners: tuple[str, ...] = ("owner",),
    **config: Any,
) -> Demo:
    defaults: dict[str, Any] = {"rate": 0.001, "checkpoint_chance": 0.0, "failure_chance": 0.0}
    target = Target(world.agent.pk, world.agent.name, owners)
    return Demo(
        client,
        [target],
        DemoConfig(**{**defaults, **config}),
        rng=random.Random(4),
        clock=clock,
        sleep=clock.sleep,
        commands="poll",
    )


@pytest.fixture
def setup(
    world: World, runtime_token: str, in_process: Callable[..., RuntimeClient]
) -> tuple[Demo, Clock]:
    clock = Clock()
    demo = make_demo(world, in_process(runtime_token), clock)
    demo._next_start = float("inf")  # these tests start sessions themselves
    return demo, clock


def events_of(session_id: str, type_: str | None = None) -> list[SessionEvent]:
    qs = SessionEvent.objects.filter(session_id=UUID(session_id)).order_by("seq")
    return list(qs.filter(type=type_) if type_ else qs)


def status_of(session_id: str) -> str:
    return AgentSession.objects.get(pk=session_id).status


def command_status(session_id: str) -> list[tuple[str, str]]:
    return list(
        RuntimeCommand.objects.filter(session_id=UUID(session_id))
        .order_by("created_at")
        .values_list("kind", "status")
    )


# --- the client against the real API ---------------------------------------------------------------


def test_the_client_drives_the_api_end_to_end(
    world: World, runtime_token: str, in_process: Any
) -> None:
    client = in_process(runtime_token)
    assert [a["name"] for a in client.agents()] == ["builder"]
    session = client.create_session(
        kind="flow_run", agent=world.agent.pk, owner="owner", title="E2E"
    )
    batch = client.batch(session["id"])
    batch.status("running")
    batch.step("started", "Build", index=1, total=2)
    batch.tool_result("c1", "GITHUB_TOKEN=ghp_" + "x1Y2" * 9)
    first = batch.pending[:]
    results = batch.flush()
    again = client.post_events(session["id"], first)  # a retry after a lost answer
    assert again == results
    assert len(events_of(session["id"])) == 1 + 3
    assert events_of(session["id"], "tool_result")[0].redactions == {"github_token": 1}
    assert client.get_session(session["id"])["progress"]["text"] == "Step 1 of 2"

    services.session_pause(session=AgentSession.objects.get(pk=session["id"]), user=world.owner)
    [command] = client.poll_commands(wait=0)
    assert command["kind"] == "pause"
    assert client.ack(command["id"], "applied", "paused")["status"] == "applied"


# --- the demo runtime -----------------------------------------------------------------------------


@pytest.mark.slow
def test_it_plays_every_kind_through_the_api(
    world: World, runtime_token: str, in_process: Any
) -> None:
    clock = Clock()
    demo = make_demo(
        world,
        in_process(runtime_token),
        clock,
        rate=8,
        secret_chance=1.0,
        spawn_task_chance=1.0,
        checkpoint_chance=0.5,
        failure_chance=0.3,
        checkpoint_patience=20,
    )
    demo.run(duration=300)
    sessions = list(AgentSession.objects.all())
    kinds = Counter(s.kind for s in sessions)
    assert set(kinds) == {"flow_run", "background_task", "chat"}
    statuses = Counter(s.status for s in sessions)
    assert statuses["completed"]
    assert statuses["failed"]
    flows = [s for s in sessions if s.kind == "flow_run" and s.status == "completed"]
    assert all(3 <= s.total_steps <= 7 and s.current_step == s.total_steps for s in flows)
    assert any(s.parent_id and s.kind == "background_task" for s in sessions)
    chat = next(s for s in sessions if s.kind == "chat" and s.message_count >= 2)
    roles = {e.payload["role"] for e in events_of(str(chat.pk), "message")}
    assert roles == {"user", "agent"}
    types = set(SessionEvent.objects.values_list("type", flat=True))
    assert types >= {
        "thinking",
        "tool_call",
        "tool_result",
        "step",
        "message",
        "file_edit",
        "checkpoint",
        "error",
    }
    assert SessionEvent.objects.exclude(redactions={}).exists()
    # The demo stops what it still runs and ends its chats when it goes away: nothing it
    # played is left looking live with no runtime behind it.
    assert not AgentSession.objects.filter(live=True).exists()


def test_going_away_leaves_no_session_live(world: World, setup: tuple[Demo, Clock]) -> None:
    demo, clock = setup
    for kind in ("flow_run", "background_task", "chat"):
        demo.start_session(kind)
    advance(demo, clock, 5)
    assert AgentSession.objects.filter(live=True).count() == 3  # positive control
    demo.shutdown()
    assert not AgentSession.objects.filter(live=True).exists()
    chat = AgentSession.objects.get(kind="chat")
    assert chat.status == "ended"


@pytest.mark.slow
def test_it_obeys_pause_resume_and_stop(world: World, setup: tuple[Demo, Clock]) -> None:
    demo, clock = setup
    player = demo.start_session("flow_run")
    assert player is not None
    advance(demo, clock, 4)
    assert status_of(player.id) == "running"
    session = AgentSession.objects.get(pk=player.id)

    services.session_pause(session=session, user=world.owner)
    advance(demo, clock, 3)
    assert command_status(player.id) == [("pause", "applied")]
    assert AgentSession.objects.get(pk=player.id).agent_status == "idle"
    seq = AgentSession.objects.get(pk=player.id).last_seq
    advance(demo, clock, 30)
    assert AgentSession.objects.get(pk=player.id).last_seq == seq  # a paused run says nothing

    services.session_resume(session=session, user=world.owner)
    advance(demo, clock, 15)
    assert AgentSession.objects.get(pk=player.id).last_seq > seq

    services.session_stop(session=session, user=world.owner)
    advance(demo, clock, 3)
    assert status_of(player.id) == "stopped"
    assert command_status(player.id)[-1] == ("stop", "applied")
    assert player.id not in demo.players

    # Resuming a stopped run continues it, though the script that played it is gone.
    services.session_resume(session=AgentSession.objects.get(pk=player.id), user=world.owner)
    advance(demo, clock, 120)
    assert status_of(player.id) == "completed"


@pytest.mark.slow
def test_it_cancels_when_cancelled(world: World, setup: tuple[Demo, Clock]) -> None:
    demo, clock = setup
    player = demo.start_session("background_task")
    assert player is not None
    advance(demo, clock, 10)
    services.session_cancel(session=AgentSession.objects.get(pk=player.id), user=world.owner)
    advance(demo, clock, 3)
    seq = AgentSession.objects.get(pk=player.id).last_seq
    advance(demo, clock, 60)
    assert status_of(player.id) == "cancelled"
    assert AgentSession.objects.get(pk=player.id).last_seq == seq
    assert command_status(player.id) == [("cancel", "applied")]


@pytest.mark.slow
def test_a_chat_message_gets_a_reply_even_after_the_script_ended(
    world: World, setup: tuple[Demo, Clock]
) -> None:
    demo, clock = setup
    player = demo.start_session("chat")
    assert player is not None
    advance(demo, clock, 5)
    chat = AgentSession.objects.get(pk=player.id)
    services.message_send(session=chat, user=world.owner, text="What about the canary?")
    advance(demo, clock, 5)
    messages = events_of(player.id, "message")
    asked = next(i for i, e in enumerate(messages) if e.payload["text"] == "What about the canary?")
    assert any(e.payload["role"] == "agent" for e in messages[asked + 1 :])

    advance(demo, clock, 300)
    assert player.id not in demo.players  # its script has ended
    before = len(events_of(player.id, "message"))
    services.message_send(
        session=AgentSession.objects.get(pk=player.id), user=world.owner, text="Still there?"
    )
    advance(demo, clock, 5)
    assert events_of(player.id, "message")[-1].payload["role"] == "agent"
    assert len(events_of(player.id, "message")) == before + 2
    assert all(status == "applied" for _, status in command_status(player.id))


@pytest.mark.slow
@pytest.mark.parametrize(("approve", "final"), [(True, "completed"), (False, "failed")])
def test_a_checkpoint_waits_for_the_operators_decision(
    world: World, runtime_token: str, in_process: Any, approve: bool, final: str
) -> None:
    clock = Clock()
    demo = make_demo(
        world, in_process(runtime_token), clock, checkpoint_chance=1.0, checkpoint_patience=10_000
    )
    demo._next_start = float("inf")
    player = demo.start_session("flow_run")
    assert player is not None
    for _ in range(200):
        advance(demo, clock, 2)
        if status_of(player.id) == "waiting_input":
            break
    session = AgentSession.objects.get(pk=player.id)
    assert session.checkpoint_state == "awaiting"
    advance(demo, clock, 60)
    assert status_of(player.id) == "waiting_input"  # nobody decided yet

    services.checkpoint_decide(session=session, user=world.owner, approve=approve)
    advance(demo, clock, 200)
    session.refresh_from_db()
    assert session.status == final
    if not approve:
        assert session.error_code == "checkpoint_rejected"
    assert command_status(player.id)[-1] == ("approve" if approve else "reject", "applied")


def test_the_concurrency_cap_is_logged_not_fatal(world: World, setup: tuple[Demo, Clock]) -> None:
    demo, clock = setup
    world.agent.max_concurrent_sessions_per_user = 1
    world.agent.save()
    assert demo.start_session("flow_run") is not None
    assert demo.start_session("chat") is None
    assert demo.refused == 1
    advance(demo, clock, 10)


class LosesAnswers(httpx.BaseTransport):
    """Serves every request but loses every third answer to an event post, as a server
    restarting mid-response would."""

    def __init__(self) -> None:
        self.inner = httpx.WSGITransport(app=get_wsgi_application())
        self.posts = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method == "POST" and request.url.path.endswith("/events"):
            self.posts += 1
            if self.posts % 3 == 0:
                raise httpx.RemoteProtocolError("server disconnected", request=request)
        return response


@pytest.mark.slow
def test_lost_answers_are_retried_without_storing_anything_twice(
    world: World, runtime_token: str, in_process: Any
) -> None:
    clock = Clock()
    demo = make_demo(world, in_process(runtime_token, transport=LosesAnswers()), clock, rate=10)
    demo.run(duration=120)
    for session in AgentSession.objects.all():
        rows = events_of(str(session.pk))
        assert [e.seq for e in rows] == list(range(1, len(rows) + 1))
        steps = [
            (e.payload["index"], e.payload["state"]) for e in events_of(str(session.pk), "step")
        ]
        assert len(steps) == len(set(steps))


def test_parse_mix() -> None:
    assert parse_mix("flow=2,task=1,chat=2") == {"flow_run": 2, "background_task": 1, "chat": 2}
    assert parse_mix("chat=1") == {"chat": 1}
    for bad in ("flow", "boat=1", "flow=x", "flow=-1", "flow=0"):
        with pytest.raises(ValueError, match=r"."):
            parse_mix(bad)


def test_the_command_makes_and_reuses_a_token_for_its_workspace(
    world: World, settings: Any, tmp_path: Any
) -> None:
    from sessions_app.management.commands.demo_runtime import Command

    settings.VAR_DIR = tmp_path
    command = Command()
    raw = command._tenant_token(world.tenant.slug)
    assert command._tenant_token(world.tenant.slug) == raw
    assert ApiToken.objects.count() == 1
    # A new agent needs a token that covers it.
    from tests import factories as f

    f.make_agent(world.project, world.agent_owner, name="newcomer")
    assert command._tenant_token(world.tenant.slug) != raw
    assert ApiToken.objects.filter(revoked_at__isnull=True).count() == 1
    owners = command._eligible_owners(world.tenant.slug)
    assert set(owners[world.agent.pk]) == {
        "agent_owner",
        "owner",
        "developer",
        "maintainer",
        "admin",
    }


@pytest.mark.parametrize(
    "args",
    [
        ["--rate", "0", "--tenant", "x"],
        ["--mix", "boat=1", "--tenant", "x"],
        [],
        ["--tenant", "nope"],
    ],
)
def test_the_command_refuses_bad_options(world: World, args: list[str]) -> None:
    with pytest.raises(CommandError):
        call_command("demo_runtime", *args)

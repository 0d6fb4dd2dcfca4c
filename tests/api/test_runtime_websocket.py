"""/ws/runtime/ against the real ASGI application and the real Redis channel layer."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import override_settings

from config.asgi import application
from sessions_app import services
from sessions_app.models import RuntimeCommand, TokenKind
from sessions_app.runtime.consumer import notify_command_queued
from tests import factories as f
from tests.api.conftest import make_token

# Commands reach consumers only after the operator's transaction commits.
pytestmark = pytest.mark.django_db(transaction=True)


def communicator(
    token: str | None = None, *, query: str = "", origin: bytes | None = b"http://testserver"
) -> WebsocketCommunicator:
    headers = [(b"origin", origin)] if origin is not None else []
    if token is not None:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    return WebsocketCommunicator(application, f"/ws/runtime/{query}", headers=headers)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    async_to_sync(scenario)()


async def connected(token: str, **kwargs: Any) -> WebsocketCommunicator:
    ws = communicator(token, **kwargs)
    ok, _ = await ws.connect(timeout=5)
    assert ok
    return ws


def test_a_runtime_receives_a_command_queued_by_an_operator_action(
    world: Any, runtime_token: str
) -> None:
    session = f.make_session(world.agent, world.owner, status="running")

    async def scenario() -> None:
        ws = await connected(runtime_token)
        assert await ws.receive_nothing(timeout=0.2)
        await database_sync_to_async(services.session_pause)(session=session, user=world.owner)
        message = await ws.receive_json_from(timeout=5)
        assert message["type"] == "command"
        assert (message["kind"], message["session_id"]) == ("pause", str(session.pk))
        assert message["status"] == "delivered"
        await ws.disconnect()

    run(scenario)
    assert RuntimeCommand.objects.get().status == "delivered"


def test_a_runtime_that_reconnects_receives_what_was_queued_while_it_was_away(
    world: Any, runtime_token: str
) -> None:
    a = f.make_session(world.agent, world.owner, status="running")
    b = f.make_session(world.agent, world.owner, "chat")

    async def scenario() -> None:
        ws = await connected(runtime_token)
        await ws.disconnect()
        await database_sync_to_async(services.session_stop)(session=a, user=world.owner)
        await database_sync_to_async(services.message_send)(
            session=b, user=world.owner, text="still there?"
        )
        ws = await connected(runtime_token)
        first = await ws.receive_json_from(timeout=5)
        second = await ws.receive_json_from(timeout=5)
        assert [(m["kind"], m["session_id"]) for m in (first, second)] == [
            ("stop", str(a.pk)),
            ("message", str(b.pk)),
        ]
        # Applied ones are done; the unacknowledged one comes again on the next connect.
        await ws.send_json_to(
            {"type": "ack", "id": first["id"], "status": "applied", "result": "stopped"}
        )
        assert (await ws.receive_json_from(timeout=5))["type"] == "ack_ok"
        await ws.disconnect()
        ws = await connected(runtime_token)
        again = await ws.receive_json_from(timeout=5)
        assert again["id"] == second["id"]
        assert await ws.receive_nothing(timeout=0.2)
        await ws.disconnect()

    run(scenario)
    assert dict(RuntimeCommand.objects.values_list("kind", "status")) == {
        "stop": "applied",
        "message": "delivered",
    }


def test_a_runtime_does_not_hear_other_agents_commands(world: Any, runtime_token: str) -> None:
    other_agent = f.make_agent(world.project, world.agent_owner, name="other")
    theirs = f.make_session(other_agent, world.owner, status="running")

    async def scenario() -> None:
        ws = await connected(runtime_token)
        await database_sync_to_async(services.session_pause)(session=theirs, user=world.owner)
        assert await ws.receive_nothing(timeout=0.5)
        await ws.disconnect()

    run(scenario)


def test_acks_and_pings_over_the_socket(world: Any, runtime_token: str) -> None:
    session = f.make_session(world.agent, world.owner, status="running")
    services.session_pause(session=session, user=world.owner)
    other_agent = f.make_agent(world.project, world.agent_owner, name="other")
    theirs = f.make_session(other_agent, world.owner, status="running")
    services.session_pause(session=theirs, user=world.owner)
    foreign = RuntimeCommand.objects.get(session=theirs)

    async def scenario() -> None:
        ws = await connected(runtime_token, query=f"?token={runtime_token}")
        command = await ws.receive_json_from(timeout=5)
        await ws.send_json_to({"type": "ping"})
        assert await ws.receive_json_from(timeout=5) == {"type": "pong"}
        await ws.send_json_to({"type": "ack", "id": str(foreign.pk), "status": "applied"})
        assert (await ws.receive_json_from(timeout=5))["type"] == "error"
        await ws.send_to(text_data="{not json")
        assert (await ws.receive_json_from(timeout=5))["type"] == "error"
        await ws.send_json_to({"type": "ack", "id": command["id"], "status": "finished"})
        assert "status" in (await ws.receive_json_from(timeout=5))["message"]
        await ws.send_json_to({"type": "ack", "id": "nope", "status": "applied"})
        assert (await ws.receive_json_from(timeout=5))["type"] == "error"
        await ws.send_json_to({"type": "dance"})
        assert (await ws.receive_json_from(timeout=5))["type"] == "error"
        await ws.send_json_to(
            {"type": "ack", "id": command["id"], "status": "rejected", "result": "no"}
        )
        assert await ws.receive_json_from(timeout=5) == {
            "type": "ack_ok",
            "id": command["id"],
            "status": "rejected",
        }
        await ws.disconnect()

    run(scenario)
    assert RuntimeCommand.objects.get(session=session).result == "no"
    assert RuntimeCommand.objects.get(pk=foreign.pk).status == "queued"


@pytest.mark.parametrize(
    ("token_kind", "code"), [(None, 4401), ("bogus", 4401), ("personal", 4403)]
)
def test_a_refused_token_closes_with_a_4xxx_code(
    world: Any, token_kind: str | None, code: int
) -> None:
    token = {
        None: None,
        "bogus": "scc_not-a-real-token",
        "personal": make_token(world, TokenKind.PERSONAL, world.admin),
    }[token_kind]

    async def scenario() -> None:
        ws = communicator(token)
        await ws.connect(timeout=5)
        closed = await ws.receive_output(timeout=5)
        assert closed == {"type": "websocket.close", "code": code}

    run(scenario)


def test_a_token_in_the_query_string_is_accepted(world: Any, runtime_token: str) -> None:
    session = f.make_session(world.agent, world.owner, status="running")
    services.session_pause(session=session, user=world.owner)

    async def scenario() -> None:
        ws = communicator(query=f"?token={runtime_token}")
        ok, _ = await ws.connect(timeout=5)
        assert ok
        assert json.loads(await ws.receive_from(timeout=5))["kind"] == "pause"
        await ws.disconnect()

    run(scenario)


def test_publishing_survives_an_unreachable_channel_layer(world: Any, caplog: Any) -> None:
    session = f.make_session(world.agent, world.owner, status="running")
    services.session_pause(session=session, user=world.owner)
    unreachable = {
        "default": {
            "BACKEND": "config.channel_layer.ChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]},
        }
    }
    with override_settings(CHANNEL_LAYERS=unreachable):
        notify_command_queued(RuntimeCommand.objects.get().pk)
    assert "could not publish" in caplog.text


def test_a_runtime_needs_no_origin_header(world: Any, runtime_token: str) -> None:
    # Runtimes are not browsers: the token, not a cookie, authenticates them.
    async def scenario() -> None:
        ws = communicator(runtime_token, origin=None)
        ok, _ = await ws.connect(timeout=5)
        assert ok
        await ws.send_json_to({"type": "ping"})
        assert (await ws.receive_json_from(timeout=5))["type"] == "pong"
        await ws.disconnect()

    run(scenario)

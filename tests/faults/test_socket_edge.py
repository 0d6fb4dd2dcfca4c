"""Errors are answers on both sockets: a bad frame or handshake closes with 4400 (or gets an
error reply on the runtime protocol), the database away closes with 1013, never 1011."""

from __future__ import annotations

import json
import logging
import time
from typing import Any
from unittest import mock

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser
from django.db import OperationalError

from command_center import consumers
from config.asgi import application
from sessions_app import edge, services
from sessions_app.models import RuntimeCommand, TokenKind
from tests import factories as f
from tests.api.conftest import make_token
from tests.command_center.test_consumers import connect, drain, receive_until

# Seconds of work each: in `make test` and CI, not in the `make check` inner loop.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ORIGIN = [(b"origin", b"http://127.0.0.1")]


@pytest.fixture(autouse=True)
def _fast_broadcast(settings: Any) -> None:
    settings.SCC_BROADCAST_COALESCE_MS = 10


async def closed_with(ws: WebsocketCommunicator) -> int:
    while True:
        output = await ws.receive_output(timeout=5)
        if output["type"] == "websocket.close":
            return int(output.get("code", 1000))


# --- dashboard -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"type": "paged", "x": "\\ud800"}',
        '{"\\udc00": 1}',
        "not json",
        '{"a":' * 70 + "1" + "}" * 70,
    ],
    ids=["100k-deep", "surrogate-value", "surrogate-key", "not-json", "70-deep"],
)
async def test_a_bad_dashboard_frame_closes_with_4400(world: Any, frame: str) -> None:
    ws = await connect(world.owner, "view=list")
    await ws.receive_from(timeout=10)  # the snapshot
    await ws.send_to(text_data=frame)
    assert await closed_with(ws) == edge.CLOSE_BAD_FRAME


@pytest.mark.parametrize("frame", ["[1, 2]", "42", '"unpaged"', "null"])
async def test_a_dashboard_frame_that_is_not_an_object_is_ignored(world: Any, frame: str) -> None:
    ws = await connect(world.owner, "view=list")
    await ws.receive_from(timeout=10)
    await ws.send_to(text_data=frame)
    assert await ws.receive_nothing(timeout=0.3)
    await ws.disconnect()


@pytest.mark.parametrize(
    "query", ["view=list&agent=%C2%B2", "view=list&owner=%C2%B2", "view=list&q=a%00b"]
)
async def test_a_bad_handshake_filter_closes_with_4400(world: Any, query: str) -> None:
    ws = WebsocketCommunicator(application, f"/ws/command-center/?{query}", headers=ORIGIN)
    ws.scope["user"] = world.owner
    connected, _ = await ws.connect(timeout=10)
    assert connected
    assert await closed_with(ws) == 4400


async def test_an_anonymous_socket_logs_nothing(caplog: Any) -> None:
    ws = WebsocketCommunicator(application, "/ws/command-center/?view=list", headers=ORIGIN)
    ws.scope["user"] = AnonymousUser()
    with caplog.at_level(logging.WARNING):
        await ws.connect(timeout=10)
        assert await closed_with(ws) == consumers.CLOSE_UNAUTHENTICATED
        await ws.disconnect()
    assert caplog.records == []


async def test_the_database_away_at_connect_closes_with_1013(world: Any) -> None:
    with mock.patch("sessions_app.selectors.access_for", side_effect=OperationalError("down")):
        ws = WebsocketCommunicator(application, "/ws/command-center/?view=list", headers=ORIGIN)
        ws.scope["user"] = world.owner
        connected, _ = await ws.connect(timeout=10)
        assert connected  # accepted so the browser reads the code
        assert await closed_with(ws) == edge.CLOSE_TRY_AGAIN_LATER


async def test_the_database_away_on_a_push_closes_with_1013(world: Any) -> None:
    session = await database_sync_to_async(f.make_session)(world.agent, world.owner)
    ws = await connect(world.owner, f"view=detail&session={session.pk}")
    await ws.receive_from(timeout=10)
    with mock.patch(
        "sessions_app.selectors.events_after", side_effect=OperationalError("server closed")
    ):
        await database_sync_to_async(services.events_record)(
            session=session, events=[services.EventIn("x1", "thinking", {"text": "hi"})]
        )
        assert await closed_with(ws) == edge.CLOSE_TRY_AGAIN_LATER


async def test_the_database_away_before_the_consumer_closes_with_1013() -> None:
    # The session lookup of the auth middleware runs before any consumer exists.
    with mock.patch("command_center.socket_auth._get_user", side_effect=OperationalError("down")):
        ws = WebsocketCommunicator(application, "/ws/command-center/?view=list", headers=ORIGIN)
        await ws.connect(timeout=10)
        assert await closed_with(ws) == edge.CLOSE_TRY_AGAIN_LATER


async def test_unpaged_snapshots_are_at_most_one_a_second_and_coalesced(world: Any) -> None:
    ws = await connect(world.owner, "view=list")
    await ws.receive_from(timeout=10)
    started = time.monotonic()
    for _ in range(10):
        await ws.send_to(text_data=json.dumps({"type": "unpaged"}))
    frame = await receive_until(ws, 'id="session-list"')
    assert time.monotonic() - started >= consumers.SNAPSHOT_MIN_INTERVAL - 0.1
    assert frame
    others = [f for f in await drain(ws, quiet=1.5) if 'id="session-list"' in f]
    assert others == []  # ten requests, one snapshot
    await ws.disconnect()


async def test_the_composer_disables_live_when_the_chat_ends(world: Any) -> None:
    chat = await database_sync_to_async(f.make_session)(world.agent, world.owner, "chat")
    ws = await connect(world.owner, f"view=detail&session={chat.pk}")
    await ws.receive_from(timeout=10)
    await database_sync_to_async(services.session_end)(session=chat, user=world.owner)
    frame = await receive_until(ws, 'id="composer"')
    composer = frame[frame.index('id="composer"') :]
    assert "This chat has ended." in composer
    assert "disabled" in composer[: composer.index("</form>")]
    await ws.disconnect()


# --- runtime socket ------------------------------------------------------------------------------


async def runtime_socket(world: Any) -> WebsocketCommunicator:
    token = await database_sync_to_async(make_token)(
        world, TokenKind.RUNTIME, world.agent_owner, [world.agent]
    )
    ws = WebsocketCommunicator(
        application, "/ws/runtime/", headers=[(b"authorization", f"Bearer {token}".encode())]
    )
    connected, _ = await ws.connect(timeout=10)
    assert connected
    return ws


@pytest.mark.parametrize(
    "frame",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"type": "ack", "id": "x", "status": "applied", "result": "\\ud800"}',
        '{"type": "\\udfff"}',
        '{"\\ud800": 1}',
        "[1]",
        '{"a":' * 70 + "1" + "}" * 70,
    ],
    ids=["100k-deep", "surrogate-result", "surrogate-type", "surrogate-key", "list", "70-deep"],
)
async def test_a_bad_runtime_frame_gets_an_error_reply_and_the_socket_stays(
    world: Any, frame: str
) -> None:
    ws = await runtime_socket(world)
    await ws.send_to(text_data=frame)
    reply = json.loads(await ws.receive_from(timeout=5))
    assert reply["type"] == "error"
    await ws.send_to(text_data=json.dumps({"type": "ping"}))
    assert json.loads(await ws.receive_from(timeout=5)) == {"type": "pong"}
    await ws.disconnect()


async def test_a_surrogate_in_an_ack_result_changes_nothing(world: Any) -> None:
    session = await database_sync_to_async(f.make_session)(world.agent, world.owner)
    await database_sync_to_async(services.session_pause)(session=session, user=world.owner)
    ws = await runtime_socket(world)
    command = json.loads(await ws.receive_from(timeout=5))
    raw = json.dumps({"type": "ack", "id": command["id"], "status": "applied", "result": "R"})
    await ws.send_to(text_data=raw.replace('"R"', '"\\ud83d"'))
    assert json.loads(await ws.receive_from(timeout=5))["type"] == "error"
    stored = await database_sync_to_async(RuntimeCommand.objects.get)(pk=command["id"])
    assert stored.status != "applied"
    await ws.disconnect()


async def test_the_database_away_on_the_runtime_socket_closes_with_1013(world: Any) -> None:
    ws = await runtime_socket(world)
    with mock.patch("sessions_app.services.command_ack", side_effect=OperationalError("down")):
        await ws.send_to(
            text_data=json.dumps(
                {"type": "ack", "id": "6f1e0c1e-8f7e-4a53-9f39-5b0e7c1d2a11", "status": "applied"}
            )
        )
        assert await closed_with(ws) == edge.CLOSE_TRY_AGAIN_LATER


async def test_a_client_gone_mid_push_drops_the_frame_without_a_traceback(caplog: Any) -> None:
    """daphne raises when a frame is sent to a client that has just left; the push is dropped
    and the socket's own disconnect cleans up, with nothing logged as an error."""
    from autobahn.exception import Disconnected

    delivered: list[Any] = []
    server_state = {"gone": False}

    async def server_send(message: Any) -> None:
        if server_state["gone"] and message["type"] == "websocket.send":
            raise Disconnected("Attempt to send on a closed protocol")
        delivered.append(message)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "before"})
        server_state["gone"] = True
        await send({"type": "websocket.send", "text": "after"})
        await send({"type": "websocket.send", "text": "later"})

    async def receive() -> Any:
        return {"type": "websocket.connect"}

    with caplog.at_level(logging.DEBUG):
        await edge.SocketGuard(app)({"type": "websocket", "path": "/ws/x/"}, receive, server_send)
    # Positive control: frames before the client left were sent.
    assert [m.get("text") for m in delivered] == [None, "before"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

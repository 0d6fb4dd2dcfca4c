"""Scale-out: two daphne processes behind one Redis and one database act as one service.

A dashboard socket held by the first server receives, live, what a runtime reports through
the API of the second: the pushes travel through the shared channel layer, not through
process memory.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin

from sessions_app.runtime.client import Backoff, RuntimeClient
from tests.conftest import World
from tests.integration.live_server import (
    LiveServer,
    free_port,
    give_password,
    log_in_over_http,
    runtime_token,
    server_env,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def servers(django_db_setup: None) -> Iterator[tuple[LiveServer, LiveServer]]:
    env = server_env()
    first = LiveServer(free_port(), env, name="daphne-first")
    second = LiveServer(free_port(), env, name="daphne-second")
    for server in (first, second):
        server.launch()
    try:
        for server in (first, second):
            server.wait_until_ready()
        yield first, second
    finally:
        for server in (first, second):
            server.stop()


def dashboard_socket(server: LiveServer, cookie: str, query: str) -> ClientConnection:
    """A dashboard websocket as the browser opens it: session cookie and same-site Origin."""
    return connect(
        f"{server.ws_url}/ws/command-center/?{query}",
        additional_headers={"Cookie": f"sessionid={cookie}"},
        origin=Origin(server.url),
        open_timeout=10,
    )


def receive_until(ws: ClientConnection, needle: str, timeout: float = 10) -> str:
    """The first frame containing `needle` (panel and count pushes may come before it)."""
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            frame = ws.recv(timeout=remaining)
        except TimeoutError:
            break
        assert isinstance(frame, str)
        if needle in frame:
            return frame
    raise AssertionError(f"no frame containing {needle!r} within {timeout} s")


@pytest.fixture
def viewer_cookie(world: World, servers: tuple[LiveServer, LiveServer]) -> str:
    first, _ = servers
    return log_in_over_http(first, "owner", give_password(world.owner))


@pytest.fixture
def runtime_on_second(
    world: World, servers: tuple[LiveServer, LiveServer]
) -> Iterator[RuntimeClient]:
    _, second = servers
    client = RuntimeClient(second.url, runtime_token(world), backoff=Backoff(attempts=2))
    yield client
    client.close()


def test_a_list_on_the_first_server_shows_sessions_reported_to_the_second(
    servers: tuple[LiveServer, LiveServer],
    world: World,
    viewer_cookie: str,
    runtime_on_second: RuntimeClient,
) -> None:
    first, _ = servers
    with dashboard_socket(first, viewer_cookie, "view=list") as ws:
        snapshot = receive_until(ws, 'id="session-list"')
        assert 'id="cc-panel-body"' in snapshot

        session = runtime_on_second.create_session(
            kind="flow_run", agent=world.agent.pk, owner="owner", title="Reported to the second"
        )
        inserted = receive_until(ws, f'id="session-{session["id"]}"')
        assert 'data-op="insert" data-target="rows-live"' in inserted
        assert "Reported to the second" in inserted

        batch = runtime_on_second.batch(session["id"])
        batch.status("running")
        batch.status("completed")
        batch.flush()
        moved = receive_until(ws, 'data-op="insert" data-target="rows-rest"')
        assert f'data-op="remove" data-target="session-{session["id"]}"' in moved
        assert f'id="cc-recent-{session["id"]}"' in moved
        assert 'data-status="completed"' in moved


def test_a_session_page_on_the_first_server_shows_events_posted_to_the_second(
    servers: tuple[LiveServer, LiveServer],
    world: World,
    viewer_cookie: str,
    runtime_on_second: RuntimeClient,
) -> None:
    first, _ = servers
    chat = runtime_on_second.create_session(kind="chat", agent=world.agent.pk, owner="owner")
    with dashboard_socket(first, viewer_cookie, f"view=detail&session={chat['id']}") as ws:
        receive_until(ws, 'id="transcript"')

        batch = runtime_on_second.batch(chat["id"])
        batch.message("agent", "Hello from the runtime behind the second server")
        batch.flush()

        frame = receive_until(ws, "Hello from the runtime behind the second server")
        assert 'hx-swap-oob="beforeend:#transcript"' in frame
        assert 'class="msg msg-agent"' in frame


def test_a_socket_without_a_session_cookie_is_refused_with_4401(
    servers: tuple[LiveServer, LiveServer],
) -> None:
    first, _ = servers
    with (
        connect(
            f"{first.ws_url}/ws/command-center/?view=list",
            origin=Origin(first.url),
            open_timeout=10,
        ) as ws,
        pytest.raises(ConnectionClosed) as closed,
    ):
        ws.recv(timeout=10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401

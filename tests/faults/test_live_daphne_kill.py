"""Daphne killed (SIGKILL) with dashboard sockets open and a runtime posting events: every
socket comes back on the restarted server with a fresh snapshot (which shows what changed while
it was down), and every event the runtime was answered 2xx for is stored exactly once."""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest

from tests import factories as f
from tests.faults.live import Dashboard, Ingest, assert_stored_exactly_once, wait_until
from tests.integration.live_server import (
    LiveServer,
    runtime_token,
    session_cookie,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SOCKETS = 20


@pytest.fixture
def server(live_daphne: LiveServer) -> LiveServer:
    return live_daphne  # killed and restarted by the test


def test_sockets_of_a_killed_daphne_all_resync_and_no_event_is_lost_or_doubled(
    world: Any, server: LiveServer
) -> None:
    chat = f.make_session(world.agent, world.owner, "chat", status="running")
    cookie = session_cookie(world.owner)
    dashboards = [Dashboard(server, cookie, "view=list").start() for _ in range(SOCKETS)]
    ingest = Ingest(server, runtime_token(world), str(chat.pk), interval=0.1)
    try:
        for dashboard in dashboards:
            dashboard.wait_for('id="session-list"', timeout=30)
        ingest.start()
        wait_until(lambda: len(ingest.accepted) >= 5, timeout=30, what="steady ingest")

        server.stop(sig=signal.SIGKILL)
        killed_at = time.monotonic()
        # Changed while no server runs: its push reaches no socket; only a snapshot shows it.
        while_down = f.make_session(
            world.agent, world.owner, title="Made while the server was down"
        )
        server.start()

        for dashboard in dashboards:
            dashboard.wait_for("Made while the server was down", since=killed_at, timeout=30)
            dashboard.wait_for(f'id="session-{while_down.pk}"', since=killed_at, timeout=1)
        wait_until(lambda: len(ingest.accepted) >= 10, timeout=30, what="ingest after restart")
    finally:
        ingest.stop()
        for dashboard in dashboards:
            dashboard.stop()

    for dashboard in dashboards:
        assert dashboard.connects >= 2, dashboard.closes
        # A killed server sends no close frame (1006): the browser retries that.
        assert set(dashboard.closes) <= {1006, 1012, 1013, None}, dashboard.closes
    # Answers were 2xx, or none at all while the server was down (then retried): never 5xx.
    assert ingest.statuses() <= {200, None}, ingest.statuses()
    assert None in ingest.statuses()  # control: the runtime really met the dead server
    assert_stored_exactly_once(ingest, str(chat.pk))

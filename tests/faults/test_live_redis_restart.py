"""Redis restarted under steady ingest to a real daphne: ingest does not notice, and the open
dashboards converge on the final state within 5 s.

The Redis is a private redis-server the test starts on a free port (no persistence, as the
embedded stack runs it), so the machine's shared Redis is never touched. Restarting it drops
every pub/sub subscription and every message in flight: pushes published while it is away fail
(and are retried), pushes published before daphne's subscriber is back are lost; the
reconciliation repairs both from the database, and keeps the dashboards moving meanwhile."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from config.embedded import _redis_args, redis_is_up
from tests import factories as f
from tests.faults.live import Dashboard, Ingest, assert_stored_exactly_once, wait_until
from tests.integration.live_server import (
    LiveServer,
    free_port,
    runtime_token,
    server_env,
    session_cookie,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CONVERGE_SECONDS = 5.0


class PrivateRedis:
    def __init__(self, port: int, directory: Path) -> None:
        self.port, self.directory = port, directory
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = _redis_args(self.port, self.directory)
        system = shutil.which("redis-server")
        if system:  # the same server as the bundled one; either will do
            args[0] = system
        self.process = subprocess.Popen(args)
        wait_until(lambda: redis_is_up(self.port), timeout=20, what="private Redis up")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=20)
            self.process = None


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(free_port(), tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def server(django_db_setup: None, redis: PrivateRedis) -> Iterator[LiveServer]:
    live = LiveServer(
        free_port(),
        server_env(REDIS_URL=f"redis://127.0.0.1:{redis.port}/0", CHANNELS_PREFIX="scc_restart"),
        name="daphne-redis-restart",
    )
    live.start()
    yield live
    live.stop()


def test_a_redis_restart_leaves_ingest_alone_and_dashboards_converge(
    world: Any, server: LiveServer, redis: PrivateRedis
) -> None:
    chat = f.make_session(world.agent, world.owner, "chat", status="running")
    cookie = session_cookie(world.owner)
    detail = Dashboard(server, cookie, f"view=detail&session={chat.pk}").start()
    listing = Dashboard(server, cookie, "view=list").start()
    token = runtime_token(world)
    ingest = Ingest(server, token, str(chat.pk)).start()
    try:
        wait_until(lambda: len(ingest.accepted) >= 10, timeout=30, what="steady ingest")
        detail.wait_for("text of ev", timeout=10)  # pushes flow before the restart
        redis.stop()
        assert not redis_is_up(redis.port)  # control: it really went away
        down_from = len(ingest.accepted)
        # While Redis is away, the reconciliation still brings what changed to the sockets.
        wait_until(lambda: len(ingest.accepted) >= down_from + 3, timeout=10, what="ingest")
        detail.wait_for(f"text of {ingest.accepted[down_from + 2]}", timeout=CONVERGE_SECONDS)
        assert not redis_is_up(redis.port)
    finally:
        # The last events are committed while Redis is away: their pushes cannot go out.
        ingest.stop()
    redis.start()
    back_at = time.monotonic()

    # Ingest never needed Redis: every answer was a 2xx, also while it was away.
    assert ingest.statuses() == {200}, ingest.statuses()
    assert len(ingest.accepted) > down_from, "nothing was accepted while Redis was away"
    assert_stored_exactly_once(ingest, str(chat.pk))

    # Both dashboards converge on the last event within the bound, without another change to
    # carry it; never a 1011.
    try:
        arrived = detail.wait_for(ingest.last_text, timeout=CONVERGE_SECONDS + 5)
        assert arrived - back_at <= CONVERGE_SECONDS
        chat.refresh_from_db()
        # The list row (and panel item) as of the last event: its last activity.
        listing.wait_for(
            f'datetime="{chat.last_activity_at.isoformat()}"', timeout=CONVERGE_SECONDS
        )
        # And live pushes flow again: a new event arrives as a push.
        response = httpx.post(
            f"{server.url}/api/v1/sessions/{chat.pk}/events",
            headers={"Authorization": f"Bearer {token}"},
            json={
                "events": [
                    {
                        "event_id": "after",
                        "type": "message",
                        "payload": {"role": "agent", "text": "after the restart"},
                    }
                ]
            },
            timeout=10,
        )
        assert response.status_code == 200
        detail.wait_for("after the restart", timeout=CONVERGE_SECONDS)
    finally:
        detail.stop()
        listing.stop()
    for dashboard in (detail, listing):
        assert 1011 not in dashboard.closes, dashboard.closes

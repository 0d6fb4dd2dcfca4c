"""PostgreSQL unavailable for 10 s under steady ingest to a real daphne.

The shared PostgreSQL server keeps running (other databases on it are untouched): the test
database alone stops accepting connections (`ALTER DATABASE ... ALLOW_CONNECTIONS false`) and
every connection to it is terminated, which is what a client sees of a server that went away
and refuses to come back; then it is allowed again. Throughout, every answer must be 2xx or 503
with Retry-After and a JSON body, every event answered 2xx is stored exactly once, a create
retried with its Idempotency-Key makes one session, and the same daphne process (no restart)
serves again and its dashboards converge."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import psycopg
import pytest
from django.db import connection, connections
from psycopg import sql
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import connect
from websockets.typing import Origin

from sessions_app.models import AgentSession
from tests import factories as f
from tests.faults.live import (
    Dashboard,
    Ingest,
    assert_answers_are_2xx_or_503,
    assert_stored_exactly_once,
    wait_until,
)
from tests.integration.live_server import (
    SERVER_APP_NAME,
    LiveServer,
    runtime_token,
    session_cookie,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

OUTAGE_SECONDS = 10.0


@contextmanager
def database_refusing_connections() -> Iterator[None]:
    """Only this test's database goes away, through a connection to the maintenance database."""
    settings = connection.settings_dict
    name = settings["NAME"]
    admin = psycopg.connect(
        host=settings["HOST"] or "127.0.0.1",
        port=settings["PORT"] or "5432",
        user=settings["USER"] or "postgres",
        password=settings["PASSWORD"] or None,
        dbname="postgres",
        autocommit=True,
    )
    try:
        admin.execute(
            sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(name))
        )
        # The servers' connections: the test process's own (in threads this test cannot
        # reach, such as asgiref's) must survive it, or every later test inherits them dead.
        cut = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND application_name = %s",
            [name, SERVER_APP_NAME],
        ).fetchall()
        assert cut, "the servers held no connection to cut (their pools keep at least two)"
        yield
    finally:
        admin.execute(
            sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(name))
        )
        admin.close()
        connections.close_all()


class Creates:
    """Creates a session every `interval` s, each with its own Idempotency-Key, retrying the
    same key (and body) until it is answered 2xx, as the runtime client does."""

    def __init__(self, server: LiveServer, token: str, agent_id: int, interval: float = 1.0):
        self.server, self.token, self.agent_id, self.interval = server, token, agent_id, interval
        self.statuses: list[int | None] = []
        self.created: dict[str, str] = {}  # key -> session id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Creates:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "a create was still unanswered"

    def _run(self) -> None:
        n = 0
        with httpx.Client(
            base_url=f"{self.server.url}/api/v1",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10,
        ) as http:
            while not self._stop.is_set():
                n += 1
                key = f"outage-create-{n}"
                body = {"kind": "flow_run", "agent": self.agent_id, "owner": "owner", "title": key}
                while True:
                    try:
                        response = http.post(
                            "/sessions", json=body, headers={"Idempotency-Key": key}
                        )
                    except httpx.TransportError:
                        self.statuses.append(None)
                        time.sleep(0.2)
                        continue
                    self.statuses.append(response.status_code)
                    if response.status_code == 201:
                        self.created[key] = response.json()["id"]
                        break
                    time.sleep(0.2)
                self._stop.wait(self.interval)


def close_code_of_a_new_socket(server: LiveServer, cookie: str, session_id: Any) -> int | None:
    try:
        ws = connect(
            f"{server.ws_url}/ws/command-center/?view=detail&session={session_id}",
            additional_headers={"Cookie": f"sessionid={cookie}"},
            origin=Origin(server.url),
            open_timeout=15,
        )
    except InvalidHandshake:
        return 1006  # the handshake was dropped: what a browser reports
    with ws:
        try:
            while True:
                ws.recv(timeout=10)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else 1006
        except TimeoutError:
            return None


@pytest.fixture
def server(live_daphne: LiveServer) -> LiveServer:
    return live_daphne


def test_a_database_outage_under_ingest_answers_503_loses_nothing_and_recovers(
    world: Any, server: LiveServer
) -> None:
    chat = f.make_session(world.agent, world.owner, "chat", status="running")
    token = runtime_token(world)
    cookie = session_cookie(world.owner)
    dashboard = Dashboard(server, cookie, f"view=detail&session={chat.pk}")
    dashboard.start()
    assert server.process is not None
    pid = server.process.pid
    ingest = Ingest(server, token, str(chat.pk)).start()
    creates = Creates(server, token, world.agent.pk).start()
    try:
        # Steady ingest first (the server's first requests warm it up).
        wait_until(lambda: len(ingest.accepted) >= 10, timeout=30, what="steady ingest")
        before = len(ingest.accepted)
        with database_refusing_connections():
            outage_started = time.monotonic()
            # A socket opened now is told "try again later" (1013), or, when daphne's own 5 s
            # handshake timeout beats the connection pool's 5 s wait, dropped (1006): browsers
            # retry both. Never left open and deaf (None), never 1011.
            assert close_code_of_a_new_socket(server, cookie, chat.pk) in (1013, 1006)
            time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - outage_started)))
            during = len(ingest.accepted)
        # Recovery without a restart: new events are accepted again within seconds.
        wait_until(lambda: len(ingest.accepted) >= during + 10, timeout=20, what="recovery")
    finally:
        ingest.stop()
        creates.stop()
    stopped_at = time.monotonic()

    # The outage was real (control), and it was answered 503 + Retry-After + JSON, never 500.
    assert 503 in ingest.statuses()
    assert during - before <= 2, "ingest kept succeeding while the database was away"
    assert_answers_are_2xx_or_503(ingest)
    assert None not in ingest.statuses(), "daphne stopped answering"
    assert set(creates.statuses) <= {201, 503}, creates.statuses
    assert server.process is not None
    assert server.process.pid == pid
    assert server.process.poll() is None

    # Nothing answered 2xx is lost or doubled.
    assert_stored_exactly_once(ingest, str(chat.pk))
    titles = list(
        AgentSession.objects.filter(title__startswith="outage-create-").values_list(
            "title", flat=True
        )
    )
    assert sorted(titles) == sorted(creates.created), "a create was lost or doubled"
    assert len(set(creates.created.values())) == len(creates.created)

    # The dashboard converges on the last accepted event, and never saw a 1011.
    try:
        dashboard.wait_for(ingest.last_text, timeout=10)
    finally:
        dashboard.stop()
    assert time.monotonic() - stopped_at < 10
    # If its socket met the database away, it was closed with "try again later" (which the
    # browser retries), never 1011 or a code that would leave the page stale.
    assert set(dashboard.closes) <= {1013, None}, dashboard.closes

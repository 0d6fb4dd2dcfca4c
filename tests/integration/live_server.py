"""Real daphne processes for the browser and integration tests.

Each server runs `config.asgi:application` as a subprocess with the test process's environment
(DATABASE_URL pointed at the pytest-django test database, the same REDIS_URL and
CHANNELS_PREFIX), so data committed by a `transaction=True` test is what the server reads, and a
change made in the test process reaches the server's sockets through the shared channel layer.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import httpx
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.db import connection
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
DAPHNE = Path(sys.executable).parent / "daphne"
PASSWORD = "correct horse battery staple"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def database_url_for_server() -> str:
    """The URL of the database pytest-django created (call after `django_db_setup`)."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    if connection.vendor == "postgresql":
        auth = quote(settings["USER"] or "", safe="")
        if settings["PASSWORD"]:
            auth += ":" + quote(settings["PASSWORD"], safe="")
        host = settings["HOST"] or "127.0.0.1"
        port = settings["PORT"] or "5432"
        return f"postgres://{auth}@{host}:{port}/{quote(settings['NAME'], safe='')}"
    raise RuntimeError(f"no live-server support for the {connection.vendor} backend")


SERVER_APP_NAME = "scc-test-server"


def server_env(**overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    # Set for this process only (Playwright's sync API leaves an event loop marked running);
    # the server must keep Django's async-safety checks.
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    env.update(
        DATABASE_URL=database_url_for_server(),
        DJANGO_SETTINGS_MODULE="config.settings",
        PYTHONUNBUFFERED="1",
        # As config/deploy/Procfile runs the web process (ignored on SQLite).
        DB_POOL_SIZE="4",
        # libpq's default application_name: a fault test cuts off these processes'
        # connections, not the test process's own (tests/faults/test_live_db_outage.py).
        PGAPPNAME=SERVER_APP_NAME,
    )
    env.update(overrides)
    return env


@dataclass
class LiveServer:
    """One daphne process on a fixed port that can be stopped and started again."""

    port: int
    env: dict[str, str]
    name: str = "daphne"
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)
    _log: IO[bytes] | None = None

    def __post_init__(self) -> None:
        (ARTIFACTS / "logs").mkdir(parents=True, exist_ok=True)
        self.log_path = ARTIFACTS / "logs" / f"{self.name}-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, timeout: float = 45.0) -> None:
        self.launch()
        self.wait_until_ready(timeout)

    def launch(self) -> None:
        """Start the process without waiting (start several, then wait for each)."""
        assert self.process is None, "already running"
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [str(DAPHNE), "-b", "127.0.0.1", "-p", str(self.port), "config.asgi:application"],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_until_ready(self, timeout: float = 45.0) -> None:
        assert self.process is not None, "not launched"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start-up:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/accounts/login/", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop(sig=signal.SIGKILL)
        raise RuntimeError(f"{self.name} did not answer within {timeout}s:\n{self.log_tail()}")

    def stop(self, *, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


# --- people and tokens -------------------------------------------------------------------------


def give_password(user: Any, password: str = PASSWORD) -> str:
    """Give `user` a password the server can check.

    The test settings hash with MD5 (fast), which the server does not know; this writes a
    PBKDF2 hash with few iterations, which it verifies (and upgrades on login)."""
    hasher = PBKDF2PasswordHasher()
    user.password = hasher.encode(password, hasher.salt(), iterations=1000)
    user.save(update_fields=["password"])
    return password


def session_cookie(user: Any) -> str:
    """A logged-in session for `user`, stored in the shared database; the server accepts its
    cookie (same SECRET_KEY) without a password round trip."""
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def runtime_token(world: Any) -> str:
    """A runtime token for `world.agent`. Tokens are issued by an admin (CLI or admin site),
    not through the API, so the test makes one through the service."""
    from sessions_app import services
    from sessions_app.models import TokenKind

    _, raw = services.token_create(
        tenant=world.tenant,
        kind=TokenKind.RUNTIME,
        name="test runtime",
        user=world.agent_owner,
        agents=[world.agent],
    )
    return raw


def log_in_over_http(server: LiveServer, username: str, password: str) -> str:
    """Log in through the server's login form, as a browser would; returns the session cookie."""
    with httpx.Client(base_url=server.url, timeout=15) as http:
        form = http.get("/accounts/login/")
        found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        assert found, "the login page has no CSRF token"
        answer = http.post(
            "/accounts/login/",
            data={"username": username, "password": password, "csrfmiddlewaretoken": found[1]},
        )
        assert answer.status_code == 302, f"login refused: {answer.status_code}"
        cookie = http.cookies.get("sessionid")
        assert cookie, "no session cookie after logging in"
        return cookie

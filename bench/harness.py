"""What every server bench shares: its own PostgreSQL database, a real daphne, a seeded world
(workspaces, people, agents, tokens, login cookies), percentiles, the load average and a results
file.

Settings come from the environment so `make bench` can point every bench at the same server:
BENCH_PG_URL (a PostgreSQL URL without a database name; default the local trust server),
BENCH_REDIS_URL (default Redis db 12), BENCH_PREFIX (database, channel and queue prefix,
default `scc_bench`). Each bench names its database `<prefix>_<what>`.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from record import MACHINE as MACHINE
from record import Run as Run
from record import fmt as fmt
from record import loadavg as loadavg
from record import md_table as md_table
from record import percentile as percentile

ROOT = Path(__file__).resolve().parent.parent
logging.getLogger("httpx").setLevel(logging.WARNING)
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PG_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432").rstrip("/")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
PREFIX = os.environ.get("BENCH_PREFIX", "scc_bench")
# Keep each bench's database afterwards (to look at it); the list bench keeps its own anyway.
KEEP = os.environ.get("BENCH_KEEP_DB", "") not in ("", "0")
LOGS = ROOT / "var" / "bench"
DAPHNE = Path(sys.executable).parent / "daphne"


# --- databases ----------------------------------------------------------------------------------


def db_name(what: str) -> str:
    name = f"{PREFIX}_{what}"
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise SystemExit(f"refusing a database named {name!r}")
    return name


def db_url(name: str) -> str:
    return f"{PG_URL}/{name}"


def _admin() -> Any:
    import psycopg

    return psycopg.connect(db_url("postgres"), autocommit=True)


def database_exists(name: str) -> bool:
    with _admin() as conn:
        return (
            conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            is not None
        )


def drop_database(name: str) -> None:
    with _admin() as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def create_database(name: str) -> None:
    drop_database(name)
    with _admin() as conn:
        conn.execute(f"CREATE DATABASE {name}")


def app_env(name: str, **extra: str) -> dict[str, str]:
    """The environment a Django process of this bench runs with."""
    env = dict(os.environ)
    for key in ("DJANGO_ALLOW_ASYNC_UNSAFE", "VAR_DIR", "EMBEDDED_REDIS_PORT"):
        env.pop(key, None)
    env.update(
        DATABASE_URL=db_url(name),
        REDIS_URL=REDIS_URL,
        CHANNELS_PREFIX=PREFIX,
        CELERY_QUEUE=PREFIX,
        DJANGO_SETTINGS_MODULE="config.settings",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def migrate(name: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0", "--noinput"],
        cwd=ROOT,
        env=app_env(name),
        check=True,
    )


def fresh_database(what: str) -> str:
    """Create (dropping any old one) and migrate `<prefix>_<what>`; point Django at it."""
    name = db_name(what)
    create_database(name)
    migrate(name)
    use_database(name)
    return name


_django_ready = False


def use_database(name: str) -> None:
    """Set Django up in this process (once) and point its connection at `name`."""
    global _django_ready
    os.environ.update({k: v for k, v in app_env(name).items() if k in _DJANGO_KEYS})
    if not _django_ready:
        import django

        django.setup()
        _django_ready = True
    from django.db import connection

    connection.close()
    connection.settings_dict["NAME"] = name


_DJANGO_KEYS = (
    "DATABASE_URL",
    "REDIS_URL",
    "CHANNELS_PREFIX",
    "CELERY_QUEUE",
    "DJANGO_SETTINGS_MODULE",
)


# --- a real daphne --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Daphne:
    """`daphne config.asgi:application` on a free port, ready when `/readyz` says so. Its output
    goes to var/bench/daphne-<port>.log, where `tracebacks()` counts what went wrong."""

    env: dict[str, str]
    app: str = "config.asgi:application"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return LOGS / f"daphne-{self.port}.log"

    def __enter__(self) -> Daphne:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 60.0) -> None:
        LOGS.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        # As config/deploy/Procfile runs the web process: a pool of 20 connections unless the
        # bench says otherwise (BENCH_DB_POOL_SIZE, or DB_POOL_SIZE in its env).
        env = {"DB_POOL_SIZE": os.environ.get("BENCH_DB_POOL_SIZE", "20"), **self.env}
        self.process = subprocess.Popen(
            [str(DAPHNE), "-b", "127.0.0.1", "-p", str(self.port), self.app],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"daphne exited at start-up; see {self.log_path}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise SystemExit(f"daphne was not ready within {timeout:g} s; see {self.log_path}")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def rss_kib(self) -> int:
        assert self.process is not None
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
        return int(match[1]) if match else 0

    def tracebacks(self) -> int:
        try:
            return self.log_path.read_text(errors="replace").count(
                "Traceback (most recent call last)"
            )
        except OSError:
            return 0


# --- the world a bench runs in ----------------------------------------------------------------------


@dataclass
class Persona:
    name: str
    user: Any
    cookie: str = ""
    token: str = ""


@dataclass
class World:
    tenants: list[Any]
    projects: list[list[Any]]  # per tenant
    agents: list[list[Any]]  # per tenant
    users: list[list[Any]]  # per tenant
    personas: dict[str, Persona]  # in the first workspace
    runtime_token: str  # for every agent of the first workspace
    runtime_user: Any


def seed_world(
    *, tenants: int = 1, projects: int = 4, agents: int = 8, users: int = 20, logins: bool = True
) -> World:
    """Workspaces with projects, agents and people; in the first one the four personas the lists
    are measured for (tenant admin, a maintainer of two projects, a developer of one, and a
    session owner with no project role), each with a login cookie and a personal token."""
    from django.contrib.auth import get_user_model

    from sessions_app import services
    from sessions_app.models import (
        Agent,
        Membership,
        Project,
        Role,
        Tenant,
        TenantMembership,
        TokenKind,
    )

    user_model = get_user_model()
    all_tenants, all_projects, all_agents, all_users = [], [], [], []
    for t in range(tenants):
        tenant = Tenant.objects.create(name=f"Bench {t}", slug=f"bench-{t}")
        people = [user_model.objects.create(username=f"b{t}-user{i}") for i in range(users)]
        TenantMembership.objects.bulk_create(
            TenantMembership(tenant=tenant, user=u) for u in people
        )
        projs = [
            Project.objects.create(tenant=tenant, name=f"Project {p}", slug=f"p{p}")
            for p in range(projects)
        ]
        Membership.objects.bulk_create(
            Membership(tenant=tenant, project=projs[i % projects], user=u, role=Role.DEVELOPER)
            for i, u in enumerate(people)
            if i % 3 == 0
        )
        ags = [
            Agent.objects.create(
                tenant=tenant,
                project=projs[a % projects],
                owner=people[a % users],
                name=f"agent-{a}",
            )
            for a in range(agents)
        ]
        all_tenants.append(tenant)
        all_projects.append(projs)
        all_agents.append(ags)
        all_users.append(people)

    tenant, projs = all_tenants[0], all_projects[0]

    def person(name: str) -> Any:
        user = user_model.objects.create(username=f"bench-{name.replace(' ', '-')}")
        TenantMembership.objects.create(tenant=tenant, user=user, is_admin=name == "tenant admin")
        return user

    personas = {name: Persona(name, person(name)) for name in PERSONAS}
    Membership.objects.create(
        tenant=tenant, project=projs[0], user=personas["maintainer"].user, role=Role.MAINTAINER
    )
    Membership.objects.create(
        tenant=tenant,
        project=projs[1 % len(projs)],
        user=personas["maintainer"].user,
        role=Role.MAINTAINER,
    )
    Membership.objects.create(
        tenant=tenant, project=projs[0], user=personas["developer"].user, role=Role.DEVELOPER
    )
    # Sessions the benches create belong to the first agent's owner, who may use it.
    runtime_user = all_agents[0][0].owner
    _, runtime = services.token_create(
        tenant=tenant,
        kind=TokenKind.RUNTIME,
        name="bench runtime",
        user=runtime_user,
        agents=all_agents[0],
    )
    for p in personas.values():
        _, p.token = services.token_create(
            tenant=tenant, kind=TokenKind.PERSONAL, name="bench", user=p.user
        )
        if logins:
            p.cookie = login_cookie(p.user)
    return World(all_tenants, all_projects, all_agents, all_users, personas, runtime, runtime_user)


PERSONAS = ("tenant admin", "maintainer", "developer", "owner")


def login_cookie(user: Any) -> str:
    from django.test import Client

    client = Client()
    client.force_login(user)
    return str(client.cookies["sessionid"].value)

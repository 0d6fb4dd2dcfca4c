"""End-to-end live latency: API ingest -> websocket frame at a subscribed dashboard.

Usage: .venv/bin/python bench/live_latency_bench.py [--clients 100] [--rate 100] [--seconds 10]
           [--sessions 20] [--coalesce-ms 100,0]
           [--database-url postgres://postgres@127.0.0.1:5432/scc_bench]
           [--redis-url redis://127.0.0.1:6379/5]

Recreates and migrates a scratch PostgreSQL database, seeds one workspace with `--sessions`
chats, starts its own daphne, opens `--clients` dashboard websockets (view=list, logged in)
and posts `--rate` agent-message events per second (one event per POST, open loop, round robin
over the chats) through the runtime API. An event is delivered to a client when a pushed row
shows the chat's message count reaching it; its latency is receipt time minus the moment its
POST was started, for every client.

The same run measures a raw pipeline doing the least any such system must do, with the same
clients and rate: a psycopg INSERT + COMMIT, a Redis PUBLISH, and a plain `websockets` server
(a child process) that forwards each published message to every client. Each pipeline's
percentiles are reported with the app/raw ratio. The first `--warmup` seconds are not counted.
Everything runs on this machine: the client fleet is a separate process, and the load
generator, daphne, PostgreSQL and Redis share the cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# A row of the Sessions list as the consumer pushes it; its progress says "N messages".
ROW_RE = re.compile(
    r'<a id="session-([0-9a-f-]{36})" class="row[^"]*"[^>]*>.*?<span class="progress">(\d+) message',
    re.S,
)
RAW_RE = re.compile(r'data-n="(\d+)"')
PREFIX = "scc_bench"
RAW_CHANNEL = "scc_bench.raw"


# --- helpers ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def recreate_database(url: str) -> None:
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        sys.exit(f"refusing to recreate a database named {name!r}")
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")


# --- the client fleet (a child process) -------------------------------------------------------


@dataclass
class FleetSpec:
    url: str
    origin: str
    headers: dict[str, str]
    clients: int
    mode: str  # "app" (dashboard rows) or "raw" (data-n markers)
    session_ids: list[str] = field(default_factory=list)


def run_fleet(spec: FleetSpec, ready: EventType, stop: EventType, results: Any) -> None:
    asyncio.run(_fleet(spec, ready, stop, results))


async def _fleet(spec: FleetSpec, ready: EventType, stop: EventType, results: Any) -> None:
    """Each client records (chat index, message count, receipt time) for every count it sees
    for the first time ("app"), or (0, event number, receipt time) ("raw")."""
    import websockets
    from websockets.typing import Origin

    index = {sid: k for k, sid in enumerate(spec.session_ids)}
    deliveries: list[list[tuple[int, int, float]]] = [[] for _ in range(spec.clients)]
    frame_bytes: list[int] = []
    conns = []
    for _ in range(spec.clients):
        ws = await websockets.connect(
            spec.url,
            additional_headers=spec.headers,
            origin=Origin(spec.origin),
            max_size=None,
            open_timeout=60,
        )
        if spec.mode == "app":
            await ws.recv()  # the snapshot sent on connect
        conns.append(ws)

    async def read(c: int, ws: Any) -> None:
        seen = [0] * len(spec.session_ids)
        out = deliveries[c]
        try:
            async for frame in ws:
                now = time.monotonic()
                if c == 0:
                    frame_bytes.append(len(frame))
                if spec.mode == "raw":
                    match = RAW_RE.search(frame)
                    if match:
                        out.append((0, int(match[1]), now))
                    continue
                for row in ROW_RE.finditer(frame):
                    k = index.get(row[1])
                    count = int(row[2])
                    if k is not None and count > seen[k]:
                        out.extend((k, n, now) for n in range(seen[k] + 1, count + 1))
                        seen[k] = count
        except websockets.ConnectionClosed:
            pass

    readers = [asyncio.create_task(read(c, ws)) for c, ws in enumerate(conns)]
    ready.set()
    while not stop.is_set():
        await asyncio.sleep(0.05)
    await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)
    await asyncio.gather(*readers, return_exceptions=True)
    results.put({"deliveries": deliveries, "frame_bytes": frame_bytes})


class Fleet:
    def __init__(self, spec: FleetSpec) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.ready, self.stop = ctx.Event(), ctx.Event()
        self.results = ctx.Queue()
        self.process = ctx.Process(
            target=run_fleet, args=(spec, self.ready, self.stop, self.results), daemon=True
        )

    def __enter__(self) -> Fleet:
        self.process.start()
        if not self.ready.wait(120):
            self.process.kill()
            sys.exit("the client fleet did not connect within 120 s")
        return self

    def collect(self) -> dict[str, Any]:
        self.stop.set()
        result: dict[str, Any] = self.results.get(timeout=120)
        self.process.join(timeout=30)
        return result

    def __exit__(self, *exc: object) -> None:
        if self.process.is_alive():
            self.process.kill()


# --- the raw pipeline's server (a child process) ------------------------------------------------


def run_raw_server(port: int, redis_url: str, ready: EventType) -> None:
    asyncio.run(_raw_server(port, redis_url, ready))


async def _raw_server(port: int, redis_url: str, ready: EventType) -> None:
    """Redis SUBSCRIBE -> websockets.broadcast to every connected client."""
    import redis.asyncio as redis
    import websockets

    clients: set[Any] = set()

    async def handler(ws: Any) -> None:
        clients.add(ws)
        try:
            await ws.wait_closed()
        finally:
            clients.discard(ws)

    r = redis.Redis.from_url(redis_url)
    pubsub = r.pubsub()
    await pubsub.subscribe(RAW_CHANNEL)
    async with websockets.serve(handler, "127.0.0.1", port, max_size=None):
        ready.set()
        async for message in pubsub.listen():
            if message["type"] == "message":
                websockets.broadcast(clients, message["data"].decode())


# --- load ---------------------------------------------------------------------------------------


@dataclass
class Sent:
    at: dict[tuple[int, int], float]  # (chat index, count) or (0, n) -> POST/INSERT start
    measured: set[tuple[int, int]]  # the keys sent after the warm-up
    ingest_ms: list[float]  # time to the API's answer (app) or to PUBLISH done (raw)
    behind_ms: float  # how far the sender fell behind its schedule at worst
    unanswered: int = 0  # requests still open `drain` seconds after the last was started


@dataclass(frozen=True)
class Schedule:
    rate: float  # events per second
    seconds: float  # measured
    warmup: float  # not measured
    drain: float  # seconds to wait for answers, then for frames


async def open_loop(schedule: Schedule, send: Any) -> Sent:
    """Start event i at start + i/rate whether or not earlier ones were answered (open loop),
    so a pipeline that falls behind shows it as latency instead of slowing the load down."""
    total = round(schedule.rate * (schedule.seconds + schedule.warmup))
    sent = Sent({}, set(), [], 0.0)
    start = time.monotonic() + 0.2
    tasks = []
    for i in range(total):
        delay = start + i / schedule.rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            sent.behind_ms = max(sent.behind_ms, -delay * 1000)
        measured = i >= schedule.rate * schedule.warmup
        tasks.append(asyncio.create_task(send(i, measured, sent)))
    # Bounded: a saturated server must not stretch the run; what is still open is given up.
    _, pending = await asyncio.wait(tasks, timeout=schedule.drain)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    sent.unanswered = len(pending)
    return sent


async def app_load(
    base_url: str, token: str, session_ids: list[str], schedule: Schedule, batch: int = 1
) -> Sent:
    """`batch` > 1 posts that many events per request (as the runtime client batches), at
    rate / batch requests per second; every event's latency counts from its request's start."""
    counts = [0] * len(session_ids)
    schedule = Schedule(schedule.rate / batch, schedule.seconds, schedule.warmup, schedule.drain)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(
        base_url=f"{base_url}/api/v1",
        headers={"Authorization": f"Bearer {token}"},
        limits=limits,
        timeout=60,
    ) as http:

        async def send(i: int, measured: bool, sent: Sent) -> None:
            k = i % len(session_ids)
            keys = []
            for _ in range(batch):
                counts[k] += 1
                keys.append((k, counts[k]))
            body = {
                "events": [
                    {
                        "event_id": f"bench-{i}-{j}",
                        "type": "message",
                        "payload": {"role": "agent", "text": f"bench event {i}.{j}"},
                    }
                    for j in range(batch)
                ]
            }
            t0 = time.monotonic()
            for key in keys:
                sent.at[key] = t0
                if measured:
                    sent.measured.add(key)
            answer = await http.post(f"/sessions/{session_ids[k]}/events", json=body)
            answer.raise_for_status()
            sent.ingest_ms.append((time.monotonic() - t0) * 1000)

        return await open_loop(schedule, send)


async def raw_load(database_url: str, redis_url: str, schedule: Schedule, pad: int) -> Sent:
    import psycopg
    import redis.asyncio as redis

    pool: asyncio.Queue[Any] = asyncio.Queue()
    for _ in range(8):
        pool.put_nowait(await psycopg.AsyncConnection.connect(database_url))
    conn = await pool.get()
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS bench_raw_event ("
        " id bigserial PRIMARY KEY, n integer NOT NULL, payload jsonb NOT NULL,"
        " created_at timestamptz NOT NULL DEFAULT now())"
    )
    await conn.commit()
    pool.put_nowait(conn)
    r = redis.Redis.from_url(redis_url)
    filler = "x" * max(0, pad)

    async def send(i: int, measured: bool, sent: Sent) -> None:
        key = (0, i)
        t0 = time.monotonic()
        sent.at[key] = t0
        if measured:
            sent.measured.add(key)
        db = await pool.get()
        try:
            await db.execute(
                "INSERT INTO bench_raw_event (n, payload) VALUES (%s, %s)",
                (i, json.dumps({"role": "agent", "text": f"bench event {i}"})),
            )
            await db.commit()
        finally:
            pool.put_nowait(db)
        await r.publish(RAW_CHANNEL, f'<div data-n="{i}">{filler}</div>')
        sent.ingest_ms.append((time.monotonic() - t0) * 1000)

    try:
        return await open_loop(schedule, send)
    finally:
        while not pool.empty():
            await (pool.get_nowait()).close()
        await r.aclose()  # type: ignore[attr-defined]


# --- results ------------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    latencies_ms: list[float]
    expected: int
    ingest_ms: list[float]
    frame_bytes: float
    behind_ms: float
    unanswered: int

    @property
    def delivered(self) -> float:
        arrived = sum(1 for v in self.latencies_ms if v != math.inf)
        return arrived / self.expected if self.expected else float("nan")

    def p(self, q: float) -> float:
        return percentile(self.latencies_ms, q)


def summarise(name: str, sent: Sent, fleet: dict[str, Any], clients: int) -> Result:
    latencies: list[float] = []
    for per_client in fleet["deliveries"]:
        for k, n, received in per_client:
            key = (k, n)
            if key in sent.measured:
                latencies.append((received - sent.at[key]) * 1000)
    expected = len(sent.measured) * clients
    # What never arrived (within the drain time) counts as infinitely late, so a saturated
    # pipeline shows "lost" percentiles instead of the flattering ones of what got through.
    lost = expected - len(latencies)
    latencies.sort()
    latencies += [math.inf] * lost
    sizes = fleet["frame_bytes"]
    return Result(
        name=name,
        latencies_ms=latencies,
        expected=expected,
        ingest_ms=sorted(sent.ingest_ms),
        frame_bytes=statistics.median(sizes) if sizes else 0.0,
        behind_ms=sent.behind_ms,
        unanswered=sent.unanswered,
    )


def ms(value: float) -> str:
    return "lost" if math.isinf(value) else f"{value:.1f}"


def ratio(app: float, raw: float) -> str:
    return "-" if math.isinf(app) or math.isinf(raw) or raw == 0 else f"{app / raw:.1f}x"


def print_table(results: list[Result], raw: Result, args: argparse.Namespace) -> None:
    """A Markdown table (pasted as is into docs/benchmarks.md)."""
    print(
        f"\n{args.clients} clients, {args.rate:g} events/s for {args.seconds:g} s "
        f"(+{args.warmup:g} s warm-up), {args.sessions} chats, {args.batch} event(s) per app "
        f"request; milliseconds; "
        f"'lost' = not delivered within {args.drain:g} s after the last event\n"
    )
    print("| pipeline | delivered | p50 | p95 | p99 | max | ingest p50 | frame bytes |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in [*results, raw]:
        print(
            f"| {r.name} | {r.delivered:.1%} | {ms(r.p(50))} | {ms(r.p(95))} | {ms(r.p(99))} "
            f"| {ms(r.p(100))} | {ms(percentile(r.ingest_ms, 50))} | {r.frame_bytes:.0f} |"
        )
    for r in results:
        print(
            f"| ratio {r.name} / raw | | {ratio(r.p(50), raw.p(50))} | {ratio(r.p(95), raw.p(95))} "
            f"| {ratio(r.p(99), raw.p(99))} | | | |"
        )
    for r in [*results, raw]:
        if r.behind_ms > 50:
            print(f"\nnote: the {r.name} sender fell up to {r.behind_ms:.0f} ms behind schedule")
        if r.unanswered:
            print(
                f"\nnote: {r.unanswered} of the {r.name} requests were still unanswered "
                f"{args.drain:g} s after the last one was sent (given up)"
            )


# --- the run ------------------------------------------------------------------------------------


def schedule_of(args: argparse.Namespace) -> Schedule:
    return Schedule(rate=args.rate, seconds=args.seconds, warmup=args.warmup, drain=args.drain)


def django_env(args: argparse.Namespace, coalesce_ms: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=args.database_url,
        REDIS_URL=args.redis_url,
        CHANNELS_PREFIX=PREFIX,
        CELERY_QUEUE=PREFIX,
        DJANGO_SETTINGS_MODULE="config.settings",
        SCC_BROADCAST_COALESCE_MS=str(coalesce_ms),
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    return env


@dataclass
class Seed:
    token: str
    cookie: str
    agent: Any
    user: Any


def seed() -> Seed:
    """One workspace, an admin watching it and a runtime token."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.test import Client

    from sessions_app import services
    from sessions_app.models import Agent, Project, Tenant, TenantMembership, TokenKind

    user = get_user_model().objects.create_user("bench", password="bench-password-1")
    tenant = Tenant.objects.create(name="Bench", slug="bench")
    TenantMembership.objects.create(tenant=tenant, user=user, is_admin=True)
    project = Project.objects.create(tenant=tenant, name="Bench", slug="bench")
    agent = Agent.objects.create(tenant=tenant, project=project, owner=user, name="bench-agent")
    _, token = services.token_create(
        tenant=tenant, kind=TokenKind.RUNTIME, name="bench", user=user, agents=[agent]
    )
    client = Client()
    client.force_login(user)
    return Seed(token=token, cookie=client.cookies["sessionid"].value, agent=agent, user=user)


def new_chats(data: Seed, count: int, label: str) -> list[str]:
    """Fresh chats for one run, so every run counts messages from zero."""
    from sessions_app import services

    return [
        str(
            services.session_create(
                agent=data.agent, owner=data.user, kind="chat", actor="bench", title=f"{label} {k}"
            ).pk
        )
        for k in range(count)
    ]


class Daphne:
    def __init__(self, env: dict[str, str], app: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "daphne"),
                "-b",
                "127.0.0.1",
                "-p",
                str(self.port),
                app,
            ],
            cwd=ROOT,
            env=env,
            # Its access log (one line per request and socket) would drown the table.
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit("daphne exited at start-up")
            try:
                if httpx.get(f"{self.url}/accounts/login/", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.close()
        sys.exit("daphne did not start within 60 s")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()


def run_app(args: argparse.Namespace, data: Seed, coalesce_ms: int) -> Result:
    session_ids = new_chats(data, args.sessions, f"Bench chat ({coalesce_ms} ms)")
    daphne = Daphne(django_env(args, coalesce_ms), args.asgi_app)
    try:
        spec = FleetSpec(
            url=f"ws://127.0.0.1:{daphne.port}/ws/command-center/?view=list",
            origin=daphne.url,
            headers={"Cookie": f"sessionid={data.cookie}"},
            clients=args.clients,
            mode="app",
            session_ids=session_ids,
        )
        with Fleet(spec) as fleet:
            sent = asyncio.run(
                app_load(daphne.url, data.token, session_ids, schedule_of(args), args.batch)
            )
            time.sleep(args.drain)
            frames = fleet.collect()
    finally:
        daphne.close()
    return summarise(f"app (coalesce {coalesce_ms} ms)", sent, frames, args.clients)


def run_raw(args: argparse.Namespace, pad: int) -> Result:
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    port = free_port()
    server = ctx.Process(target=run_raw_server, args=(port, args.redis_url, ready), daemon=True)
    server.start()
    try:
        if not ready.wait(60):
            sys.exit("the raw websockets server did not start")
        spec = FleetSpec(
            url=f"ws://127.0.0.1:{port}/",
            origin=f"http://127.0.0.1:{port}",
            headers={},
            clients=args.clients,
            mode="raw",
        )
        with Fleet(spec) as fleet:
            sent = asyncio.run(raw_load(args.database_url, args.redis_url, schedule_of(args), pad))
            time.sleep(args.drain)
            frames = fleet.collect()
    finally:
        server.kill()
        server.join(timeout=10)
    return summarise("raw (psycopg + PUBLISH + websockets)", sent, frames, args.clients)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rate", type=float, default=100.0, help="events per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds not counted")
    parser.add_argument("--drain", type=float, default=3.0, help="seconds to wait for stragglers")
    parser.add_argument("--sessions", type=int, default=20, help="chats the events go to")
    parser.add_argument(
        "--batch", type=int, default=1, help="events per API request (the runtime client batches)"
    )
    parser.add_argument(
        "--coalesce-ms",
        default="100,0",
        help="broadcast coalescing windows to run the app with (default: the shipped 100 and 0)",
    )
    parser.add_argument(
        "--database-url",
        default="postgres://postgres@127.0.0.1:5432/scc_bench",
        help="a scratch PostgreSQL database: DROPPED and recreated",
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/5")
    parser.add_argument(
        "--asgi-app",
        default="config.asgi:application",
        help="the ASGI application daphne serves (a variant module to measure a change)",
    )
    args = parser.parse_args(argv)
    if not urlsplit(args.database_url).scheme.startswith("postgres"):
        sys.exit("--database-url must be a PostgreSQL URL")

    t_start = time.monotonic()
    print(f"recreating and migrating {args.database_url} ...", flush=True)
    recreate_database(args.database_url)
    env = django_env(args, 100)
    os.environ.update(env)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"], cwd=ROOT, env=env, check=True
    )
    data = seed()

    results = []
    for window in (int(w) for w in args.coalesce_ms.split(",") if w.strip()):
        print(f"app pipeline, coalesce {window} ms ...", flush=True)
        results.append(run_app(args, data, window))
    pad = round(statistics.median(r.frame_bytes for r in results)) if results else 2000
    print("raw pipeline ...", flush=True)
    raw = run_raw(args, pad)
    print_table(results, raw, args)
    print(f"\n(total run time {time.monotonic() - t_start:.0f} s)")


if __name__ == "__main__":
    main()

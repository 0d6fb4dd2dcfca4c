"""End-to-end live latency: API ingest -> websocket frame at a subscribed dashboard.

Usage: .venv/bin/python bench/live_latency_bench.py [--clients 100] [--rate 100] [--seconds 10]
           [--sessions 20] [--batches 10,1] [--coalesce-ms 100,0]

Creates and migrates its own database (`<prefix>_live`, bench/harness.py), seeds a workspace,
starts its own daphne, opens `--clients` dashboard websockets (view=list, logged in as the
tenant admin) and, for each of `--batches`, posts `--rate` agent-message events per second
(`batch` events per POST, open loop, round robin over `--sessions` fresh chats) through the
runtime API. An event is delivered to a client when a pushed row
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
import re
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
import httpx

# A row of the Sessions list as the consumer pushes it; its progress says "N messages".
ROW_RE = re.compile(
    r'<a id="session-([0-9a-f-]{36})" class="row[^"]*"[^>]*>.*?<span class="progress">(\d+) message',
    re.S,
)
RAW_RE = re.compile(r'data-n="(\d+)"')
RAW_CHANNEL = f"{harness.PREFIX}.raw"


def percentile(sorted_values: Sequence[float], q: float) -> float:
    return harness.percentile(sorted_values, q)


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
    requests: int = 0


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
    sent.requests = len(tasks)
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
    requests: int

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
        requests=sent.requests,
    )


def ms(value: float) -> str:
    return "lost" if math.isinf(value) else f"{value:.1f}"


def ratio(app: float, raw: float) -> str:
    return "-" if math.isinf(app) or math.isinf(raw) or raw == 0 else f"{app / raw:.1f}x"


def table(run: harness.Run, title: str, results: list[Result], raw: Result) -> None:
    rows = []
    for r in [*results, raw]:
        rows.append(
            [
                r.name,
                f"{r.requests - r.unanswered:,} / {r.requests:,}",
                f"{r.delivered:.1%}",
                ms(r.p(50)),
                ms(r.p(95)),
                ms(r.p(99)),
                ms(r.p(100)),
                ms(percentile(r.ingest_ms, 50)),
                ms(percentile(r.ingest_ms, 99)),
                f"{r.frame_bytes:.0f}",
            ]
        )
    for r in results:
        rows.append(
            [
                f"ratio {r.name} / raw",
                "",
                "",
                ratio(r.p(50), raw.p(50)),
                ratio(r.p(95), raw.p(95)),
                ratio(r.p(99), raw.p(99)),
                "",
                "",
                "",
                "",
            ]
        )
    run.table(
        title,
        [
            "pipeline",
            "requests answered",
            "frames delivered",
            "p50",
            "p95",
            "p99",
            "max",
            "ingest p50",
            "ingest p99",
            "frame bytes",
        ],
        rows,
    )
    for r in [*results, raw]:
        if r.behind_ms > 50:
            run.note(f"note: the {r.name} sender fell up to {r.behind_ms:.0f} ms behind schedule")


def numbers(r: Result, raw: Result) -> dict[str, Any]:
    def finite(v: float) -> float | None:
        return None if math.isinf(v) else round(v, 2)

    return {
        "requests": r.requests,
        "answered": r.requests - r.unanswered,
        "delivered": r.delivered,
        "p50_ms": finite(r.p(50)),
        "p95_ms": finite(r.p(95)),
        "p99_ms": finite(r.p(99)),
        "ingest_p50_ms": finite(percentile(r.ingest_ms, 50)),
        "ingest_p99_ms": finite(percentile(r.ingest_ms, 99)),
        "ratio_p50": None if math.isinf(r.p(50)) else r.p(50) / raw.p(50),
        "ratio_p99": None if math.isinf(r.p(99)) else r.p(99) / raw.p(99),
    }


# --- the run ------------------------------------------------------------------------------------


def schedule_of(args: argparse.Namespace) -> Schedule:
    return Schedule(rate=args.rate, seconds=args.seconds, warmup=args.warmup, drain=args.drain)


def django_env(args: argparse.Namespace, coalesce_ms: str) -> dict[str, str]:
    extra = {"SCC_BROADCAST_COALESCE_MS": coalesce_ms} if coalesce_ms else {}
    return harness.app_env(args.database, **extra)


def new_chats(world: harness.World, count: int, label: str) -> list[str]:
    """Fresh chats for one run, so every run counts messages from zero."""
    from sessions_app import services

    agent = world.agents[0][0]
    return [
        str(
            services.session_create(
                agent=agent, owner=agent.owner, kind="chat", actor="bench", title=f"{label} {k}"
            ).pk
        )
        for k in range(count)
    ]


def run_app(args: argparse.Namespace, world: harness.World, window: str, batch: int) -> Result:
    label = f"coalesce {window} ms" if window else "as shipped"
    session_ids = new_chats(world, args.sessions, f"Bench chat ({label}, batch {batch})")
    with harness.Daphne(django_env(args, window)) as daphne:
        spec = FleetSpec(
            url=f"{daphne.ws}/ws/command-center/?view=list",
            origin=daphne.url,
            headers={"Cookie": f"sessionid={world.personas['tenant admin'].cookie}"},
            clients=args.clients,
            mode="app",
            session_ids=session_ids,
        )
        with Fleet(spec) as fleet:
            sent = asyncio.run(
                app_load(daphne.url, world.runtime_token, session_ids, schedule_of(args), batch)
            )
            time.sleep(args.drain)
            frames = fleet.collect()
        args.tracebacks += daphne.tracebacks()
    return summarise(f"app ({label})", sent, frames, args.clients)


def run_raw(args: argparse.Namespace, pad: int) -> Result:
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    port = harness.free_port()
    server = ctx.Process(target=run_raw_server, args=(port, harness.REDIS_URL, ready), daemon=True)
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
            url = harness.db_url(args.database)
            sent = asyncio.run(raw_load(url, harness.REDIS_URL, schedule_of(args), pad))
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
        "--batches", default="10,1", help="events per API request, one configuration each"
    )
    parser.add_argument(
        "--coalesce-ms",
        default="",
        help="broadcast coalescing windows to run the app with, e.g. 100,0 (default: as shipped)",
    )
    parser.add_argument("--quick", action="store_true", help="20 clients, 4 s measured")
    args = parser.parse_args(argv)
    if args.quick:
        args.clients, args.seconds, args.warmup = 20, 4.0, 1.0
    args.tracebacks = 0
    run = harness.Run("live_latency")
    args.database = harness.fresh_database("live")
    world = harness.seed_world()
    windows = [w.strip() for w in args.coalesce_ms.split(",")] if args.coalesce_ms else [""]
    batches = [int(b) for b in args.batches.split(",")]
    app: dict[int, list[Result]] = {}
    for batch in batches:
        for window in windows:
            print(f"app pipeline, batch {batch}, coalesce {window or 'as shipped'} ...", flush=True)
            app.setdefault(batch, []).append(run_app(args, world, window, batch))
    everything = [r for rs in app.values() for r in rs]
    pad = round(statistics.median(r.frame_bytes for r in everything)) if everything else 2000
    print("raw pipeline ...", flush=True)
    raw = run_raw(args, pad)
    out: dict[str, Any] = {"clients": args.clients, "rate": args.rate, "raw": numbers(raw, raw)}
    for batch, results in app.items():
        table(
            run,
            f"{args.clients} dashboards, {args.rate:g} events/s in batches of {batch} for "
            f"{args.seconds:g} s (+{args.warmup:g} s warm-up), ms from the POST's start to the frame; "
            f"'lost' = not delivered within {args.drain:g} s",
            results,
            raw,
        )
        out[f"batch{batch}"] = [{"name": r.name, **numbers(r, raw)} for r in results]
    run.note(f"daphne tracebacks: {args.tracebacks}")
    run.save(results=out, tracebacks=args.tracebacks)
    if not harness.KEEP:
        harness.drop_database(args.database)


if __name__ == "__main__":
    main()

"""Ingest through a real daphne: events/s and ms per request vs raw psycopg `executemany`.

    .venv/bin/python bench/ingest_bench.py [--events 1000] [--clients 4] [--quick]

Creates its own database (`<prefix>_ingest`, see bench/harness.py), starts daphne on it and
posts the same realistic events (agent messages, thinking, tool calls and results, file edits;
one in ten carries a credential to redact) to `POST /api/v1/sessions/{id}/events` in batches of
1, 10 and 100 with httpx: keep-alive connections, `--clients` concurrent clients, each posting
one request after the other to its own chat. One more pass posts single events from one client,
which is the latency of one request with nothing else going on.

The floor, in the same run and database: the same rows (already serialised) inserted with
psycopg `executemany` into a scratch table with the same columns and unique constraints, one
transaction per batch, from the same number of concurrent connections.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
import httpx


def make_events(n: int, rng: random.Random) -> list[dict[str, Any]]:
    words = [
        "the",
        "build",
        "failed",
        "because",
        "a",
        "migration",
        "adds",
        "a",
        "column",
        "without",
        "a",
        "default",
        "value",
    ]

    def text(k: int) -> str:
        return " ".join(rng.choice(words) for _ in range(k))

    events: list[dict[str, Any]] = []
    for i in range(n):
        kind = i % 5
        event: tuple[str, dict[str, Any]]
        if kind == 0:
            event = ("message", {"role": "agent", "text": text(40)})
        elif kind == 1:
            event = ("thinking", {"text": text(25)})
        elif kind == 2:
            event = (
                "tool_call",
                {"call_id": f"c{i}", "name": "run_shell", "arguments": {"command": "pytest -q"}},
            )
        elif kind == 3:
            output = text(60)
            if i % 10 == 3:
                output += "\nGITHUB_TOKEN=ghp_" + "".join(
                    rng.choice("abcdef0123456789") for _ in range(36)
                )
            event = ("tool_result", {"call_id": f"c{i - 1}", "output": output})
        else:
            event = ("file_edit", {"path": "app/models.py", "before": text(20), "after": text(22)})
        events.append({"event_id": uuid.uuid4().hex, "type": event[0], "payload": event[1]})
    return events


def batches(events: list[Any], size: int) -> list[list[Any]]:
    return [events[i : i + size] for i in range(0, len(events), size)]


async def post_all(
    base: str, token: str, sessions: list[str], bodies: list[list[str]]
) -> tuple[float, list[float]]:
    """Client k posts bodies[k] to sessions[k] one after the other; all clients at once."""
    times: list[float] = []

    async def client(k: int) -> None:
        async with httpx.AsyncClient(
            base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=60
        ) as http:
            for body in bodies[k]:
                t0 = time.perf_counter()
                answer = await http.post(
                    f"/sessions/{sessions[k]}/events",
                    content=body,
                    headers={"Content-Type": "application/json"},
                )
                times.append((time.perf_counter() - t0) * 1000)
                if answer.status_code != 200:
                    raise SystemExit(f"ingest failed: {answer.status_code} {answer.text[:300]}")

    start = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(len(sessions))))
    return time.perf_counter() - start, times


RAW_TABLE = """
create table if not exists ingest_bench_scratch (
    id bigserial primary key, session_id uuid not null, seq bigint not null,
    event_id varchar(100) not null, type varchar(20) not null, actor varchar(200) not null,
    payload jsonb not null, redactions jsonb not null, created_at timestamptz not null,
    unique (session_id, seq), unique (session_id, event_id))
"""


async def raw_all(url: str, chunks: list[list[list[Any]]]) -> tuple[float, list[float]]:
    import psycopg
    from psycopg.types.json import Jsonb

    sql = (
        "insert into ingest_bench_scratch (session_id, seq, event_id, type, actor, payload, "
        "redactions, created_at) values (%s, %s, %s, %s, %s, %s, %s, now())"
    )
    times: list[float] = []
    conns = [await psycopg.AsyncConnection.connect(url, autocommit=True) for _ in chunks]

    async def client(k: int) -> None:
        sid, seq = uuid.uuid4(), 0
        for chunk in chunks[k]:
            rows = []
            for e in chunk:
                seq += 1
                rows.append(
                    (sid, seq, e["event_id"], e["type"], "runtime", Jsonb(e["payload"]), Jsonb({}))
                )
            t0 = time.perf_counter()
            async with conns[k].transaction(), conns[k].cursor() as cur:
                await cur.executemany(sql, rows)
            times.append((time.perf_counter() - t0) * 1000)

    try:
        start = time.perf_counter()
        await asyncio.gather(*(client(k) for k in range(len(chunks))))
        return time.perf_counter() - start, times
    finally:
        for conn in conns:
            await conn.close()


def new_chats(world: harness.World, n: int) -> list[str]:
    from sessions_app import services

    agent = world.agents[0][0]
    return [
        str(
            services.session_create(
                agent=agent,
                owner=world.runtime_user,
                kind="chat",
                actor="bench",
                title=f"ingest {k}",
            ).pk
        )
        for k in range(n)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1000, help="events per batch size")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients")
    parser.add_argument("--single", type=int, default=200, help="one-client single-event requests")
    parser.add_argument("--quick", action="store_true", help="400 events, 100 single requests")
    args = parser.parse_args()
    if args.quick:
        args.events, args.single = 400, 100
    run = harness.Run("ingest")
    name = harness.fresh_database("ingest")
    world = harness.seed_world(logins=False)
    rng = random.Random(1)
    url = harness.db_url(name)
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(RAW_TABLE)
    rows = []
    numbers: dict[str, Any] = {}
    with harness.Daphne(harness.app_env(name)) as daphne:
        # Warm both paths: imports, the pool, the token cache, first-query plans.
        warm = new_chats(world, args.clients)
        asyncio.run(
            post_all(
                daphne.url,
                world.runtime_token,
                warm,
                [[json.dumps({"events": make_events(5, rng)})] * 1 for _ in warm],
            )
        )
        asyncio.run(
            post_all(
                daphne.url,
                world.runtime_token,
                warm[:1],
                [[json.dumps({"events": make_events(1, rng)}) for _ in range(20)]],
            )
        )
        asyncio.run(raw_all(url, [[make_events(5, rng)] for _ in range(args.clients)]))
        configs = [(1, 1, args.single)] + [(b, args.clients, args.events) for b in (1, 10, 100)]
        for batch, clients, total in configs:
            per_client = max(1, total // clients)
            events = [make_events(per_client, rng) for _ in range(clients)]
            chats = new_chats(world, clients)
            bodies = [[json.dumps({"events": c}) for c in batches(ev, batch)] for ev in events]
            app_s, app_ms = asyncio.run(post_all(daphne.url, world.runtime_token, chats, bodies))
            raw_s, raw_ms = asyncio.run(raw_all(url, [batches(ev, batch) for ev in events]))
            sent = per_client * clients
            app_eps, raw_eps = sent / app_s, sent / raw_s
            key = f"b{batch}_c{clients}"
            numbers[key] = {
                "batch": batch,
                "clients": clients,
                "events": sent,
                "app_eps": app_eps,
                "raw_eps": raw_eps,
                "ratio": app_eps / raw_eps,
                "app_p50_ms": harness.percentile(app_ms, 50),
                "app_p99_ms": harness.percentile(app_ms, 99),
                "raw_p50_ms": harness.percentile(raw_ms, 50),
                "raw_p99_ms": harness.percentile(raw_ms, 99),
            }
            n = numbers[key]
            rows.append(
                [
                    batch,
                    clients,
                    f"{sent:,}",
                    f"{app_eps:,.0f}",
                    f"{raw_eps:,.0f}",
                    f"{n['ratio']:.2f}",
                    harness.fmt(n["app_p50_ms"]),
                    harness.fmt(n["app_p99_ms"]),
                    harness.fmt(n["raw_p50_ms"], 2),
                    harness.fmt(n["raw_p99_ms"], 2),
                ]
            )
            print(
                f"batch {batch}, {clients} client(s): {app_eps:,.0f} ev/s vs raw {raw_eps:,.0f}",
                flush=True,
            )
        tracebacks = daphne.tracebacks()
    run.table(
        "Ingest through daphne vs raw psycopg executemany (same run, same database)",
        [
            "batch",
            "clients",
            "events",
            "app events/s",
            "raw events/s",
            "app / raw",
            "app ms/request p50",
            "app p99",
            "raw ms/batch p50",
            "raw p99",
        ],
        rows,
    )
    run.note(f"daphne tracebacks: {tracebacks}")
    run.save(results=numbers, tracebacks=tracebacks)
    if not harness.KEEP:
        harness.drop_database(name)


if __name__ == "__main__":
    main()

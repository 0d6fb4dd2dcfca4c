"""Database statements per minute: 100 pushed dashboards vs 100 clients polling a page every
2 s, while 10 runs change status every 5 s.

    .venv/bin/python bench/push_poll_bench.py [--clients 100] [--seconds 60]

Creates its own database (`<prefix>_pushpoll`) with a few hundred sessions, and starts daphne
with its database connections going through a proxy (bench/pgcount.py) that counts every
statement daphne sends (extended-protocol Executes and simple Queries; BEGIN/COMMIT and the like
are counted apart). Ten flow runs of one project alternate between running and waiting for
input, each every 5 s (staggered), through the runtime API of the same daphne. Three phases of
`--seconds` each, after a few seconds of settling:

- churn only (no dashboard): what ingesting the changes costs;
- churn + `--clients` list dashboards on sockets (a quarter each logged in as the tenant admin,
  a maintainer, a developer and a session owner);
- churn + `--clients` pollers (the same people) each fetching the Sessions page every 2 s.

The dashboards' cost is a phase's statements minus the churn-only phase's; the ratio is polling
over pushing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fleet
import harness
import httpx
import pgcount

RUNS, EVERY, POLL = 10, 5.0, 2.0
STATE: dict[str, str] = {}  # each run's status (they start pending)
FAILED: list[int] = []  # status codes of refused changes


def make_runs(world: harness.World) -> list[str]:
    from sessions_app import services

    agent = world.agents[0][0]
    return [
        str(
            services.session_create(
                agent=agent, owner=agent.owner, kind="flow_run", actor="bench", title=f"churn {k}"
            ).pk
        )
        for k in range(RUNS)
    ]


def status_event(to: str) -> dict[str, Any]:
    return {"event_id": f"c{time.time_ns()}", "type": "status_change", "payload": {"to": to}}


async def churn(base: str, token: str, runs: list[str], seconds: float) -> int:
    """Every run flips running <-> waiting_input every EVERY seconds, staggered."""
    changes = 0
    async with httpx.AsyncClient(
        base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=60
    ) as http:

        async def one(k: int, session: str) -> None:
            nonlocal changes
            await asyncio.sleep(k * EVERY / len(runs))
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                t0 = time.monotonic()
                to = "waiting_input" if STATE.get(session) == "running" else "running"
                answer = await http.post(
                    f"/sessions/{session}/events", json={"events": [status_event(to)]}
                )
                if answer.status_code == 200:
                    STATE[session] = to
                    changes += 1
                else:  # a refused change (503 when the pool is exhausted) is a result
                    FAILED.append(answer.status_code)
                await asyncio.sleep(max(0.0, EVERY - (time.monotonic() - t0)))

        await asyncio.gather(*(one(k, s) for k, s in enumerate(runs)))
    return changes


async def polling(base: str, cookies: list[str], seconds: float) -> tuple[int, int]:
    """Each client fetches the Sessions page every POLL seconds (staggered); answers (ok, failed)."""
    ok = failed = 0
    end = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=len(cookies), max_keepalive_connections=len(cookies))
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:

        async def one(k: int, cookie: str) -> None:
            nonlocal ok, failed
            await asyncio.sleep(k * POLL / len(cookies))
            while time.monotonic() < end:
                t0 = time.monotonic()
                try:
                    answer = await http.get("/sessions/", headers={"Cookie": f"sessionid={cookie}"})
                    ok += answer.status_code == 200
                    failed += answer.status_code != 200
                except httpx.HTTPError:
                    failed += 1
                await asyncio.sleep(max(0.0, POLL - (time.monotonic() - t0)))

        await asyncio.gather(*(one(k, c) for k, c in enumerate(cookies)))
    return ok, failed


def phase(counter: pgcount.StatementCounter, work: Any, seconds: float) -> dict[str, float]:
    before = counter.counts()
    t0 = time.monotonic()
    extra = work()
    elapsed = time.monotonic() - t0
    after = counter.counts()
    per_min = 60 / elapsed
    return {
        "seconds": elapsed,
        "statements_per_min": (after[0] - before[0]) * per_min,
        "control_per_min": (after[1] - before[1]) * per_min,
        "extra": extra,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--quick", action="store_true", help="20 clients, 15 s phases")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.seconds = 20, 15.0
    run = harness.Run("push_poll")
    name = harness.fresh_database("pushpoll")
    world = harness.seed_world()
    runs = make_runs(world)
    people = list(world.personas.values())
    cookies = [people[k % len(people)].cookie for k in range(args.clients)]
    pg = urlsplit(harness.PG_URL)
    proxy_port = harness.free_port()
    url = f"postgres://{pg.username or 'postgres'}@127.0.0.1:{proxy_port}/{name}"
    env = harness.app_env(name, DATABASE_URL=url)
    token = world.runtime_token
    out: dict[str, Any] = {"clients": args.clients, "runs": RUNS}
    with (
        pgcount.StatementCounter(
            (pg.hostname or "127.0.0.1", pg.port or 5432), proxy_port
        ) as counter,
        harness.Daphne(env) as daphne,
    ):
        # Runs start pending; the first change makes them run.
        asyncio.run(churn(daphne.url, token, runs, 0.1))
        time.sleep(3)
        print(f"churn only, {args.seconds:g} s ...", flush=True)
        out["churn"] = phase(
            counter,
            lambda: asyncio.run(churn(daphne.url, token, runs, args.seconds)),
            args.seconds,
        )
        print(f"churn + {args.clients} pushed dashboards ...", flush=True)
        with contextlib.ExitStack() as stack:
            fleets = []
            for p in people:
                share = sum(1 for c in cookies if c == p.cookie)
                spec = fleet.Spec(f"{daphne.ws}/ws/command-center/?view=list", daphne.url, p.cookie)
                f = stack.enter_context(fleet.Fleet(spec))
                f.ask("connect", share, 10)
                fleets.append(f)
            time.sleep(5)
            for f in fleets:
                f.ask("mark")
            out["push"] = phase(
                counter,
                lambda: asyncio.run(churn(daphne.url, token, runs, args.seconds)),
                args.seconds,
            )
            out["push"]["frames"] = sum(f.ask("frames") for f in fleets)
        time.sleep(3)
        print(f"churn + {args.clients} pollers every {POLL:g} s ...", flush=True)

        async def churn_and_poll() -> tuple[int, int]:
            _, polls = await asyncio.gather(
                churn(daphne.url, token, runs, args.seconds),
                polling(daphne.url, cookies, args.seconds),
            )
            return polls

        out["poll"] = phase(counter, lambda: asyncio.run(churn_and_poll()), args.seconds)
        tracebacks = daphne.tracebacks()
    base = out["churn"]["statements_per_min"]
    push = out["push"]["statements_per_min"] - base
    poll = out["poll"]["statements_per_min"] - base
    out["push_dashboards_per_min"], out["poll_dashboards_per_min"] = push, poll
    out["ratio"] = poll / push if push > 0 else None
    ok, failed = out["poll"]["extra"]
    out["refused_changes"] = len(FAILED)
    if FAILED:
        run.note(f"{len(FAILED)} status changes refused by the API (codes {sorted(set(FAILED))})")
    rows = [
        [
            "churn only (10 runs, a change every 5 s each)",
            f"{base:,.0f}",
            f"{out['churn']['control_per_min']:,.0f}",
            "-",
            "",
        ],
        [
            f"churn + {args.clients} pushed dashboards",
            f"{out['push']['statements_per_min']:,.0f}",
            f"{out['push']['control_per_min']:,.0f}",
            f"{push:,.0f}",
            f"{out['push']['frames']:,} frames received",
        ],
        [
            f"churn + {args.clients} pollers, Sessions page every {POLL:g} s",
            f"{out['poll']['statements_per_min']:,.0f}",
            f"{out['poll']['control_per_min']:,.0f}",
            f"{poll:,.0f}",
            f"{ok:,} pages ({failed} failed)",
        ],
    ]
    run.table(
        f"Statements per minute sent by daphne ({args.seconds:g} s per phase)",
        ["phase", "statements/min", "of which BEGIN/COMMIT/...", "dashboards' share/min", "notes"],
        rows,
    )
    ratio = (
        f"{out['ratio']:.1f}x"
        if out["ratio"]
        else "unbounded (pushing cost no measurable statements)"
    )
    run.note(f"polling / pushing, dashboards' share: {ratio}")
    run.note(f"daphne tracebacks: {tracebacks}")
    run.save(results=out, tracebacks=tracebacks)
    if not harness.KEEP:
        harness.drop_database(name)


if __name__ == "__main__":
    main()

"""Many dashboard sockets on one daphne: reconnect storm, idle memory, push latency against the
socket count, and clean closes.

    .venv/bin/python bench/sockets_bench.py [--sockets 1000] [--in-flight 50] [--steps 1000,100,10]
        [--close-sockets 5000]

Creates its own database (`<prefix>_sockets`), seeds a workspace with a few hundred sessions,
starts a fresh daphne and, from a client process:

1. reconnect storm: `--sockets` logged-in list dashboards connect at once with at most
   `--in-flight` handshakes under way (a restarted server's clients all come back together);
   measured: the time until every socket has its snapshot, and the failures;
2. idle memory: daphne's resident memory before the storm and after it with every socket idle
   for a few seconds, per socket;
3. push latency at each socket count of `--steps` (closing sockets between steps): one event
   every half second posted to one chat through the API, the ms from the POST's start until each
   socket sees the chat's row with the new message count; p50 / p99 and frames delivered. The
   floor at each step is the same fan-out by a plain `websockets` server relaying a Redis
   PUBLISH, measured by bench/live_latency_bench.py at 100 sockets;
4. clean closes: dashboards are opened up to `--close-sockets`, all closed at once, and
   daphne's log is searched for tracebacks.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fleet
import harness
import httpx


def seed_sessions(world: harness.World, n: int) -> str:
    """`n` chats of the first agent; the first one is watched."""
    from sessions_app import services

    agent = world.agents[0][0]
    ids = [
        str(
            services.session_create(
                agent=agent, owner=agent.owner, kind="chat", actor="bench", title=f"chat {k}"
            ).pk
        )
        for k in range(n)
    ]
    return ids[0]


async def post_events(
    base: str, token: str, session: str, count: int, every: float
) -> dict[int, float]:
    """Post `count` single events, one after the other at most every `every` seconds (so
    message count n is the n-th POST); answers when each count's POST started."""
    started: dict[int, float] = {}
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=f"{base}/api/v1", headers=headers, timeout=60) as http:
        begin = time.monotonic()
        for i in range(count):
            delay = begin + i * every - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            event = {
                "event_id": f"s{time.time_ns()}",
                "type": "message",
                "payload": {"role": "agent", "text": f"event {i}"},
            }
            t0 = time.monotonic()
            answer = await http.post(f"/sessions/{session}/events", json={"events": [event]})
            answer.raise_for_status()
            started[i + 1] = t0
    return started


def latency(
    started: dict[int, float], deliveries: list[dict[int, float]]
) -> tuple[list[float], int]:
    values: list[float] = []
    expected = len(started) * len(deliveries)
    for out in deliveries:
        for n, t0 in started.items():
            if n in out:
                values.append((out[n] - t0) * 1000)
    values.sort()
    return values + [math.inf] * (expected - len(values)), expected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--in-flight", type=int, default=50)
    parser.add_argument("--steps", default="1000,100,10")
    parser.add_argument("--events", type=int, default=20, help="events per latency step")
    parser.add_argument(
        "--close-sockets", type=int, default=5000, help="sockets closed at once at the end"
    )
    parser.add_argument("--quick", action="store_true", help="200 sockets, steps 200,20, 10 events")
    args = parser.parse_args()
    if args.quick:
        args.sockets, args.steps, args.events, args.close_sockets = 200, "200,20", 10, 500
    steps = [int(s) for s in args.steps.split(",")]
    run = harness.Run("sockets")
    name = harness.fresh_database("sockets")
    world = harness.seed_world()
    watch = seed_sessions(world, 30)
    admin = world.personas["tenant admin"]
    out: dict[str, Any] = {"sockets": args.sockets, "in_flight": args.in_flight}
    with harness.Daphne(harness.app_env(name)) as daphne:
        spec = fleet.Spec(
            f"{daphne.ws}/ws/command-center/?view=list", daphne.url, admin.cookie, watch
        )
        with fleet.Fleet(spec) as f:
            # Warm the server's code paths with one socket, then forget it.
            f.ask("connect", 1, 1)
            f.ask("close", 1)
            time.sleep(2)
            rss_before = daphne.rss_kib()
            print(
                f"storm: {args.sockets} sockets, {args.in_flight} handshakes in flight ...",
                flush=True,
            )
            storm = f.ask("connect", args.sockets, args.in_flight)
            done = [r[1] for r in storm["results"] if r[1] is not None]
            failures = [r[2] for r in storm["results"] if r[1] is None]
            all_in = (max(done) - storm["start"]) if done else math.inf
            each = sorted((r[1] - r[0]) * 1000 for r in storm["results"] if r[1] is not None)
            out["storm"] = {
                "seconds_to_all_snapshots": all_in,
                "failures": len(failures),
                "failure_kinds": sorted(set(failures)),
                "handshake_to_snapshot_p50_ms": harness.percentile(each, 50),
                "handshake_to_snapshot_p99_ms": harness.percentile(each, 99),
            }
            run.table(
                f"Reconnect storm: {args.sockets:,} dashboards (tenant admin, list view) to one fresh daphne, "
                f"at most {args.in_flight} handshakes in flight",
                [
                    "sockets",
                    "all snapshots in (s)",
                    "failures",
                    "connect to snapshot p50 (ms)",
                    "p99 (ms)",
                ],
                [
                    [
                        f"{args.sockets:,}",
                        harness.fmt(all_in, 2),
                        f"{len(failures)} {sorted(set(failures)) or ''}".strip(),
                        harness.fmt(harness.percentile(each, 50)),
                        harness.fmt(harness.percentile(each, 99)),
                    ]
                ],
            )
            # What the storm refused comes back a few at a time (as browsers retry), so memory
            # and latency are measured with every socket open.
            missing = args.sockets - len(done)
            if missing:
                retry = f.ask("connect", missing, 5)
                done += [r[1] for r in retry["results"] if r[1] is not None]
                run.note(
                    f"{missing} refused sockets reconnected 5 at a time: "
                    f"{sum(1 for r in retry['results'] if r[1] is not None)} succeeded"
                )
            time.sleep(5)
            rss_after = daphne.rss_kib()
            per_socket = (rss_after - rss_before) / max(1, len(done))
            out["memory"] = {
                "rss_before_kib": rss_before,
                "rss_after_kib": rss_after,
                "sockets": len(done),
                "kib_per_socket": per_socket,
            }
            run.table(
                "Idle socket memory (daphne's VmRSS)",
                ["idle sockets", "RSS before (MiB)", "RSS after (MiB)", "per socket (KiB)"],
                [
                    [
                        f"{len(done):,}",
                        f"{rss_before / 1024:.1f}",
                        f"{rss_after / 1024:.1f}",
                        f"{per_socket:.1f}",
                    ]
                ],
            )
            rows, points = [], []
            open_now = len(done)
            for step in steps:
                if step < open_now:
                    open_now = f.ask("close", open_now - step)
                    time.sleep(2)
                f.ask("mark")
                # A fresh chat per step, so its message counts start from one.
                watch = seed_sessions(world, 1)
                f.ask("watch", watch)
                started = asyncio.run(
                    post_events(daphne.url, world.runtime_token, watch, args.events, 0.5)
                )
                time.sleep(3)
                values, expected = latency(started, f.ask("deliveries"))
                delivered = sum(1 for v in values if v != math.inf) / max(1, expected)
                p50, p99 = harness.percentile(values, 50), harness.percentile(values, 99)
                points.append(
                    {
                        "sockets": open_now,
                        "p50_ms": None if math.isinf(p50) else p50,
                        "p99_ms": None if math.isinf(p99) else p99,
                        "delivered": delivered,
                    }
                )
                rows.append(
                    [f"{open_now:,}", f"{delivered:.1%}", harness.fmt(p50), harness.fmt(p99)]
                )
                print(
                    f"  {open_now} sockets: p50 {p50:.1f} ms, p99 {p99:.1f} ms, delivered {delivered:.1%}",
                    flush=True,
                )
            out["latency_by_sockets"] = points
            # Then many sockets leaving at once (a deploy, a proxy restart): open up to
            # --close-sockets, close them all together, and read daphne's log.
            more = max(0, args.close_sockets - open_now)
            opened = f.ask("connect", more, args.in_flight) if more else {"results": []}
            open_now += sum(1 for r in opened["results"] if r[1] is not None)
            time.sleep(2)
            f.ask("close", open_now)
            time.sleep(3)
            out["close"] = {"sockets": open_now, "tracebacks": daphne.tracebacks()}
            print(f"  closed {open_now} sockets at once", flush=True)
            run.table(
                f"Push latency against the socket count: {args.events} single events, one every 0.5 s, "
                "ms from the POST's start to the row at each socket",
                ["sockets", "frames delivered", "p50", "p99"],
                rows,
            )
        time.sleep(2)
        tracebacks = daphne.tracebacks()
    closed = out["close"]["sockets"]
    run.note(f"daphne tracebacks after closing {closed:,} sockets at once: {tracebacks}")
    run.save(results=out, tracebacks=tracebacks)
    if not harness.KEEP:
        harness.drop_database(name)


if __name__ == "__main__":
    main()

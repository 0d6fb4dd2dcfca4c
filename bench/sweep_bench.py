"""Policy sweep and retention purge benchmark (PostgreSQL only).

Usage:
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/scc_pol \\
        .venv/bin/python bench/sweep_bench.py [--sizes 10000,100000] [--due 1000]
        [--purge-sessions 20000] [--events-per-session 20] [--repeat 2]

Creates its own database (scc_sweep_bench, dropped at the end), bulk-loads open sessions with
COPY and times `sweeps.policy_sweep()` over each size with the same number of due rows:

- 40 % chats past their idle timeout (running -> idle),
- 20 % flow runs with no event for their idle timeout (flagged stalled),
- 30 % runs past their max duration (-> stopping + a stop command),
- 10 % runs stuck in stopping past the stop grace (-> stopped + a note).

The other sessions are open and not due: started up to 25 minutes ago with the longest session
timeout (30 min) and activity within the last 9 minutes (idle timeouts are 10 and 30 min).
The cost should follow the due rows, not the table: the headline is the ratio of the largest
size's sweep time to the smallest's. A second sweep right after the first (nothing due) shows
what finding the due rows costs on its own.

Then it loads sessions past their retention, each with a transcript and a command, and reports
the retention purge rate in rows deleted per second.

After-commit broadcast listeners are detached: this measures the database work of the sweeps,
not the live UI's fan-out.
"""

# ruff: noqa: E402 - Django is set up before the modules that need it are imported.
from __future__ import annotations

import argparse
import os
import random
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup()

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone
from psycopg.types.json import Jsonb

from sessions_app import hooks, sweeps
from sessions_app.models import (
    Agent,
    AgentSession,
    Project,
    RuntimeCommand,
    SessionEvent,
    Tenant,
    TenantMembership,
)
from sessions_app.states import Kind, Status

BENCH_DB = "scc_sweep_bench"
IDLE_SHORT, IDLE_LONG = 600, 1800
TIMEOUT = 1800


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--due", type=int, default=1000)
    parser.add_argument("--purge-sessions", type=int, default=20_000)
    parser.add_argument("--events-per-session", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("sweep_bench needs PostgreSQL: set DATABASE_URL=postgres://...")

    for topic in hooks._listeners.values():
        topic.clear()
    settings.SCC_STOP_GRACE_SECONDS = 120
    connection.settings_dict["TEST"]["NAME"] = BENCH_DB
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        run(args)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


def run(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    world = make_world()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"PostgreSQL {connection.cursor().connection.info.server_version}; due rows: {args.due}")
    print()
    print("| open sessions | due | sweep (s) | due rows/s | sweep with nothing due (s) |")
    print("|---:|---:|---:|---:|---:|")
    timings: dict[int, tuple[float, float]] = {}
    for size in sizes:
        # Best of --repeat loads: the machine's other load only ever adds time.
        runs = [sweep_once(world, rng, size=size, due=args.due) for _ in range(args.repeat)]
        full, idle = min(r[0] for r in runs), min(r[1] for r in runs)
        timings[size] = (full, idle)
        print(f"| {size:,} | {args.due:,} | {full:.2f} | {args.due / full:,.0f} | {idle:.3f} |")
    small, large = min(sizes), max(sizes)
    print()
    print(
        f"ratio {large:,} / {small:,} open sessions, same {args.due:,} due: "
        f"sweep {timings[large][0] / timings[small][0]:.2f}x, "
        f"nothing-due sweep {timings[large][1] / timings[small][1]:.2f}x"
    )
    print()
    print(explain_due_queries())

    truncate()
    purge_rate(world, rng, sessions=args.purge_sessions, events=args.events_per_session)


def sweep_once(world: World, rng: random.Random, *, size: int, due: int) -> tuple[float, float]:
    """Load `size` open sessions of which `due` are due, sweep them; then time a sweep with
    nothing due (best of three), which is the cost of finding the due rows on its own."""
    truncate()
    load_open_sessions(world, rng, size=size, due=due)
    analyze()
    started = time.perf_counter()
    report = sweeps.policy_sweep()
    full = time.perf_counter() - started
    got = (report.idled, report.stalled, report.stopped_max_duration, report.stopped_grace)
    assert got == split_due(due), (got, report)
    assert report.errors == 0, report
    idle = []
    for _ in range(3):
        started = time.perf_counter()
        assert sweeps.policy_sweep().changed == 0
        idle.append(time.perf_counter() - started)
    return full, min(idle)


# --- data -------------------------------------------------------------------------------------


class World:
    def __init__(self, tenant: Tenant, project: Project, agents: list[Agent], owners: list[Any]):
        self.tenant, self.project, self.agents, self.owners = tenant, project, agents, owners


def make_world() -> World:
    user_model = get_user_model()
    tenant = Tenant.objects.create(name="Bench", slug="bench")
    project = Project.objects.create(tenant=tenant, name="Bench", slug="bench")
    owners = [user_model.objects.create(username=f"bench{i}") for i in range(50)]
    TenantMembership.objects.bulk_create(TenantMembership(tenant=tenant, user=u) for u in owners)
    agents = [
        Agent.objects.create(
            tenant=tenant,
            project=project,
            owner=owners[0],
            name=f"agent-{i}",
            idle_timeout_seconds=IDLE_SHORT if i % 2 == 0 else IDLE_LONG,
        )
        for i in range(10)
    ]
    return World(tenant, project, agents, owners)


def split_due(due: int) -> tuple[int, int, int, int]:
    idle, stalled, longest = due * 4 // 10, due * 2 // 10, due * 3 // 10
    return idle, stalled, longest, due - idle - stalled - longest


# Generated columns are the database's to fill.
FIELDS = [f for f in AgentSession._meta.concrete_fields if not f.generated]
COLUMNS = [f.column for f in FIELDS]


def session_row(world: World, rng: random.Random, now: datetime, **values: Any) -> tuple[Any, ...]:
    sid = uuid.uuid4()
    kind = values["kind"]
    agent = values.pop("agent", None) or rng.choice(world.agents)
    row: dict[str, Any] = {
        "id": sid,
        "short_id": sid.hex[:8],
        "tenant": world.tenant.pk,
        "project": world.project.pk,
        "agent": agent.pk,
        "owner": rng.choice(world.owners).pk,
        "agent_status": "",
        "stalled": False,
        "stall_reason": "",
        "checkpoint_state": "",
        "checkpoint_name": "",
        "title": f"bench {kind} {sid.hex[:8]}",
        "title_folded": f"bench {kind} {sid.hex[:8]}",
        "model": "gpt-4o",
        "temperature": 0.7,
        "max_tokens": 4000,
        "timeout_seconds": TIMEOUT,
        "current_step": 0,
        "total_steps": 0,
        "current_step_name": "",
        "turns": 0,
        "message_count": 0,
        "last_seq": 0,
        "error_code": "",
        "error_message": "",
        "stop_reason": "",
        "sandbox": "",
        "profile": "",
        "runtime": "",
        "repo": "",
        "branch": "",
        "origin": "api",
        "initiative": None,
        "parent": None,
        "cloned_from": None,
        "transferred_from": None,
        "updated_at": now,
        "ended_at": None,
        "archived_at": None,
        "pinned": False,
        "version": 1,
    }
    row.update(values)
    row.setdefault("created_at", row["started_at"] or now)
    row.setdefault("status_changed_at", row["started_at"] or now)
    row.setdefault("expires_at", row["last_activity_at"] + timedelta(days=30))
    return tuple(row[f.name] for f in FIELDS)


def agents_with_idle(world: World, idle: int) -> list[Agent]:
    return [a for a in world.agents if a.idle_timeout_seconds == idle]


def load_open_sessions(world: World, rng: random.Random, *, size: int, due: int) -> None:
    now = timezone.now()
    ago = lambda seconds: now - timedelta(seconds=seconds)  # noqa: E731
    short_idle = agents_with_idle(world, IDLE_SHORT)
    n_idle, n_stalled, n_longest, n_grace = split_due(due)
    rows: list[tuple[Any, ...]] = []
    for _ in range(n_idle):
        rows.append(
            session_row(
                world,
                rng,
                now,
                agent=rng.choice(short_idle),
                kind=Kind.CHAT,
                status=Status.RUNNING,
                started_at=ago(700),
                last_activity_at=ago(650),
            )
        )
    for _ in range(n_stalled):
        rows.append(
            session_row(
                world,
                rng,
                now,
                agent=rng.choice(short_idle),
                kind=Kind.FLOW_RUN,
                status=Status.RUNNING,
                started_at=ago(700),
                last_activity_at=ago(650),
            )
        )
    for _ in range(n_longest):
        rows.append(
            session_row(
                world,
                rng,
                now,
                kind=rng.choice([Kind.FLOW_RUN, Kind.BACKGROUND_TASK]),
                status=Status.RUNNING,
                started_at=ago(TIMEOUT + 100),
                last_activity_at=ago(60),
            )
        )
    for _ in range(n_grace):
        rows.append(
            session_row(
                world,
                rng,
                now,
                kind=Kind.FLOW_RUN,
                status=Status.STOPPING,
                started_at=ago(400),
                status_changed_at=ago(200),
                last_activity_at=ago(200),
                stop_reason="user",
            )
        )
    open_kinds = [
        (Kind.CHAT, Status.RUNNING),
        (Kind.FLOW_RUN, Status.RUNNING),
        (Kind.FLOW_RUN, Status.WAITING_INPUT),
        (Kind.BACKGROUND_TASK, Status.RUNNING),
        (Kind.BACKGROUND_TASK, Status.QUEUED),
    ]
    for _ in range(size - due):
        kind, status = rng.choice(open_kinds)
        age = rng.uniform(10, 1500)
        started = None if status == Status.QUEUED else ago(age)
        rows.append(
            session_row(
                world,
                rng,
                now,
                kind=kind,
                status=status,
                created_at=ago(age),
                started_at=started,
                last_activity_at=ago(rng.uniform(0, min(age, 540))),
            )
        )
    copy_rows(AgentSession._meta.db_table, COLUMNS, rows)


def copy_rows(table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> None:
    connection.ensure_connection()
    raw = connection.connection
    assert raw is not None
    with raw.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def truncate() -> None:
    with connection.cursor() as cur:
        cur.execute(
            "TRUNCATE sessions_app_sessionevent, sessions_app_runtimecommand, "
            "sessions_app_agentsession"
        )


def analyze() -> None:
    with connection.cursor() as cur:
        cur.execute("ANALYZE sessions_app_agentsession")


def explain_due_queries() -> str:
    """Where each due-row query starts: the partial index it scans."""
    now = timezone.now()
    queries = {
        "idle": sweeps.idle_due(now),
        "max duration": sweeps.max_duration_due(now)[0],
        "stop grace": sweeps.stop_grace_due(now),
    }
    lines = []
    for name, qs in queries.items():
        assert qs is not None
        plan = qs.order_by().values("pk").explain(analyze=True)
        scans = [ln.strip().lstrip("-> ") for ln in plan.splitlines() if "Index Scan" in ln]
        rows = [ln.strip() for ln in plan.splitlines() if "Execution Time" in ln]
        lines.append(f"- {name}: {'; '.join(s.split('  (')[0] for s in scans)}; {rows[0]}")
    return "\n".join(lines)


# --- retention ----------------------------------------------------------------------------------


def purge_rate(world: World, rng: random.Random, *, sessions: int, events: int) -> None:
    now = timezone.now()
    long_ago = now - timedelta(days=40)
    session_rows = [
        session_row(
            world,
            rng,
            now,
            kind=Kind.FLOW_RUN,
            status=Status.COMPLETED,
            started_at=long_ago,
            ended_at=long_ago,
            last_activity_at=long_ago,
            last_seq=events,
        )
        for _ in range(sessions)
    ]
    copy_rows(AgentSession._meta.db_table, COLUMNS, session_rows)
    ids = [row[COLUMNS.index("id")] for row in session_rows]
    event_columns = ["session_id", "seq", "event_id", "type", "actor", "payload", "redactions"]
    event_columns.append("created_at")
    copy_rows(
        SessionEvent._meta.db_table,
        event_columns,
        (
            (
                sid,
                seq,
                f"e{seq}",
                "message",
                "runtime",
                Jsonb({"role": "agent", "text": "ok"}),
                Jsonb({}),
                long_ago,
            )
            for sid in ids
            for seq in range(1, events + 1)
        ),
    )
    command_columns = ["id", "tenant_id", "session_id", "agent_id", "kind", "payload", "status"]
    command_columns += ["correlation_id", "result", "created_at"]
    agent_col = COLUMNS.index("agent_id")
    copy_rows(
        RuntimeCommand._meta.db_table,
        command_columns,
        (
            (
                *(uuid.uuid4(), world.tenant.pk, row[0], row[agent_col], "stop", Jsonb({})),
                *("applied", uuid.uuid4(), "", long_ago),
            )
            for row in session_rows
        ),
    )
    with connection.cursor() as cur:
        cur.execute("ANALYZE")
    started = time.perf_counter()
    report = sweeps.retention_purge()
    elapsed = time.perf_counter() - started
    assert report.sessions == sessions, report
    rows = report.sessions + report.events + report.commands
    print()
    print(
        f"retention purge: {report.sessions:,} sessions + {report.events:,} events + "
        f"{report.commands:,} commands = {rows:,} rows in {elapsed:.2f} s "
        f"({report.batches} batches): {rows / elapsed:,.0f} rows/s, "
        f"{report.sessions / elapsed:,.0f} sessions/s"
    )


if __name__ == "__main__":
    main()

"""Sessions page, Command Center panel and API list at 10k and 1M sessions, per persona.

    .venv/bin/python bench/list_bench.py [--sizes 10000,1000000] [--reuse] [--repeat 7]

For each size it loads its own database (`<prefix>_list_<size>`) with COPY: three workspaces
(60 / 30 / 10 % of the rows) with five projects, twenty agents and fifty people each; flow runs
45 %, background tasks 35 %, chats 20 %. What a live system holds at any moment does not grow
with its history, so both sizes hold the same 200 live sessions (running, idle, waiting for
input, paused, queued) and the same 1 000 sessions that ended in the last 24 hours; everything
else ended 1 to 30 days ago (the retention window). Then VACUUM ANALYZE, as autovacuum would
have done on a table that grew over weeks.

A real daphne serves each database. For four people of the largest workspace (a tenant admin;
a maintainer of two projects; a developer of one; a session owner with no project role, who
owns 1/51 of the workspace's sessions) it times, sequentially on one keep-alive connection:
the Sessions page (`GET /sessions/`), the Command Center panel (`GET /command-center/panel/`),
the API's first page (`GET /api/v1/sessions`, personal token) and a deep keyset page (the same
request at the cursor reached by following `next_cursor` through `--deep` rows). Each cell is
the median of `--repeat` requests after one warm-up.

`--reuse` keeps a database that is already loaded with the right row count (it is migrated to
the current code, and the people get new cookies and tokens), so a second run skips the load.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
import httpx

LIVE, RECENT = 200, 1000
TENANT_SHARE = (0.6, 0.3, 0.1)
KINDS = (("flow_run", 45), ("background_task", 35), ("chat", 20))
ENDED = {
    "flow_run": ("completed", "completed", "completed", "failed", "cancelled"),
    "background_task": ("completed", "completed", "completed", "failed", "cancelled"),
    "chat": ("ended", "ended", "ended", "failed"),
}
LIVE_STATUSES = {
    "flow_run": ("running", "running", "waiting_input", "paused"),
    "background_task": ("queued", "running", "running", "waiting_input"),
    "chat": ("running", "idle", "idle"),
}
ENDPOINTS = ("sessions page", "panel", "API first page", "API deep page")


# --- loading --------------------------------------------------------------------------------------


def loaded_rows(name: str) -> int:
    import psycopg

    try:
        with psycopg.connect(harness.db_url(name)) as conn:
            row = conn.execute("SELECT count(*) FROM sessions_app_agentsession").fetchone()
            return int(row[0]) if row else 0
    except psycopg.Error:
        return -1


def load(size: int, rng: random.Random) -> None:
    """Seed the world with the ORM and COPY `size` sessions into the current database."""
    from django.db import connection
    from django.utils import timezone
    from psycopg.types.json import Jsonb

    from sessions_app.models import AgentSession

    world = harness.seed_world(tenants=3, projects=5, agents=20, users=50, logins=False)
    owner_persona = world.personas["owner"].user
    fields = [f for f in AgentSession._meta.concrete_fields if not f.generated]
    columns = [f.column for f in fields]
    template: dict[str, Any] = {}
    for f in fields:
        value = f.get_default()
        template[f.attname] = Jsonb(value) if isinstance(value, dict | list) else value
    index = {f.attname: i for i, f in enumerate(fields)}
    base = [template[f.attname] for f in fields]
    now = timezone.now()
    kinds = [k for k, weight in KINDS for _ in range(weight)]

    def row(tenant: int, when: Any, live: bool) -> list[Any]:
        values = list(base)
        sid = uuid.uuid4()
        kind = rng.choice(kinds)
        agent = rng.choice(world.agents[tenant])
        people = world.users[tenant]
        owner = owner_persona if tenant == 0 and rng.random() < 1 / 51 else rng.choice(people)
        status = rng.choice(LIVE_STATUSES[kind] if live else ENDED[kind])
        started = when - timedelta(seconds=rng.uniform(30, 3600))
        title = f"{kind.replace('_', ' ')} {sid.hex[:6]} for {agent.name}"
        for key, value in (
            ("id", sid),
            ("short_id", sid.hex[:8]),
            ("tenant_id", world.tenants[tenant].pk),
            ("project_id", agent.project_id),
            ("agent_id", agent.pk),
            ("owner_id", owner.pk),
            ("kind", kind),
            ("status", status),
            ("title", title),
            ("title_folded", title.casefold()),
            ("model", "gpt-4o"),
            ("timeout_seconds", 1800),
            ("message_count", rng.randint(1, 60)),
            ("turns", rng.randint(0, 20)),
            ("last_seq", rng.randint(1, 200)),
            ("origin", "api"),
            ("created_at", started),
            ("updated_at", when),
            ("started_at", None if status == "queued" else started),
            ("status_changed_at", when),
            ("last_activity_at", when),
            ("ended_at", None if live else when),
            ("expires_at", when + timedelta(days=30)),
            ("version", rng.randint(2, 40)),
        ):
            if key in index:
                values[index[key]] = value
        return values

    def tenant_of() -> int:
        x = rng.random()
        return 0 if x < TENANT_SHARE[0] else 1 if x < TENANT_SHARE[0] + TENANT_SHARE[1] else 2

    def rows() -> Any:
        for _ in range(min(LIVE, size)):
            yield row(tenant_of(), now - timedelta(seconds=rng.uniform(0, 1200)), True)
        for _ in range(min(RECENT, max(0, size - LIVE))):
            yield row(tenant_of(), now - timedelta(seconds=rng.uniform(0, 86_000)), False)
        for _ in range(max(0, size - LIVE - RECENT)):
            yield row(tenant_of(), now - timedelta(days=rng.uniform(1.01, 29.9)), False)

    connection.ensure_connection()
    raw = connection.connection
    assert raw is not None
    started = time.monotonic()
    with (
        raw.cursor() as cur,
        cur.copy(f"COPY {AgentSession._meta.db_table} ({', '.join(columns)}) FROM STDIN") as copy,
    ):
        for values in rows():
            copy.write_row(values)
    print(f"  COPY {size:,} sessions: {time.monotonic() - started:.0f} s", flush=True)
    started = time.monotonic()
    # Django's connection is in autocommit mode, so the COPY is committed and VACUUM may run.
    with raw.cursor() as cur:
        cur.execute("VACUUM ANALYZE")
    print(f"  VACUUM ANALYZE: {time.monotonic() - started:.0f} s", flush=True)


def analyze() -> None:
    """Statistics for whatever the migrations just added (an expression index has none until
    ANALYZE), as a freshly loaded database gets them from its VACUUM ANALYZE."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("ANALYZE")


def personas() -> dict[str, harness.Persona]:
    """The four people of a loaded database, with fresh cookies and personal tokens."""
    from django.contrib.auth import get_user_model

    from sessions_app import services
    from sessions_app.models import Tenant, TokenKind

    tenant = Tenant.objects.get(slug="bench-0")
    out = {}
    for name in harness.PERSONAS:
        user = get_user_model().objects.get(username=f"bench-{name.replace(' ', '-')}")
        _, token = services.token_create(
            tenant=tenant, kind=TokenKind.PERSONAL, name="bench", user=user
        )
        out[name] = harness.Persona(name, user, harness.login_cookie(user), token)
    return out


# --- timing ---------------------------------------------------------------------------------------


def timed(http: httpx.Client, url: str, headers: dict[str, str], repeat: int) -> tuple[float, int]:
    """Median ms of `repeat` requests after one warm-up, and the answer's size."""
    answer = http.get(url, headers=headers)
    if answer.status_code != 200:
        raise SystemExit(f"GET {url}: {answer.status_code} {answer.text[:300]}")
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        answer = http.get(url, headers=headers)
        samples.append((time.perf_counter() - t0) * 1000)
        answer.raise_for_status()
    return statistics.median(samples), len(answer.content)


def deep_cursor(http: httpx.Client, headers: dict[str, str], depth: int) -> tuple[str, int]:
    cursor, seen = "", 0
    while seen < depth:
        params = {"limit": "200", **({"cursor": cursor} if cursor else {})}
        answer = http.get("/api/v1/sessions", params=params, headers=headers).json()
        seen += len(answer["items"])
        if not answer.get("next_cursor"):
            break
        cursor = answer["next_cursor"]
    return cursor, seen


def measure(name: str, repeat: int, depth: int) -> dict[str, dict[str, Any]]:
    people = personas()
    out: dict[str, dict[str, Any]] = {}
    with (
        harness.Daphne(harness.app_env(name)) as daphne,
        httpx.Client(base_url=daphne.url, timeout=120) as http,
    ):
        for p in people.values():
            cookie = {"Cookie": f"sessionid={p.cookie}"}
            bearer = {"Authorization": f"Bearer {p.token}"}
            cell: dict[str, Any] = {}
            cell["sessions page"], _ = timed(http, "/sessions/", cookie, repeat)
            cell["panel"], _ = timed(http, "/command-center/panel/", cookie, repeat)
            cell["API first page"], _ = timed(http, "/api/v1/sessions?limit=50", bearer, repeat)
            cursor, seen = deep_cursor(http, bearer, depth)
            cell["deep rows"] = seen
            cell["API deep page"], _ = timed(
                http,
                f"/api/v1/sessions?limit=50&cursor={cursor}"
                if cursor
                else "/api/v1/sessions?limit=50",
                bearer,
                repeat,
            )
            out[p.name] = cell
            print(
                f"  {p.name}: "
                + ", ".join(f"{k} {cell[k]:.1f} ms" for k in ENDPOINTS)
                + f" (deep at row {seen:,})",
                flush=True,
            )
        out["_tracebacks"] = {"count": daphne.tracebacks()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--deep", type=int, default=2400, help="rows to walk for the deep page")
    parser.add_argument("--reuse", action="store_true", help="keep a database already loaded")
    parser.add_argument("--quick", action="store_true", help="10k only, 3 repeats")
    parser.add_argument("--load-only", action="store_true", help="load (or keep) and stop")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.repeat = "10000", 3
    sizes = [int(s) for s in args.sizes.split(",")]
    run = harness.Run("list")
    rng = random.Random(14)
    results: dict[int, dict[str, dict[str, Any]]] = {}
    for size in sizes:
        name = harness.db_name(f"list_{size}")
        if args.reuse and loaded_rows(name) == size:
            print(f"{size:,} sessions: reusing {name}", flush=True)
            harness.migrate(name)
            harness.use_database(name)
            analyze()
        else:
            print(f"{size:,} sessions: loading {name} ...", flush=True)
            harness.create_database(name)
            harness.migrate(name)
            harness.use_database(name)
            load(size, rng)
        if not args.load_only:
            results[size] = measure(name, args.repeat, args.deep)
    if args.load_only:
        return
    small, large = min(sizes), max(sizes)
    rows = []
    for persona in harness.PERSONAS:
        for size in sizes:
            cell = results[size][persona]
            rows.append(
                [
                    persona,
                    f"{size:,}",
                    *(harness.fmt(cell[e]) for e in ENDPOINTS),
                    f"{cell['deep rows']:,}",
                ]
            )
    run.table(
        "Median ms per request through daphne (one keep-alive client, sequential)",
        ["persona", "sessions", *ENDPOINTS, "deep page at row"],
        rows,
    )
    ratio_rows = []
    for persona in harness.PERSONAS:
        a, b = results[small][persona], results[large][persona]
        ratio_rows.append(
            [
                persona,
                f"{b['sessions page'] / a['sessions page']:.2f}x",
                f"{b['panel'] / a['panel']:.2f}x",
                f"{b['API first page'] / a['API first page']:.2f}x",
                f"{b['API deep page'] / b['API first page']:.2f}x",
            ]
        )
    run.table(
        f"Ratios: {large:,} / {small:,} sessions (same persona), and deep / first API page at {large:,}",
        [
            "persona",
            f"sessions page {large:,}/{small:,}",
            f"panel {large:,}/{small:,}",
            f"API first page {large:,}/{small:,}",
            f"API deep/first at {large:,}",
        ],
        ratio_rows,
    )
    tracebacks = sum(results[s]["_tracebacks"]["count"] for s in sizes)
    run.note(f"daphne tracebacks: {tracebacks}")
    run.save(results={str(k): v for k, v in results.items()}, tracebacks=tracebacks)


if __name__ == "__main__":
    main()

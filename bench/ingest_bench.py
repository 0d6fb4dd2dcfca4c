"""Ingest throughput: events/s through the real API path vs raw psycopg executemany.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/scc .venv/bin/python bench/ingest_bench.py

For batches of 1, 10 and 100 events it posts the same realistic events (agent messages,
thinking, tool calls and results, file edits; one in ten carries a credential to redact)
to POST /api/v1/sessions/{id}/events through Django's test client: token auth, JSON parsing,
pydantic validation, redaction, the events_record() transaction with its row lock, seq
assignment, counter updates and the after-commit broadcast hook, one HTTP request per batch.

The baseline inserts the same rows (already serialised) with psycopg's executemany into a
scratch temporary table with the same columns and unique constraints, one transaction per
batch, in the same run and database, so the ratio is what the product costs over the floor.

Needs PostgreSQL. Creates a scratch workspace and deletes it afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup()

import psycopg  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from psycopg.types.json import Jsonb  # noqa: E402

from sessions_app import hooks, services  # noqa: E402
from sessions_app.models import Agent, Membership, Project, Role, Tenant, TokenKind  # noqa: E402
from tests import factories as f  # noqa: E402

BATCH_SIZES = (1, 10, 100)


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


def batches(events: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    return [events[i : i + size] for i in range(0, len(events), size)]


def bench_api(client: Client, session_id: str, events: list[dict[str, Any]], size: int) -> float:
    url = f"/api/v1/sessions/{session_id}/events"
    bodies = [json.dumps({"events": chunk}) for chunk in batches(events, size)]
    start = time.perf_counter()
    for body in bodies:
        response = client.post(url, data=body, content_type="application/json")
        if response.status_code != 200:
            raise SystemExit(f"ingest failed: {response.status_code} {response.content[:300]!r}")
    return time.perf_counter() - start


RAW_TABLE = """
create temporary table ingest_bench_scratch (
    id bigserial primary key,
    session_id uuid not null,
    seq bigint not null,
    event_id varchar(100) not null,
    type varchar(20) not null,
    actor varchar(200) not null,
    payload jsonb not null,
    redactions jsonb not null,
    created_at timestamptz not null,
    unique (session_id, seq),
    unique (session_id, event_id)
)
"""


def bench_raw(conn: psycopg.Connection[Any], events: list[dict[str, Any]], size: int) -> float:
    session_id = uuid.uuid4()
    rows = [
        (session_id, seq, e["event_id"], e["type"], "builder", Jsonb(e["payload"]), Jsonb({}))
        for seq, e in enumerate(events, start=1)
    ]
    sql = (
        "insert into ingest_bench_scratch "
        "(session_id, seq, event_id, type, actor, payload, redactions, created_at) "
        "values (%s, %s, %s, %s, %s, %s, %s, now())"
    )
    start = time.perf_counter()
    for chunk in batches(rows, size):  # type: ignore[arg-type]
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(sql, chunk)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2000, help="events per measurement")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per batch size; the best counts"
    )
    parser.add_argument(
        "--no-broadcast",
        action="store_true",
        help="unregister the live-dashboard broadcast hook (measures ingestion alone)",
    )
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        raise SystemExit("The ingest bench needs PostgreSQL: set DATABASE_URL=postgres://...")
    if args.no_broadcast:
        for listener in list(hooks._listeners["session_changed"]):
            hooks.unregister("session_changed", listener)

    rng = random.Random(1)
    slug = f"bench-{uuid.uuid4().hex[:8]}"
    tenant = Tenant.objects.create(name="Ingest bench", slug=slug)
    try:
        project = Project.objects.create(tenant=tenant, name="Bench", slug="bench")
        user = f.make_user(f"bench-{uuid.uuid4().hex[:8]}", tenant=tenant)
        Membership.objects.create(tenant=tenant, project=project, user=user, role=Role.OWNER)
        agent = Agent.objects.create(tenant=tenant, project=project, owner=user, name="builder")
        _, raw = services.token_create(
            tenant=tenant, kind=TokenKind.RUNTIME, name="bench", user=user, agents=[agent]
        )
        client = Client(headers={"Authorization": f"Bearer {raw}"})
        settings = connection.settings_dict
        conn = psycopg.connect(
            dbname=settings["NAME"],
            user=settings["USER"],
            password=settings["PASSWORD"] or None,
            host=settings["HOST"] or None,
            port=settings["PORT"] or None,
            autocommit=True,
        )
        conn.execute(RAW_TABLE)

        # Warm up both paths (imports, caches, connections, the once-a-minute token touch).
        warm = f.make_session(agent, user, status="running")
        bench_api(client, str(warm.pk), make_events(50, rng), 10)
        bench_raw(conn, make_events(50, rng), 10)

        print(
            f"ingest bench: {args.events} events per run, best of {args.repeat}, "
            f"PostgreSQL {conn.info.server_version}, broadcast {'off' if args.no_broadcast else 'on'}"
        )
        print()
        print("| batch | API events/s | raw executemany events/s | API / raw | API ms per batch |")
        print("|------:|-------------:|-------------------------:|----------:|-----------------:|")
        for size in BATCH_SIZES:
            api_best = raw_best = float("inf")
            for _ in range(args.repeat):
                events = make_events(args.events, rng)
                session = f.make_session(agent, user, status="running")
                api_best = min(api_best, bench_api(client, str(session.pk), events, size))
                raw_best = min(raw_best, bench_raw(conn, events, size))
            api_eps, raw_eps = args.events / api_best, args.events / raw_best
            per_batch_ms = 1000 * api_best / (args.events / size)
            print(
                f"| {size:>5} | {api_eps:>12,.0f} | {raw_eps:>24,.0f} | {api_eps / raw_eps:>9.2f} | "
                f"{per_batch_ms:>16.2f} |"
            )
        conn.close()
    finally:
        Tenant.objects.filter(pk=tenant.pk).delete()
        get_user_model().objects.filter(
            username__startswith="bench-", tenant_memberships=None
        ).delete()


if __name__ == "__main__":
    main()

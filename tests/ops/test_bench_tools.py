"""The measuring tools of `make bench` measure what they say: the statement-counting proxy
counts each statement once, and the report calls a target met only when the numbers meet it."""

from __future__ import annotations

import importlib
import socket
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.db import connection

BENCH = Path(__file__).resolve().parents[2] / "bench"


def bench_module(name: str) -> Any:
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return importlib.import_module(name)


def ingest(b1_p50: float, b100_ratio: float) -> dict[str, Any]:
    return {
        "results": {
            "b1_c1": {"app_p50_ms": b1_p50},
            "b100_c4": {"ratio": b100_ratio},
        }
    }


def test_report_calls_a_target_met_only_when_the_numbers_meet_it() -> None:
    report = bench_module("report")
    empty = dict.fromkeys(("list", "live_latency", "sockets", "push_poll"))
    fast = report.targets({**empty, "ingest": ingest(9.5, 0.35)})
    slow = report.targets({**empty, "ingest": ingest(32.6, 0.09)})
    assert [row[-1] for row in fast] == ["**met**", "**met**"]
    assert [row[-1] for row in slow] == ["**not met**", "**not met**"]
    assert "32.6 ms" in slow[0][2]


def test_percentile_is_nearest_rank() -> None:
    record = bench_module("record")
    values = list(range(1, 101))
    assert record.percentile(values, 50) == 50
    assert record.percentile(values, 99) == 99
    assert record.percentile([3.0], 99) == 3.0


@pytest.mark.postgres
@pytest.mark.integration
@pytest.mark.django_db
def test_proxy_counts_each_statement_once() -> None:
    pgcount = bench_module("pgcount")
    settings = connection.settings_dict
    upstream = (settings["HOST"] or "127.0.0.1", int(settings["PORT"] or 5432))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pgcount.StatementCounter(upstream, port) as counter:
        conn = psycopg.connect(
            host="127.0.0.1",
            port=port,
            dbname=settings["NAME"],
            user=settings["USER"],
            password=settings["PASSWORD"] or None,
            autocommit=True,
        )
        with conn:
            before = counter.counts()
            for n in range(3):
                assert conn.execute("SELECT %s::int", (n,)).fetchone() == (n,)
            after_selects = counter.counts()
            with conn.transaction():
                conn.execute("SELECT 1")
            after_transaction = counter.counts()
    assert (after_selects[0] - before[0], after_selects[1] - before[1]) == (3, 0)
    # BEGIN, the SELECT and COMMIT: three statements, two of them transaction control.
    assert (after_transaction[0] - after_selects[0], after_transaction[1] - after_selects[1]) == (
        3,
        2,
    )

"""Prometheus metrics the product records as it works (scraped at `/metrics`, config/metrics.py).

Counters and histograms are updated where the thing happens; with PROMETHEUS_MULTIPROC_DIR set
(as `make run` and the production layout do) every process on a host writes its samples there and
the scrape aggregates them, so N daphne processes and the Celery workers report as one. Values
that are cheaper to read from the database than to track (sessions by kind and group, the age of
the oldest undelivered command) are read at scrape time instead.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

INGEST_EVENTS = Counter(
    "scc_ingest_events_total", "Runtime events received, by outcome", ["outcome"]
)
INGEST_BATCHES = Counter(
    "scc_ingest_batches_total", "Event batches received, by outcome", ["outcome"]
)
API_LATENCY = Histogram(
    "scc_api_request_duration_seconds",
    "API request latency by route and status class",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 30.0),
)
OPEN_SOCKETS = Gauge(
    "scc_websockets_open", "Open websockets by kind", ["kind"], multiprocess_mode="livesum"
)
BROADCAST_LAG = Histogram(
    "scc_broadcast_lag_seconds",
    "From the committed change to its publish on the channel layer",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0),
)
PUSH_LAG = Histogram(
    "scc_push_lag_seconds",
    "From publish to the frame sent on a dashboard socket",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0),
)
RECONCILE_REPAIRS = Counter(
    "scc_reconcile_repairs_total",
    "Session pushes a dashboard socket missed and the reconciliation loaded and sent",
)
SWEEP_DURATION = Histogram(
    "scc_sweep_duration_seconds",
    "Duration of one sweep run",
    ["sweep"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 120.0, 600.0),
)
SWEEP_CHANGED = Counter(
    "scc_sweep_rows_changed_total", "Sessions changed by the sweeps, by rule", ["rule"]
)
RETENTION_PURGED = Counter("scc_retention_purged_total", "Sessions deleted by retention")
COMMANDS = Counter("scc_commands_total", "Runtime commands by transition", ["state"])
REDACTIONS = Counter(
    "scc_redactions_total", "Credentials redacted before storing, by rule", ["rule"]
)


def count_redactions(counts: dict[str, int]) -> None:
    for rule, n in counts.items():
        REDACTIONS.labels(rule).inc(n)

"""The sweeps Celery beat runs to enforce session policies unattended (the rules they apply
live in `policies.py`).

The Celery tasks in `tasks.py` (on the beat schedule in `config/celery.py`) call one sweep each:

- `policy_sweep`: stop grace (stopping -> stopped), max duration (stop / end), idle timeout
  (chat running -> idle -> ended) and the stall watchdog (flag flow runs and background tasks
  that stopped reporting).
  Also the start timeout: a session the server created fails when no runtime accepted its
  `start` within SCC_START_TIMEOUT_SECONDS.
- `archive_sweep`: set `archived_at` on sessions that ended `auto_archive_days` ago.
- `retention_purge`: delete unpinned sessions past `expires_at`, with their events and commands.

How a sweep finds due rows: each rule's query has two conditions on the same column.
1. A cheap bound, `column <= now - <shortest policy value over all agents>`, that the partial
   index of the rule (see AgentSession.Meta.indexes) turns into a range scan, so rows that are
   fresh for every possible policy are never read.
2. The precise test, joined with the row's agent: `column + agent.<policy> <= now`, written with
   `Seconds()` so it compiles on PostgreSQL (`make_interval`) and SQLite (Django's duration
   arithmetic). Only due rows leave the database.
We chose the join over "fetch the candidates and check them in Python" because the candidates
(rows past the shortest policy, e.g. one agent with a 5 minute idle timeout) can far outnumber
the due rows; the join keeps the transfer proportional to the due rows.
The exception is a session's own timeout, a per-row value with no useful bound: on PostgreSQL it
has its own expression index (migration 0004, see `max_duration_due`).

Each due row is then changed in its own short transaction: lock it with SKIP LOCKED, re-check it
against its agent's current policy (activity may have arrived since the query), change it through
`lifecycle.transition()` (compare-and-swap, `status_change` event, broadcast after commit). Two
sweeps at once therefore change each session exactly once, a killed worker loses at most the row
it was on (rolled back, picked up by the next run), and a row that raises is logged and skipped
without stopping the sweep for the others."""

from __future__ import annotations

from sessions_app.sweeps.common import (
    ACTOR,
    ArchiveReport,
    PurgeReport,
    RowHandler,
    Seconds,
    SweepReport,
    logger,
)
from sessions_app.sweeps.housekeeping import PURGE_EVENTS_PER_BATCH, archive_sweep, retention_purge
from sessions_app.sweeps.policy import (
    CHAT_IDLE_RULE,
    SESSION_DEADLINE_SQL,
    WATCHED_FOR_STALL,
    idle_due,
    max_duration_due,
    policy_sweep,
    stop_grace_due,
)
from sessions_app.sweeps.starts import start_timeout_due

__all__ = [
    "ACTOR",
    "CHAT_IDLE_RULE",
    "PURGE_EVENTS_PER_BATCH",
    "SESSION_DEADLINE_SQL",
    "WATCHED_FOR_STALL",
    "ArchiveReport",
    "PurgeReport",
    "RowHandler",
    "Seconds",
    "SweepReport",
    "archive_sweep",
    "idle_due",
    "logger",
    "max_duration_due",
    "policy_sweep",
    "retention_purge",
    "start_timeout_due",
    "stop_grace_due",
]

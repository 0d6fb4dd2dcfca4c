"""An index on each open session's own deadline (PostgreSQL only), for the max-duration sweep.

A session's max duration is the shorter of its agent's policy and its own timeout_seconds
(60..1800 s). The agent part is a range on session_open_started_idx; the per-row timeout is not:
without this index the sweep reads every open session older than 60 s to find the few past their
timeout. The expression is immutable (a UTC timestamp plus an interval), as an index needs;
sweeps.max_duration_due uses the same expression, which is what lets the planner match it.
SQLite, the small embedded default, does without.
"""

from __future__ import annotations

from django.db import migrations

INDEX = "session_open_deadline_idx"
# Keep identical to sweeps.SESSION_DEADLINE_SQL.
EXPRESSION = (
    "(timezone('UTC', COALESCE(started_at, created_at)) + make_interval(secs => timeout_seconds))"
)


def add(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        f"CREATE INDEX IF NOT EXISTS {INDEX} ON sessions_app_agentsession ({EXPRESSION}) WHERE live"
    )


def remove(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("sessions_app", "0003_policy_change")]
    operations = [migrations.RunPython(add, remove)]

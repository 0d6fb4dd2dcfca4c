"""`status_group` and `live` become columns the database generates from `status` (and
`checkpoint_state`, `stalled`, `kind`), so no writer can set them wrong; `stall_reason` says why
a session was flagged stalled.

A column cannot be altered into a generated one, so both are dropped and re-added; the indexes
on them (and the PostgreSQL-only deadline index of 0004, which is partial on `live`) are
dropped first and rebuilt after.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations, models
from django.db.models import F, Q

from sessions_app import states

DEADLINE_INDEX = "session_open_deadline_idx"
# Keep identical to sweeps.SESSION_DEADLINE_SQL.
DEADLINE_EXPRESSION = (
    "(timezone('UTC', COALESCE(started_at, created_at)) + make_interval(secs => timeout_seconds))"
)


def add_deadline_index(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {DEADLINE_INDEX} ON sessions_app_agentsession "
            f"({DEADLINE_EXPRESSION}) WHERE live"
        )


def drop_deadline_index(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {DEADLINE_INDEX}")


def _indexes() -> list[models.Index]:
    return [
        models.Index(
            "tenant",
            F("live").desc(),
            F("last_activity_at").desc(),
            F("id").desc(),
            name="session_list_idx",
            condition=Q(archived_at__isnull=True),
        ),
        models.Index(fields=["owner", "status_group"], name="session_owner_group_idx"),
        models.Index(
            fields=["last_activity_at"],
            name="session_open_activity_idx",
            condition=Q(live=True),
        ),
        models.Index(
            fields=["started_at"], name="session_open_started_idx", condition=Q(live=True)
        ),
    ]


class Migration(migrations.Migration):
    dependencies = [("sessions_app", "0004_session_deadline_index")]

    operations = [
        migrations.RunPython(drop_deadline_index, add_deadline_index),
        *(
            migrations.RemoveIndex(model_name="agentsession", name=index.name)
            for index in _indexes()
        ),
        migrations.RemoveField(model_name="agentsession", name="live"),
        migrations.RemoveField(model_name="agentsession", name="status_group"),
        migrations.AddField(
            model_name="agentsession",
            name="status_group",
            field=models.GeneratedField(
                db_persist=True,
                expression=states.status_group_expression(),
                output_field=models.CharField(choices=states.Group.choices, max_length=12),
            ),
        ),
        migrations.AddField(
            model_name="agentsession",
            name="live",
            field=models.GeneratedField(
                db_persist=True,
                expression=states.live_expression(),
                output_field=models.BooleanField(),
            ),
        ),
        migrations.AddField(
            model_name="agentsession",
            name="stall_reason",
            field=models.CharField(blank=True, max_length=200),
        ),
        *(migrations.AddIndex(model_name="agentsession", index=index) for index in _indexes()),
        migrations.RunPython(add_deadline_index, drop_deadline_index),
    ]

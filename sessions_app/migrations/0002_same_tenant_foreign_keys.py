"""Composite foreign keys that make a cross-tenant reference impossible on PostgreSQL.

Each child row carries its tenant_id, and (parent_id, tenant_id) must match a parent's
(id, tenant_id), so a session can never point at another workspace's agent, project,
initiative or parent session even if a service had a bug. SQLite keeps the single-column
foreign keys; the services check the same rule there.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

SAME_TENANT_FKS = [
    # (table, constraint, columns, referenced table)
    ("sessions_app_agent", "agent_project_same_tenant", "project_id", "sessions_app_project"),
    (
        "sessions_app_membership",
        "membership_project_same_tenant",
        "project_id",
        "sessions_app_project",
    ),
    (
        "sessions_app_agentsession",
        "session_project_same_tenant",
        "project_id",
        "sessions_app_project",
    ),
    ("sessions_app_agentsession", "session_agent_same_tenant", "agent_id", "sessions_app_agent"),
    (
        "sessions_app_agentsession",
        "session_initiative_same_tenant",
        "initiative_id",
        "sessions_app_initiative",
    ),
    (
        "sessions_app_agentsession",
        "session_parent_same_tenant",
        "parent_id",
        "sessions_app_agentsession",
    ),
    (
        "sessions_app_agentsession",
        "session_cloned_same_tenant",
        "cloned_from_id",
        "sessions_app_agentsession",
    ),
    (
        "sessions_app_agentsession",
        "session_transferred_same_tenant",
        "transferred_from_id",
        "sessions_app_agentsession",
    ),
    (
        "sessions_app_runtimecommand",
        "command_session_same_tenant",
        "session_id",
        "sessions_app_agentsession",
    ),
    ("sessions_app_runtimecommand", "command_agent_same_tenant", "agent_id", "sessions_app_agent"),
]


def add(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for table, name, column, ref in SAME_TENANT_FKS:
        schema_editor.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT {name} FOREIGN KEY ({column}, tenant_id) "
            f"REFERENCES {ref} (id, tenant_id) DEFERRABLE INITIALLY DEFERRED"
        )


def remove(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for table, name, _column, _ref in SAME_TENANT_FKS:
        schema_editor.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("sessions_app", "0001_initial")]
    operations = [migrations.RunPython(add, remove)]

"""Index-shaped reads of "sessions a viewer may see", whatever the size of the table.

Visibility (DESIGN 7) is an OR of grants: own sessions, sessions of agents one owns, a tenant
one administers, the runs of projects one works on. No single index serves that OR, so at a
million sessions PostgreSQL read and sorted every candidate row for a page of 50. Here each grant
is one *audience branch*, an equality on one indexed column (`owner`, `agent`, `tenant`,
`project`), and a page is the union of per-branch keyset scans, each stopping after `limit` rows
of its index (`session_list_idx`, `session_owner_list_idx`, `session_agent_list_idx`,
`session_project_list_idx`). The cost follows the page size and the number of grants, not the
table.

The keyset cursor compares the row value `(live, last_activity_at, id)`, which an index on
those columns in that order uses as its range condition.

SQLite (the embedded default) cannot limit the branches of a compound query; there the
branches are OR-ed into one query, which is the same set of rows.
"""

from __future__ import annotations

import operator
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import reduce
from typing import Any

from django.db import connection
from django.db.models import (
    BooleanField,
    DateTimeField,
    F,
    Field,
    Func,
    Q,
    QuerySet,
    UUIDField,
    Value,
)
from django.db.models.lookups import LessThan

from sessions_app.models import Agent, AgentSession, Project, Tenant
from sessions_app.selectors.access import Access
from sessions_app.states import Kind

# A count shown as "999+" beyond this: counting is bounded like every other read.
COUNT_CAP = 1000

# The list order, and the row value of a keyset cursor in it.
LIST_ORDER = ("-live", "-last_activity_at", "-id")
RECENT_ORDER = ("-last_activity_at", "-id")


class _Row(Func):
    """`(a, b, c)`: a row value, compared column by column (PostgreSQL and SQLite alike)."""

    template = "(%(expressions)s)"
    output_field = Field()


def before_row(live: bool, last_activity_at: datetime, pk: uuid.UUID) -> LessThan[Any]:
    """Rows after a cursor in LIST_ORDER: `(live, last_activity_at, id) < (cursor)`."""
    return LessThan(
        _Row(F("live"), F("last_activity_at"), F("id")),
        _Row(
            Value(live, output_field=BooleanField()),
            Value(last_activity_at, output_field=DateTimeField()),
            Value(pk, output_field=UUIDField()),
        ),
    )


def audience(
    access: Access, project_ids: frozenset[int], *, tenant_id: int | None = None
) -> list[Q]:
    """The grants of `access` as branches, each served by one index. A session is visible
    when it matches any branch: the same rule as `access.visibility_q` (agreement tested).
    `tenant_id` keeps only what lies in that workspace (a personal token's).

    A branch carries no condition another index could answer instead: agents and projects
    lie in one workspace (same-tenant keys, migration 0002), so their branches name only
    themselves; the planner otherwise took the workspace's index for a narrow grant and read
    the whole workspace past a deep cursor."""
    if access.superuser:
        every = Tenant.objects.order_by("pk").values_list("pk", flat=True)
        return [Q(tenant_id=t) for t in every if tenant_id in (None, t)]
    tenants = sorted(t for t in access.tenant_ids if tenant_id in (None, t))
    if access.user_id is None or not tenants:
        return []
    # One per workspace: owning a session grants nothing in a workspace one has left.
    branches = [Q(tenant_id=t, owner_id=access.user_id) for t in tenants]
    owned_agents = Agent.objects.filter(owner_id=access.user_id, tenant_id__in=tenants)
    branches += [Q(agent_id=a) for a in owned_agents.order_by("pk").values_list("pk", flat=True)]
    branches += [Q(tenant_id=t) for t in sorted(access.admin_tenant_ids) if t in tenants]
    # Chats are private to their owner, the agent owner and tenant admins; the project index
    # holds no chats, so the condition is written as the index's own.
    projects = Project.objects.filter(pk__in=sorted(project_ids), tenant_id__in=tenants)
    branches += [
        Q(project_id=p) & ~Q(kind=Kind.CHAT)
        for p in projects.order_by("pk").values_list("pk", flat=True)
    ]
    return branches


def _union_ok(branches: Sequence[Q]) -> bool:
    return len(branches) > 1 and bool(connection.features.supports_slicing_ordering_in_compound)


def _either(branches: Sequence[Q]) -> Q:
    return reduce(operator.or_, branches)


def pick(
    rows: QuerySet[AgentSession],
    branches: Sequence[Q],
    *,
    order: Sequence[str],
    limit: int,
    parts: Sequence[Q] = (Q(),),
) -> list[uuid.UUID]:
    """The ids of the first `limit` rows of `rows` in `order` among the audience.

    `parts` splits each branch further where one index range cannot give the order itself
    (Recent orders by recency across live and ended rows: one range each)."""
    picked = pick_values(rows, branches, order=order, limit=limit, parts=parts, fields=("id",))
    return [row[0] for row in picked]


def pick_values(
    rows: QuerySet[AgentSession],
    branches: Sequence[Q],
    *,
    order: Sequence[str],
    limit: int,
    fields: Sequence[str],
    parts: Sequence[Q] = (Q(),),
) -> list[tuple[Any, ...]]:
    """`pick`, giving `fields` of each row picked (in order) instead of its id: read in the same
    index range scans, where a second query by id would fetch each row again."""
    if not branches:
        return []
    keys = [name.lstrip("-") for name in order]
    if not _union_ok([*branches, *parts[1:]]):
        picked = rows.filter(_either(branches)).filter(_either(parts)).order_by(*order)[:limit]
        return list(picked.values_list(*fields))
    selected = [*keys, *(f for f in fields if f not in keys)]
    scans = [
        rows.filter(branch, part).order_by(*order).values_list(*selected)[:limit]
        for branch in branches
        for part in parts
    ]
    first, *rest = scans
    union = first.union(*rest).order_by(*order)[:limit]
    at = [selected.index(f) for f in fields]
    return [tuple(row[i] for i in at) for row in union]


def _capped_ids(rows: QuerySet[AgentSession], branches: Sequence[Q], cap: int) -> QuerySet[Any]:
    """The ids of at most `cap` rows per branch of the audience (their union has the rows a
    count up to `cap` needs)."""
    if not _union_ok(branches):
        return rows.filter(_either(branches)).values_list("id")[:cap]
    scans = [rows.filter(branch).values_list("id")[:cap] for branch in branches]
    first, *rest = scans
    return first.union(*rest)


def capped_count(
    rows: QuerySet[AgentSession], branches: Sequence[Q], *, cap: int | None = None
) -> int:
    """How many rows of `rows` the audience sees, counted up to `cap` (COUNT_CAP by default;
    each branch reads at most that many index entries)."""
    return capped_counts({"n": (rows, branches)}, cap=cap)["n"]


def capped_counts(
    counts: Mapping[str, tuple[QuerySet[AgentSession], Sequence[Q]]], *, cap: int | None = None
) -> dict[str, int]:
    """Several `capped_count`s in one statement: the panel's three counts are re-read for
    every dashboard whose sections a push changed, and each statement is a round trip."""
    cap = COUNT_CAP if cap is None else cap
    columns: list[str] = []
    params: list[Any] = []
    for n, (rows, branches) in enumerate(counts.values()):
        if not branches:
            columns.append("0")
            continue
        sql, ids_params = _capped_ids(rows, branches, cap).query.sql_with_params()
        # The ORM's own SQL for the ids, with its parameters passed on: nothing is quoted here.
        columns.append(f"(SELECT COUNT(*) FROM ({sql}) AS capped_{n})")  # noqa: S608
        params.extend(ids_params)
    if not any(column != "0" for column in columns):
        return dict.fromkeys(counts, 0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(columns), params)
        row = cursor.fetchone()
    return {name: min(int(value), cap) for name, value in zip(counts, row, strict=True)}


def in_order(ids: Sequence[uuid.UUID], rows: QuerySet[AgentSession], order: Sequence[str]) -> Any:
    """The full rows for `ids`, in `order` (one query by primary key)."""
    if not ids:
        return []
    return list(rows.filter(pk__in=list(ids)).order_by(*order))

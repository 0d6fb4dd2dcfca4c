"""The statements of the ingest hot path, written out once from the models' metadata.

A runtime's batch costs four statements (lock, stored ids, insert, update). Through the ORM,
building and compiling them, and turning rows into instances, cost more CPU than the database
spends running them (about 4 of 7 ms for a one-event batch, measured in process). Here the
statements are assembled from the models' `_meta` (column lists, converters and the session
read's text worked out once per process; a migration that adds a column needs no change
here), values go through each field's own `get_db_prep_save`, and rows come back through
each field's own converters, so the instances are what the ORM would have built, on
PostgreSQL and SQLite alike. Statements still run on Django's cursor: query capture, execute wrappers and
the connection pool see them as any other.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, cast

from django.db import connection
from django.db.models import Field, Model

from sessions_app.models import AgentSession, SessionEvent

Converter = Callable[[Any, Any, Any], Any]


@dataclass(frozen=True)
class _Columns:
    """One model's stored columns in model order: the select list for a table alias and what
    turns each value into the attribute the ORM would set."""

    model: type[Model]
    fields: tuple[Field[Any, Any], ...]

    def select(self, alias: str) -> str:
        quote = connection.ops.quote_name
        return ", ".join(f"{alias}.{quote(f.column)}" for f in self.fields)

    def build(self, values: Sequence[Any]) -> Model:
        converted = []
        for value, (col, convs) in zip(values, _converters_for(self.model), strict=True):
            for convert in convs:
                value = convert(value, col, connection)
            converted.append(value)
        return self.model.from_db(connection.alias, [f.attname for f in self.fields], converted)


@cache
def _columns(model: type[Model]) -> _Columns:
    return _Columns(model, tuple(model._meta.concrete_fields))


# Converters are bound to a connection's operations object; they read only settings, so one
# list per database alias serves every thread (compiled on first use, as the ORM would).
_converters: dict[tuple[str, type[Model]], list[tuple[Any, list[Converter]]]] = {}
_converters_lock = threading.Lock()


def _converters_for(model: type[Model]) -> list[tuple[Any, list[Converter]]]:
    """Per stored column of `model`: its column expression and the converters the ORM would
    apply to a value read from it."""
    key = (connection.alias, model)
    found = _converters.get(key)
    if found is None:
        found = [_column_converters(model, field) for field in _columns(model).fields]
        with _converters_lock:
            _converters[key] = found
    return found


def _column_converters(model: type[Model], field: Field[Any, Any]) -> tuple[Any, list[Converter]]:
    col = field.get_col(model._meta.db_table)
    return col, [*connection.ops.get_db_converters(col), *col.get_db_converters(connection)]


def _field(model: type[Model], name: str) -> Field[Any, Any]:
    return cast(Field[Any, Any], model._meta.get_field(name))


def _session_pk(session_id: Any) -> Any:
    return _field(AgentSession, "id").get_db_prep_value(session_id, connection)


def _placeholders(n: int) -> str:
    return ", ".join(["%s"] * n)


# Statement texts by database vendor and relations: built once per process, read per request.
_sessions_sql_texts: dict[tuple[str, tuple[str, ...]], str] = {}


def _sessions_sql(related: Sequence[str]) -> str:
    """SELECT sessions (alias `s`) joined to their `related` objects (aliases r0, r1, ...; a
    LEFT JOIN where the relation is optional), up to the WHERE."""
    key = (connection.vendor, tuple(related))
    found = _sessions_sql_texts.get(key)
    if found is None:
        found = _sessions_sql_texts[key] = _build_sessions_sql(related)
    return found


def _build_sessions_sql(related: Sequence[str]) -> str:
    quote = connection.ops.quote_name
    select = [_columns(AgentSession).select("s")]
    joins = []
    for n, name in enumerate(related):
        field = _field(AgentSession, name)
        model = cast(type[Model], field.related_model)
        select.append(_columns(model).select(f"r{n}"))
        join = "LEFT JOIN" if field.null else "JOIN"
        joins.append(
            f"{join} {quote(model._meta.db_table)} r{n} "
            f"ON r{n}.{quote(model._meta.pk.column)} = s.{quote(field.column)}"
        )
    return (
        f"SELECT {', '.join(select)} FROM {quote(AgentSession._meta.db_table)} s "
        f"{' '.join(joins)} WHERE "
    )


def _build_session(row: Sequence[Any], related: Sequence[str]) -> AgentSession:
    """A session and its related objects from one row of `_sessions_sql(related)`, each
    cached on the session as select_related() would (None for a missing optional one)."""
    parts = [_columns(AgentSession)]
    parts += [_columns(cast(type[Model], _field(AgentSession, n).related_model)) for n in related]
    built: list[Model | None] = []
    start = 0
    for part in parts:
        end = start + len(part.fields)
        values = row[start:end]
        # A LEFT JOIN that found nothing: every column is NULL, the primary key included.
        built.append(None if values[0] is None else part.build(values))
        start = end
    session = cast(AgentSession, built[0])
    for name, obj in zip(related, built[1:], strict=True):
        _field(AgentSession, name).set_cached_value(session, obj)  # type: ignore[attr-defined]
    return session


INGEST_RELATED = ("agent", "owner")


def lock_session(
    session_id: Any, *, tenant_id: int | None = None, agent_ids: Collection[int] | None = None
) -> AgentSession | None:
    """The session `session_id` with its agent and owner, its row locked for the transaction
    (FOR NO KEY UPDATE where the database has it: the lock serialises writers of one session
    without blocking inserts that reference it). With `tenant_id` and `agent_ids`, only a
    session of those agents in that workspace (a runtime token's reach); None otherwise."""
    quote = connection.ops.quote_name
    sql = _sessions_sql(INGEST_RELATED) + f"s.{quote('id')} = %s"
    params: list[Any] = [_session_pk(session_id)]
    if tenant_id is not None:
        sql += f" AND s.{quote('tenant_id')} = %s"
        params.append(tenant_id)
    if agent_ids is not None:
        if not agent_ids:
            return None
        ids = sorted(agent_ids)
        sql += f" AND s.{quote('agent_id')} IN ({_placeholders(len(ids))})"
        params.extend(ids)
    features = connection.features
    if features.has_select_for_update:
        sql += " FOR NO KEY UPDATE" if features.has_select_for_no_key_update else " FOR UPDATE"
        if features.has_select_for_update_of:
            sql += " OF s"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return None if row is None else _build_session(row, INGEST_RELATED)


def sessions_by_id(session_ids: Collection[Any], related: Sequence[str]) -> list[AgentSession]:
    """The sessions among `session_ids` with their `related` objects, in no particular order:
    what a broadcast renders, read as often as sessions change."""
    if not session_ids:
        return []
    quote = connection.ops.quote_name
    ids = [_session_pk(pk) for pk in session_ids]
    sql = _sessions_sql(related) + f"s.{quote('id')} IN ({_placeholders(len(ids))})"
    with connection.cursor() as cursor:
        cursor.execute(sql, ids)
        return [_build_session(row, related) for row in cursor.fetchall()]


def stored_events(session_id: Any, event_ids: Sequence[str]) -> dict[str, tuple[int, str, Any]]:
    """Of `event_ids`, those the session has stored: event_id -> (seq, type, payload)."""
    if not event_ids:
        return {}
    meta = SessionEvent._meta
    quote = connection.ops.quote_name
    fields = [_field(SessionEvent, name) for name in ("event_id", "seq", "type", "payload")]
    table = meta.db_table
    sql = (
        f"SELECT {', '.join(quote(f.column) for f in fields)} FROM {quote(table)} "
        f"WHERE {quote('session_id')} = %s AND {quote('event_id')} "
    )
    params: list[Any] = [_session_pk(session_id)]
    if connection.vendor == "postgresql":
        # One array parameter: the statement's text stays the same for every batch size.
        sql += "= ANY(%s)"
        params.append(list(event_ids))
    else:
        sql += f"IN ({_placeholders(len(event_ids))})"
        params.extend(event_ids)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    col, convs = _column_converters(SessionEvent, fields[3])
    found: dict[str, tuple[int, str, Any]] = {}
    for event_id, seq, type_, payload in rows:
        for convert in convs:
            payload = convert(payload, col, connection)
        found[event_id] = (seq, type_, payload)
    return found


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event row to insert: what `LockedWrite.append` gathers (a model instance per event
    cost more than writing it)."""

    seq: int
    event_id: str
    type: str
    actor: str
    payload: Any
    redactions: dict[str, int]


# The columns insert_events writes, in the order of its values; every stored column but the
# primary key (tests/sessions_app/test_rows.py holds this to the model).
EVENT_COLUMNS = (
    "session",
    "seq",
    "event_id",
    "type",
    "actor",
    "payload",
    "redactions",
    "created_at",
)


def insert_events(session_id: Any, events: Sequence[NewEvent], *, now: datetime) -> None:
    """Insert a session's new events, all stamped `now`: one COPY on PostgreSQL (about a third
    of a multi-row INSERT's time for a batch of 100, measured), one multi-row INSERT per chunk
    the parameter limit allows elsewhere."""
    if not events:
        return
    fields = [_field(SessionEvent, name) for name in EVENT_COLUMNS]
    payload, redactions = fields[5], fields[6]
    session = _session_pk(session_id)
    created = fields[7].get_db_prep_save(now, connection)
    rows = [
        (
            session,
            e.seq,
            e.event_id,
            e.type,
            e.actor,
            payload.get_db_prep_save(e.payload, connection),
            redactions.get_db_prep_save(e.redactions, connection),
            created,
        )
        for e in events
    ]
    quote = connection.ops.quote_name
    table = quote(SessionEvent._meta.db_table)
    columns = ", ".join(quote(f.column) for f in fields)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Django's cursor logs a COPY as one statement where queries are logged, but
            # passes psycopg's errors through unwrapped: wrap them as execute() does, so a
            # database gone mid-COPY is Django's OperationalError (a 503 at the edge).
            with (
                connection.wrap_database_errors,
                cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
            return
        row_sql = f"({_placeholders(len(fields))})"
        size = max(1, connection.ops.bulk_batch_size(fields, rows))
        for start in range(0, len(rows), size):
            chunk = rows[start : start + size]
            cursor.execute(
                f"INSERT INTO {table} ({columns}) VALUES {', '.join([row_sql] * len(chunk))}",
                [value for row in chunk for value in row],
            )


def update_session(
    session_id: Any, values: Mapping[str, Any], increments: Mapping[str, Any]
) -> None:
    """UPDATE one session: `values` set as given, `increments` added to the stored values."""
    meta = AgentSession._meta
    quote = connection.ops.quote_name
    sets: list[str] = []
    params: list[Any] = []
    for name, value in values.items():
        field = _field(AgentSession, name)
        sets.append(f"{quote(field.column)} = %s")
        params.append(field.get_db_prep_save(value, connection))
    for name, delta in increments.items():
        field = _field(AgentSession, name)
        column = quote(field.column)
        sets.append(f"{column} = {column} + %s")
        params.append(field.get_db_prep_save(delta, connection))
    params.append(_session_pk(session_id))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(meta.db_table)} SET {', '.join(sets)} WHERE {quote('id')} = %s",
            params,
        )

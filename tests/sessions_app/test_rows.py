"""The hand-written ingest statements build what the ORM builds and write what they say."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from sessions_app import lifecycle, rows
from sessions_app.models import AgentSession, SessionEvent
from sessions_app.states import Kind, Status
from tests import factories as f

pytestmark = pytest.mark.django_db


def _stored(instance: Any) -> dict[str, Any]:
    return {
        field.attname: getattr(instance, field.attname) for field in instance._meta.concrete_fields
    }


def test_the_locked_session_is_the_row_the_orm_reads_with_its_agent_and_owner(world: Any) -> None:
    session = f.make_session(world.agent, world.owner, kind=Kind.FLOW_RUN, title="Ünïcode ✓")
    f.walk_to(session, Status.RUNNING)
    AgentSession.objects.filter(pk=session.pk).update(
        redaction_counts={"github-pat": 2}, cost=Decimal("1.250000"), tokens_in=7
    )
    expected = AgentSession.objects.select_related("agent", "owner").get(pk=session.pk)
    with transaction.atomic():
        locked = rows.lock_session(session.pk)
    assert locked is not None
    assert _stored(locked) == _stored(expected)
    assert locked.redaction_counts == {"github-pat": 2}
    assert _stored(locked.agent) == _stored(expected.agent)
    assert _stored(locked.owner) == _stored(expected.owner)
    with CaptureQueriesContext(connection) as queries:
        assert locked.agent.name == "builder"
        assert locked.owner.get_username() == "owner"
    assert len(queries) == 0  # both came with the row


def test_the_lock_is_scoped_to_a_tokens_workspace_and_agents(world: Any) -> None:
    session = f.make_session(world.agent, world.owner)
    found = rows.lock_session(session.pk, tenant_id=world.tenant.pk, agent_ids={world.agent.pk})
    assert found is not None
    assert found.pk == session.pk
    assert (
        rows.lock_session(session.pk, tenant_id=world.other_tenant.pk, agent_ids={world.agent.pk})
        is None
    )
    assert (
        rows.lock_session(session.pk, tenant_id=world.tenant.pk, agent_ids={world.other_agent.pk})
        is None
    )
    assert rows.lock_session(session.pk, tenant_id=world.tenant.pk, agent_ids=set()) is None


@pytest.mark.postgres
def test_the_lock_is_a_row_lock_on_postgresql(world: Any) -> None:
    session = f.make_session(world.agent, world.owner)
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        rows.lock_session(session.pk)
    assert queries[-2]["sql"].endswith("FOR NO KEY UPDATE OF s")


def test_stored_events_read_back_their_payloads(world: Any) -> None:
    session = f.make_session(world.agent, world.owner)
    first = session.last_seq + 1
    write = lifecycle.LockedWrite(session)
    write.append(event_type="message", actor="a", payload={"text": "é", "n": [1]}, event_id="e1")
    write.append(event_type="thinking", actor="a", payload={"text": "x"}, event_id="e2")
    with transaction.atomic():
        write.save()
    found = rows.stored_events(session.pk, ["e1", "e2", "missing"])
    assert found == {
        "e1": (first, "message", {"text": "é", "n": [1]}),
        "e2": (first + 1, "thinking", {"text": "x"}),
    }
    assert rows.stored_events(session.pk, []) == {}


def test_a_locked_write_inserts_its_events_and_adds_increments(world: Any) -> None:
    session = f.make_session(world.agent, world.owner)
    before = AgentSession.objects.get(pk=session.pk)
    first = before.last_seq + 1
    with transaction.atomic():
        locked = rows.lock_session(session.pk)
        assert locked is not None
        write = lifecycle.LockedWrite(locked)
        for n in range(3):
            write.append(event_type="message", actor="a", payload={"n": n}, event_id=f"m{n}")
        write.put("message_count", 3)
        write.increments.update(tokens_in=5, cost=Decimal("0.5"))
        assert write.save()
    stored = AgentSession.objects.get(pk=session.pk)
    assert stored.version == before.version + 1 == locked.version
    assert (stored.tokens_in, stored.tokens_total, stored.cost) == (5, 5, Decimal("0.5"))
    assert (locked.tokens_in, locked.tokens_total, locked.cost) == (5, 5, Decimal("0.5"))
    assert stored.message_count == locked.message_count == 3
    assert stored.updated_at == locked.updated_at
    assert list(
        SessionEvent.objects.filter(session=session, type="message")
        .order_by("seq")
        .values_list("seq", "payload")
    ) == [(first, {"n": 0}), (first + 1, {"n": 1}), (first + 2, {"n": 2})]
    assert stored.last_seq == locked.last_seq == first + 2
    assert not lifecycle.LockedWrite(locked).save()  # nothing gathered: nothing written


def test_a_batch_is_one_copy_on_postgresql_and_chunked_inserts_elsewhere(
    world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = f.make_session(world.agent, world.owner)
    # A parameter limit of 4 rows per INSERT where INSERTs are used.
    monkeypatch.setattr(connection.ops, "bulk_batch_size", lambda fields, objs: 4)
    write = lifecycle.LockedWrite(session)
    for n in range(10):
        write.append(event_type="message", actor="a", payload={"n": n})
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        write.save()
    writes = [q["sql"] for q in queries if q["sql"].startswith(("INSERT", "COPY"))]
    if connection.vendor == "postgresql":
        assert len(writes) == 1
        assert writes[0].startswith('COPY "sessions_app_sessionevent"')
    else:
        assert len(writes) == 3
    payloads = SessionEvent.objects.filter(session=session, type="message").order_by("seq")
    assert [e.payload for e in payloads] == [{"n": n} for n in range(10)]


def test_the_event_insert_writes_every_stored_column() -> None:
    stored = {f.name for f in SessionEvent._meta.concrete_fields if not f.primary_key}
    assert set(rows.EVENT_COLUMNS) == stored


def test_sessions_by_id_bring_their_relations_and_a_missing_optional_one_is_none(
    world: Any,
) -> None:
    initiative = f.make_initiative(world.tenant, "Launch")
    with_one = f.make_session(world.agent, world.owner, initiative=initiative)
    without = f.make_session(world.agent, world.owner)
    f.make_session(world.agent, world.owner)  # not asked for
    related = ("agent", "owner", "project", "initiative")
    found = {s.pk: s for s in rows.sessions_by_id([with_one.pk, without.pk], related)}
    assert set(found) == {with_one.pk, without.pk}
    expected = AgentSession.objects.select_related(*related).get(pk=with_one.pk)
    assert _stored(found[with_one.pk]) == _stored(expected)
    with CaptureQueriesContext(connection) as queries:
        linked = found[with_one.pk].initiative
        assert linked == initiative
        assert linked is not None
        assert linked.name == "Launch"
        assert found[without.pk].initiative is None
        assert found[without.pk].project.name == "Payments"
    assert len(queries) == 0
    assert rows.sessions_by_id([], related) == []

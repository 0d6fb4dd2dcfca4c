from __future__ import annotations

import itertools
import json

import pytest

from sessions_app import lifecycle, states
from sessions_app.errors import IllegalTransition
from sessions_app.models import AgentSession, SessionEvent
from sessions_app.states import Kind, Status
from tests import factories as f

EXPECTED_ALLOWED = {
    # The table of DESIGN.md section 5, written out independently of states.TRANSITIONS.
    "flow_run": {
        ("pending", "running"),
        ("pending", "paused"),
        ("pending", "stopping"),
        ("pending", "failed"),
        ("pending", "cancelled"),
        ("running", "waiting_input"),
        ("running", "paused"),
        ("running", "stopping"),
        ("running", "completed"),
        ("running", "failed"),
        ("running", "cancelled"),
        ("waiting_input", "running"),
        ("waiting_input", "paused"),
        ("waiting_input", "stopping"),
        ("waiting_input", "failed"),
        ("waiting_input", "cancelled"),
        ("paused", "running"),
        ("paused", "stopping"),
        ("paused", "failed"),
        ("paused", "cancelled"),
        ("stopping", "stopped"),
        ("stopping", "completed"),
        ("stopping", "failed"),
        ("stopping", "cancelled"),
        ("stopped", "running"),
        ("stopped", "cancelled"),
    },
    "background_task": {
        ("queued", "provisioning"),
        ("queued", "running"),
        ("queued", "paused"),
        ("queued", "stopping"),
        ("queued", "failed"),
        ("queued", "cancelled"),
        ("provisioning", "running"),
        ("provisioning", "stopping"),
        ("provisioning", "failed"),
        ("provisioning", "cancelled"),
        ("running", "waiting_input"),
        ("running", "paused"),
        ("running", "stopping"),
        ("running", "completed"),
        ("running", "failed"),
        ("running", "cancelled"),
        ("waiting_input", "running"),
        ("waiting_input", "paused"),
        ("waiting_input", "stopping"),
        ("waiting_input", "failed"),
        ("waiting_input", "cancelled"),
        ("paused", "running"),
        ("paused", "stopping"),
        ("paused", "failed"),
        ("paused", "cancelled"),
        ("stopping", "stopped"),
        ("stopping", "completed"),
        ("stopping", "failed"),
        ("stopping", "cancelled"),
        ("stopped", "running"),
        ("stopped", "cancelled"),
    },
    "chat": {
        ("running", "idle"),
        ("running", "paused"),
        ("running", "ended"),
        ("running", "failed"),
        ("idle", "running"),
        ("idle", "paused"),
        ("idle", "ended"),
        ("idle", "failed"),
        ("paused", "running"),
        ("paused", "ended"),
        ("paused", "failed"),
    },
}

ALL_PAIRS = [
    (kind, a, b)
    for kind, statuses in states.STATUSES.items()
    for a, b in itertools.product(sorted(statuses), repeat=2)
    if a != b
]


@pytest.mark.parametrize(("kind", "from_status", "to_status"), ALL_PAIRS)
def test_transition_table_matches_design(kind: str, from_status: str, to_status: str) -> None:
    expected = (from_status, to_status) in EXPECTED_ALLOWED[kind]
    assert states.is_allowed(kind, from_status, to_status) is expected


def _at(world, kind: str, status: str) -> AgentSession:
    session = f.make_session(world.agent, world.owner, kind)
    # Put the row straight into the status under test: the pair, not the route, is tested.
    AgentSession.objects.filter(pk=session.pk).update(status=status)
    session.refresh_from_db()
    return session


@pytest.mark.django_db
@pytest.mark.parametrize(("kind", "from_status", "to_status"), ALL_PAIRS)
def test_transition_applies_exactly_the_allowed_pairs(world, kind, from_status, to_status) -> None:
    session = _at(world, kind, from_status)
    before = SessionEvent.objects.filter(session=session, type="status_change").count()
    if (from_status, to_status) in EXPECTED_ALLOWED[kind]:
        result = lifecycle.transition(session, to_status, actor="t")
        assert result.changed
        session.refresh_from_db()
        assert session.status == to_status
        assert session.status_group == states.status_group(status=to_status)
        assert session.live == (to_status in states.LIVE[kind])
        after = SessionEvent.objects.filter(session=session, type="status_change")
        assert after.count() == before + 1
        assert after.order_by("-seq").first().payload == {"from": from_status, "to": to_status}  # type: ignore[union-attr]
    else:
        with pytest.raises(IllegalTransition) as exc:
            lifecycle.transition(session, to_status, actor="t")
        assert from_status in str(exc.value)
        assert to_status in str(exc.value)
        assert Kind(kind).label.lower() in str(exc.value)
        session.refresh_from_db()
        assert session.status == from_status
        assert SessionEvent.objects.filter(session=session, type="status_change").count() == before


@pytest.mark.django_db
def test_transition_to_current_status_is_a_noop(world) -> None:
    session = f.make_session(world.agent, world.owner, Kind.CHAT, status="ended")
    version = session.version
    events = session.events.count()
    result = lifecycle.transition(session, Status.ENDED, actor="t")
    assert result.changed is False
    session.refresh_from_db()
    assert session.version == version
    assert session.events.count() == events


@pytest.mark.django_db
def test_status_outside_the_kind_is_refused(world) -> None:
    session = f.make_session(world.agent, world.owner, Kind.CHAT)
    with pytest.raises(IllegalTransition, match="chat cannot go from running to completed"):
        lifecycle.transition(session, Status.COMPLETED, actor="t")


@pytest.mark.django_db(transaction=True)
def test_transition_bumps_version_sets_timestamps_and_broadcasts_after_commit(
    world, broadcasts
) -> None:
    session = f.make_session(world.agent, world.owner, Kind.FLOW_RUN)
    broadcasts.clear()
    v = session.version
    lifecycle.transition(session, Status.RUNNING, actor="t")
    assert session.version == v + 1
    assert session.started_at is not None
    lifecycle.transition(session, Status.COMPLETED, actor="t")
    assert session.ended_at is not None
    assert broadcasts == [session.pk, session.pk]
    # Event payloads must survive a JSON round trip (they are broadcast and exported).
    for e in session.events.all():
        assert json.loads(json.dumps(e.payload)) == e.payload


@pytest.mark.django_db(transaction=True)
def test_no_broadcast_when_the_transaction_rolls_back(world, broadcasts) -> None:
    from django.db import transaction

    session = f.make_session(world.agent, world.owner, Kind.FLOW_RUN)
    broadcasts.clear()

    def change_then_fail() -> None:
        with transaction.atomic():
            lifecycle.transition(session, Status.RUNNING, actor="t")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        change_then_fail()
    assert broadcasts == []
    session.refresh_from_db()
    assert session.status == Status.PENDING


@pytest.mark.parametrize(
    ("status", "checkpoint", "stalled", "group"),
    [
        ("running", "", False, "active"),
        ("stopping", "", False, "active"),
        ("waiting_input", "awaiting", False, "attention"),
        ("idle", "", False, "attention"),
        ("completed", "", False, "success"),
        ("ended", "", False, "success"),
        ("failed", "", False, "problem"),
        ("waiting_input", "rejected", False, "problem"),
        ("stopped", "", False, "stopped"),
        ("cancelled", "", False, "stopped"),
        ("running", "", True, "attention"),
        ("completed", "rejected", False, "success"),
    ],
)
def test_status_group(status, checkpoint, stalled, group) -> None:
    assert states.status_group(status=status, checkpoint_state=checkpoint, stalled=stalled) == group


@pytest.mark.parametrize(
    ("kind", "fields", "text"),
    [
        ("flow_run", {"current_step": 2, "total_steps": 5}, "Step 2 of 5"),
        ("flow_run", {"current_step": 0, "total_steps": 0}, "Not started"),
        ("background_task", {"turns": 12}, "12 turns"),
        ("background_task", {"turns": 1}, "1 turn"),
        ("chat", {"message_count": 8}, "8 messages"),
    ],
)
def test_progress_text(kind, fields, text) -> None:
    s = AgentSession(kind=kind, **fields)
    assert states.progress_text(s) == text


def test_progress_percent_only_for_flows() -> None:
    assert (
        states.progress_percent(AgentSession(kind="flow_run", current_step=2, total_steps=5)) == 40
    )
    assert states.progress_percent(AgentSession(kind="chat", message_count=3)) is None

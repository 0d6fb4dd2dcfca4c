"""Session policies enforced by the sweeps (issue 5), with the clock under control.

Each rule: on time, one second early, and after a reset by activity. Chat tests use an agent with
a 10 minute idle timeout and sessions with the longest timeout (30 min), so the idle rules are
reached before max duration.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection

from sessions_app import errors, hooks, lifecycle, selectors, services, states, sweeps
from sessions_app.models import (
    Agent,
    AgentSession,
    CommandKind,
    RuntimeCommand,
    SessionEvent,
    StopReason,
)
from sessions_app.states import Group, Kind, Status
from tests import factories as f

pytestmark = pytest.mark.django_db

T0 = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)
IDLE = 600  # the test agent's idle timeout: 10 min
LONGEST = 1800  # the longest session timeout, so max duration stays out of the way


@pytest.fixture
def clock(time_machine: Any) -> Any:
    time_machine.move_to(T0, tick=False)
    return time_machine


def at(clock: Any, **delta: float) -> None:
    clock.move_to(T0 + timedelta(**delta), tick=False)


@pytest.fixture
def agent(world: Any) -> Agent:
    return f.make_agent(world.project, world.agent_owner, name="chatty", idle_timeout_seconds=IDLE)


def chat(agent: Agent, owner: Any, **kw: Any) -> AgentSession:
    kw.setdefault("timeout_seconds", LONGEST)
    return f.make_session(agent, owner, Kind.CHAT, **kw)


def flow(agent: Agent, owner: Any, status: str = Status.RUNNING, **kw: Any) -> AgentSession:
    kw.setdefault("timeout_seconds", LONGEST)
    return f.make_session(agent, owner, Kind.FLOW_RUN, status=status, **kw)


def fresh(session: AgentSession) -> AgentSession:
    session.refresh_from_db()
    return session


def status_changes(session: AgentSession) -> list[dict[str, Any]]:
    return [e.payload for e in session.events.filter(type="status_change").order_by("seq").all()]


def commands(session: AgentSession) -> list[tuple[str, dict[str, Any]]]:
    return [(c.kind, c.payload) for c in RuntimeCommand.objects.filter(session=session)]


def runtime_says(session: AgentSession, *events: tuple[str, dict[str, Any]]) -> None:
    services.events_record(
        session=session,
        events=[
            services.EventIn(event_id=f"rt-{session.last_seq}-{i}", type=t, payload=p)
            for i, (t, p) in enumerate(events)
        ],
        actor="runtime",
    )


# --- idle timeout: chats ------------------------------------------------------------------------


def test_a_chat_with_no_activity_for_the_idle_timeout_goes_idle(clock, agent, world) -> None:
    s = chat(agent, world.owner)
    at(clock, seconds=IDLE)
    report = sweeps.policy_sweep()
    assert report.idled == 1
    assert fresh(s).status == Status.IDLE
    assert s.status_group == Group.ATTENTION
    assert status_changes(s)[-1] == {
        "from": "running",
        "to": "idle",
        "reason": "no activity for 10 min",
    }
    assert s.events.order_by("-seq").first().actor == "policy"  # type: ignore[union-attr]


def test_a_chat_one_second_before_the_idle_timeout_stays_running(clock, agent, world) -> None:
    s = chat(agent, world.owner)
    at(clock, seconds=IDLE - 1)
    assert sweeps.policy_sweep().changed == 0
    assert fresh(s).status == Status.RUNNING


def test_activity_resets_the_idle_timer(clock, agent, world) -> None:
    s = chat(agent, world.owner)
    at(clock, seconds=300)
    runtime_says(s, ("message", {"role": "agent", "text": "still thinking"}))
    at(clock, seconds=IDLE)
    sweeps.policy_sweep()
    assert fresh(s).status == Status.RUNNING
    at(clock, seconds=300 + IDLE)
    sweeps.policy_sweep()
    assert fresh(s).status == Status.IDLE


def test_an_idle_chat_ends_after_another_idle_timeout(clock, agent, world) -> None:
    s = chat(agent, world.owner)
    at(clock, seconds=IDLE)
    sweeps.policy_sweep()
    at(clock, seconds=2 * IDLE - 1)
    assert sweeps.policy_sweep().ended_idle == 0
    assert fresh(s).status == Status.IDLE
    at(clock, seconds=2 * IDLE)
    assert sweeps.policy_sweep().ended_idle == 1
    assert fresh(s).status == Status.ENDED
    assert s.stop_reason == StopReason.IDLE_TIMEOUT
    assert s.ended_at == T0 + timedelta(seconds=2 * IDLE)
    assert commands(s) == [(CommandKind.END, {"reason": "idle for 10 min", "by": "policy"})]


def test_a_user_message_from_the_runtime_brings_an_idle_chat_back_to_running(
    clock, agent, world
) -> None:
    s = chat(agent, world.owner)
    at(clock, seconds=IDLE)
    sweeps.policy_sweep()
    at(clock, seconds=IDLE + 60)
    runtime_says(s, ("message", {"role": "user", "text": "are you there?"}))
    assert fresh(s).status == Status.RUNNING
    # The status change comes before the message that caused it.
    last_two = list(s.events.order_by("-seq")[:2])[::-1]
    assert [e.type for e in last_two] == ["status_change", "message"]
    assert last_two[0].payload == {"from": "idle", "to": "running", "reason": "message"}
    # ...and it is back on the idle clock from that message on.
    at(clock, seconds=2 * IDLE + 59)
    sweeps.policy_sweep()
    assert fresh(s).status == Status.RUNNING


def test_an_agent_message_keeps_an_idle_chat_idle_but_postpones_its_end(
    clock, agent, world
) -> None:
    s = chat(agent, world.owner)
    at(clock, seconds=IDLE)
    sweeps.policy_sweep()
    at(clock, seconds=IDLE + 300)
    runtime_says(s, ("message", {"role": "agent", "text": "I'll wait"}))
    assert fresh(s).status == Status.IDLE
    at(clock, seconds=2 * IDLE)
    sweeps.policy_sweep()
    assert fresh(s).status == Status.IDLE
    at(clock, seconds=2 * IDLE + 300)
    sweeps.policy_sweep()
    assert fresh(s).status == Status.ENDED


def test_an_operator_message_brings_an_idle_chat_back_to_running(clock, agent, world) -> None:
    s = chat(agent, world.owner)
    at(clock, seconds=IDLE)
    sweeps.policy_sweep()
    services.message_send(session=fresh(s), user=world.owner, text="hello again")
    assert fresh(s).status == Status.RUNNING


def test_a_policy_change_applies_to_open_sessions_from_the_next_sweep(clock, agent, world) -> None:
    s = chat(agent, world.owner)
    at(clock, seconds=300)
    sweeps.policy_sweep()
    assert fresh(s).status == Status.RUNNING
    services.agent_policy_update(
        agent=agent, user=world.admin, changes={"idle_timeout_seconds": 240}
    )
    sweeps.policy_sweep()
    assert fresh(s).status == Status.IDLE
    assert status_changes(s)[-1]["reason"] == "no activity for 4 min"


# --- idle timeout: the stall watchdog -----------------------------------------------------------


@pytest.mark.parametrize("kind", [Kind.FLOW_RUN, Kind.BACKGROUND_TASK])
def test_a_run_with_no_event_for_the_idle_timeout_is_flagged_stalled_not_killed(
    clock, agent, world, kind, broadcasts, django_capture_on_commit_callbacks
) -> None:
    s = f.make_session(agent, world.owner, kind, status=Status.RUNNING, timeout_seconds=LONGEST)
    at(clock, seconds=IDLE)
    broadcasts.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert sweeps.policy_sweep().stalled == 1
    assert fresh(s).stalled is True
    assert s.status == Status.RUNNING
    assert s.status_group == Group.ATTENTION
    flag = s.events.order_by("-seq").first()
    assert flag is not None and flag.type == "action" and flag.actor == "policy"
    assert flag.payload == {
        "action": "flag_stalled",
        "by": "policy",
        "reason": "no event for 10 min",
    }
    assert commands(s) == []
    assert broadcasts == [s.pk]
    # Flagging is not a sign of life: the session's activity clock is untouched.
    assert s.last_activity_at == T0


def test_a_run_one_second_before_the_idle_timeout_is_not_flagged(clock, agent, world) -> None:
    s = flow(agent, world.owner)
    at(clock, seconds=IDLE - 1)
    sweeps.policy_sweep()
    assert fresh(s).stalled is False


def test_a_stalled_run_is_flagged_once(clock, agent, world) -> None:
    s = flow(agent, world.owner)
    at(clock, seconds=IDLE)
    sweeps.policy_sweep()
    at(clock, seconds=IDLE + 30)
    assert sweeps.policy_sweep().stalled == 0
    assert s.events.filter(type="action").count() == 1


def test_a_new_event_clears_stalled_and_restarts_the_watch(clock, agent, world) -> None:
    s = flow(agent, world.owner)
    at(clock, seconds=IDLE)
    sweeps.policy_sweep()
    at(clock, seconds=IDLE + 60)
    runtime_says(s, ("step", {"index": 2, "total": 5, "name": "build"}))
    assert fresh(s).stalled is False
    assert s.status_group == Group.ACTIVE
    at(clock, seconds=2 * IDLE + 59)
    sweeps.policy_sweep()
    assert fresh(s).stalled is False
    at(clock, seconds=2 * IDLE + 60)
    sweeps.policy_sweep()
    assert fresh(s).stalled is True


@pytest.mark.parametrize("status", [Status.WAITING_INPUT, Status.PAUSED])
def test_a_run_waiting_for_a_person_is_not_stalled(clock, agent, world, status) -> None:
    s = flow(agent, world.owner, status=status)
    at(clock, seconds=IDLE * 2)
    sweeps.policy_sweep()
    assert fresh(s).stalled is False


# --- max duration -------------------------------------------------------------------------------


def test_a_run_past_its_timeout_is_stopped_and_the_runtime_told(clock, agent, world) -> None:
    s = flow(agent, world.owner, timeout_seconds=300)
    at(clock, seconds=299)
    assert sweeps.policy_sweep().stopped_max_duration == 0
    assert fresh(s).status == Status.RUNNING
    at(clock, seconds=300)
    assert sweeps.policy_sweep().stopped_max_duration == 1
    assert fresh(s).status == Status.STOPPING
    assert s.stop_reason == StopReason.MAX_DURATION
    assert status_changes(s)[-1] == {
        "from": "running",
        "to": "stopping",
        "reason": "max duration of 5 min reached",
        "stop_reason": "max_duration",
    }
    assert commands(s) == [
        (CommandKind.STOP, {"reason": "max duration of 5 min reached", "by": "policy"})
    ]


def test_activity_does_not_extend_max_duration(clock, agent, world) -> None:
    s = flow(agent, world.owner, timeout_seconds=300)
    at(clock, seconds=290)
    runtime_says(s, ("step", {"index": 1, "total": 3}))
    at(clock, seconds=300)
    sweeps.policy_sweep()
    assert fresh(s).status == Status.STOPPING


def test_the_agents_max_duration_applies_where_shorter_than_the_session_timeout(
    clock, agent, world
) -> None:
    s = flow(agent, world.owner, timeout_seconds=LONGEST)
    services.agent_policy_update(
        agent=agent, user=world.admin, changes={"max_duration_seconds": 900}
    )
    at(clock, seconds=899)
    sweeps.policy_sweep()
    assert fresh(s).status == Status.RUNNING
    at(clock, seconds=900)
    sweeps.policy_sweep()
    assert fresh(s).status == Status.STOPPING
    assert status_changes(s)[-1]["reason"] == "max duration of 15 min reached"


def test_max_duration_counts_from_the_start_not_the_creation(clock, agent, world) -> None:
    s = flow(agent, world.owner, status=Status.PENDING, timeout_seconds=300)
    at(clock, seconds=100)
    f.walk_to(s, Status.RUNNING)
    at(clock, seconds=399)
    sweeps.policy_sweep()
    assert fresh(s).status == Status.RUNNING
    at(clock, seconds=400)
    sweeps.policy_sweep()
    assert fresh(s).status == Status.STOPPING


def test_a_run_that_never_started_counts_from_its_creation(clock, agent, world) -> None:
    s = f.make_session(agent, world.owner, Kind.BACKGROUND_TASK, timeout_seconds=300)
    assert s.status == Status.QUEUED and s.started_at is None
    at(clock, seconds=299)
    sweeps.policy_sweep()
    assert fresh(s).status == Status.QUEUED
    at(clock, seconds=300)
    sweeps.policy_sweep()
    assert fresh(s).status == Status.STOPPING


def test_a_chat_past_max_duration_ends(clock, agent, world) -> None:
    s = chat(agent, world.owner, timeout_seconds=300)
    at(clock, seconds=300)
    assert sweeps.policy_sweep().ended_max_duration == 1
    assert fresh(s).status == Status.ENDED
    assert s.stop_reason == StopReason.MAX_DURATION
    assert commands(s) == [
        (CommandKind.END, {"reason": "max duration of 5 min reached", "by": "policy"})
    ]


# --- stop grace ---------------------------------------------------------------------------------


@pytest.fixture
def grace(settings: Any) -> int:
    settings.SCC_STOP_GRACE_SECONDS = 120
    return 120


def test_a_stop_the_runtime_does_not_confirm_within_the_grace_ends_stopped_with_a_note(
    clock, agent, world, grace
) -> None:
    s = flow(agent, world.owner)
    services.session_stop(session=s, user=world.owner)
    at(clock, seconds=grace - 1)
    assert sweeps.policy_sweep().stopped_grace == 0
    assert fresh(s).status == Status.STOPPING
    at(clock, seconds=grace)
    assert sweeps.policy_sweep().stopped_grace == 1
    assert fresh(s).status == Status.STOPPED
    assert s.stop_reason == StopReason.USER  # why it was stopped stays on record
    change, note = list(s.events.order_by("-seq")[:2])[::-1]
    assert change.payload == {
        "from": "stopping",
        "to": "stopped",
        "reason": "the runtime did not confirm the stop within 2 min",
    }
    assert note.type == "message" and note.payload["role"] == "system"
    assert "did not confirm the stop within 2 min" in note.payload["text"]


def test_a_stop_the_runtime_confirms_is_left_alone(clock, agent, world, grace) -> None:
    s = flow(agent, world.owner)
    services.session_stop(session=s, user=world.owner)
    at(clock, seconds=60)
    runtime_says(s, ("status_change", {"to": "stopped"}))
    at(clock, seconds=grace * 2)
    assert sweeps.policy_sweep().stopped_grace == 0
    assert fresh(s).status == Status.STOPPED
    assert [c["to"] for c in status_changes(s)].count("stopped") == 1


def test_a_run_stopped_for_max_duration_gets_its_full_grace(clock, agent, world, grace) -> None:
    s = flow(agent, world.owner, timeout_seconds=300)
    at(clock, seconds=300)
    sweeps.policy_sweep()
    at(clock, seconds=300 + grace - 1)
    sweeps.policy_sweep()
    assert fresh(s).status == Status.STOPPING
    at(clock, seconds=300 + grace)
    sweeps.policy_sweep()
    assert fresh(s).status == Status.STOPPED
    assert s.stop_reason == StopReason.MAX_DURATION


# --- max concurrent sessions per user, on resume ------------------------------------------------


@pytest.fixture
def capped(agent: Agent) -> Agent:
    Agent.objects.filter(pk=agent.pk).update(max_concurrent_sessions_per_user=1)
    agent.refresh_from_db()
    return agent


def test_resuming_over_the_cap_is_refused_with_the_limit_and_the_count(capped, world) -> None:
    stopped = flow(capped, world.owner, status=Status.STOPPED)
    flow(capped, world.owner)  # takes the one slot
    with pytest.raises(errors.ConcurrencyLimit) as err:
        services.session_resume(session=fresh(stopped), user=world.owner)
    assert (err.value.limit, err.value.current) == (1, 1)
    assert "at most 1 concurrent session per user" in str(err.value)
    assert "already has 1 open" in str(err.value)
    assert fresh(stopped).status == Status.STOPPED


def test_resuming_works_again_once_a_slot_frees(capped, world) -> None:
    stopped = flow(capped, world.owner, status=Status.STOPPED)
    other = flow(capped, world.owner)
    services.session_cancel(session=other, user=world.owner)
    services.session_resume(session=fresh(stopped), user=world.owner)
    assert fresh(stopped).status == Status.RUNNING


def test_resuming_a_paused_session_at_the_cap_is_allowed(capped, world) -> None:
    paused = flow(capped, world.owner, status=Status.PAUSED)  # already counts toward the cap
    services.session_resume(session=paused, user=world.owner)
    assert fresh(paused).status == Status.RUNNING


def test_a_stale_instance_does_not_skip_the_cap(capped, world) -> None:
    s = flow(capped, world.owner)
    stale = AgentSession.objects.get(pk=s.pk)  # loaded while live
    services.session_stop(session=s, user=world.owner)
    lifecycle.transition(fresh(s), Status.STOPPED, actor="runtime")
    flow(capped, world.owner)
    stale.status = Status.STOPPED  # the caller knows it is stopped, but `live` is stale
    with pytest.raises(errors.ConcurrencyLimit):
        services.session_resume(session=stale, user=world.owner)


# --- auto-archive -------------------------------------------------------------------------------

DAYS = 30


def test_an_ended_session_is_archived_after_auto_archive_days(clock, agent, world) -> None:
    s = chat(agent, world.owner)
    services.session_end(session=s, user=world.owner)
    at(clock, days=DAYS, seconds=-1)
    assert sweeps.archive_sweep().archived == 0
    assert fresh(s).archived_at is None
    at(clock, days=DAYS)
    assert sweeps.archive_sweep().archived == 1
    assert fresh(s).archived_at == T0 + timedelta(days=DAYS)
    assert sweeps.archive_sweep().archived == 0  # idempotent


def test_archived_sessions_leave_the_lists_but_the_archived_filter_reaches_them(
    clock, agent, world
) -> None:
    services.agent_policy_update(agent=agent, user=world.admin, changes={"auto_archive_days": 1})
    s = chat(agent, world.owner)
    services.session_end(session=s, user=world.owner)
    at(clock, days=1)

    def listed() -> dict[str, bool]:
        pks = {
            "default": selectors.filtered_sessions(world.owner, selectors.SessionFilter()),
            "recent": selectors.recent(world.owner),
            "archived": selectors.filtered_sessions(
                world.owner, selectors.SessionFilter(archived=True)
            ),
        }
        return {name: qs.filter(pk=s.pk).exists() for name, qs in pks.items()}

    assert listed() == {"default": True, "recent": True, "archived": False}
    sweeps.archive_sweep()
    assert listed() == {"default": False, "recent": False, "archived": True}


def test_the_agents_current_archive_days_apply(clock, agent, world) -> None:
    s = chat(agent, world.owner)
    services.session_end(session=s, user=world.owner)
    at(clock, days=3)
    sweeps.archive_sweep()
    assert fresh(s).archived_at is None
    services.agent_policy_update(agent=agent, user=world.admin, changes={"auto_archive_days": 3})
    sweeps.archive_sweep()
    assert fresh(s).archived_at is not None


def test_open_and_stopped_sessions_are_not_archived(clock, agent, world) -> None:
    running = flow(agent, world.owner)
    stopped = flow(agent, world.owner, status=Status.STOPPED)
    at(clock, days=DAYS * 2)
    sweeps.archive_sweep()
    assert fresh(running).archived_at is None and fresh(stopped).archived_at is None


# --- retention ----------------------------------------------------------------------------------


def test_an_expired_session_is_deleted_with_its_events_and_commands(clock, agent, world) -> None:
    s = flow(agent, world.owner)
    services.command_queue(session=s, kind=CommandKind.PAUSE)
    keep = flow(agent, world.owner)
    at(clock, days=10)
    runtime_says(keep, ("step", {"index": 1}))
    events = SessionEvent.objects.filter(session=s).count()
    assert s.expires_at == T0 + timedelta(days=DAYS)
    at(clock, days=DAYS, seconds=-1)
    assert sweeps.retention_purge().sessions == 0
    at(clock, days=DAYS)
    report = sweeps.retention_purge()
    assert (report.sessions, report.events, report.commands) == (1, events, 1)
    assert not AgentSession.objects.filter(pk=s.pk).exists()
    assert not SessionEvent.objects.filter(session_id=s.pk).exists()
    assert not RuntimeCommand.objects.filter(session_id=s.pk).exists()
    assert AgentSession.objects.filter(pk=keep.pk).exists()


def test_any_interaction_resets_retention(clock, agent, world) -> None:
    s = flow(agent, world.owner)
    at(clock, days=10)
    services.session_pause(session=s, user=world.owner)
    at(clock, days=DAYS)
    sweeps.retention_purge()
    assert AgentSession.objects.filter(pk=s.pk).exists()
    at(clock, days=10 + DAYS)
    sweeps.retention_purge()
    assert not AgentSession.objects.filter(pk=s.pk).exists()


def test_a_pinned_session_survives_retention(clock, agent, world) -> None:
    s = flow(agent, world.owner)
    services.session_set_pinned(session=s, user=world.owner, pinned=True)
    at(clock, days=DAYS * 10)
    assert sweeps.retention_purge().sessions == 0
    assert AgentSession.objects.filter(pk=s.pk).exists()


def test_the_purge_works_in_bounded_batches(clock, agent, world) -> None:
    sessions = [flow(agent, world.owner) for _ in range(5)]
    at(clock, days=DAYS)
    report = sweeps.retention_purge(batch_size=2)
    assert (report.sessions, report.batches) == (5, 3)
    assert not AgentSession.objects.filter(pk__in=[s.pk for s in sessions]).exists()


def test_the_purge_caps_the_events_of_one_transaction(clock, agent, world, monkeypatch) -> None:
    monkeypatch.setattr(sweeps, "PURGE_EVENTS_PER_BATCH", 3)
    for _ in range(3):
        s = flow(agent, world.owner)  # two status changes each
        assert s.last_seq == 2
    at(clock, days=DAYS)
    report = sweeps.retention_purge(batch_size=100)
    assert (report.sessions, report.events, report.batches) == (3, 6, 3)


def test_purged_sessions_are_announced_as_deleted_after_commit(
    clock, agent, world, django_capture_on_commit_callbacks
) -> None:
    s = flow(agent, world.owner)
    seen: list[Any] = []
    hooks.register("sessions_deleted", seen.append)
    try:
        at(clock, days=DAYS)
        with django_capture_on_commit_callbacks(execute=True):
            sweeps.retention_purge()
    finally:
        hooks.unregister("sessions_deleted", seen.append)
    assert [[fact["id"] for fact in facts] for facts in seen] == [[str(s.pk)]]


def test_purging_a_parent_leaves_its_children(clock, agent, world) -> None:
    parent = f.make_session(agent, world.owner, Kind.CHAT)
    at(clock, days=5)
    child = flow(agent, world.owner, parent=parent)
    at(clock, days=DAYS)
    sweeps.retention_purge()
    assert fresh(child).parent_id is None


@pytest.mark.parametrize(
    ("left", "expected"),
    [
        (timedelta(days=8), None),
        (timedelta(days=7), 7),
        (timedelta(days=6, hours=1), 7),
        (timedelta(hours=2), 1),
        (timedelta(0), 0),
        (-timedelta(days=1), 0),
    ],
)
def test_expires_in_days_counts_down_the_last_week(left, expected) -> None:
    assert states.expires_in_days(expires_at=T0 + left, pinned=False, now=T0) == expected


def test_expires_in_days_is_none_for_pinned_sessions() -> None:
    assert states.expires_in_days(expires_at=T0, pinned=True, now=T0) is None
    assert states.expires_in_days(expires_at=None, pinned=False, now=T0) is None


def test_the_model_reports_days_left_rounded_up(time_machine) -> None:
    """A 5-day policy right after activity says 5 days, not 4."""
    time_machine.move_to(T0, tick=False)
    session = AgentSession(expires_at=T0 + timedelta(days=5), pinned=False)
    assert session.expires_in_days == 5


# --- bad rows -----------------------------------------------------------------------------------


def test_a_row_that_raises_does_not_stop_the_sweep(
    clock, agent, world, caplog, monkeypatch
) -> None:
    broken = chat(agent, world.owner)  # oldest: first in the batch
    at(clock, seconds=1)
    healthy = [chat(agent, world.owner) for _ in range(3)]
    real_transition = lifecycle.transition

    def transition_that_trips_on_one_row(session, *args, **kwargs):
        result = real_transition(session, *args, **kwargs)
        if session.pk == broken.pk:
            # After the change and its event are written: the rollback must undo both.
            raise RuntimeError("corrupt row")
        return result

    monkeypatch.setattr(lifecycle, "transition", transition_that_trips_on_one_row)
    at(clock, seconds=IDLE + 1)
    with caplog.at_level(logging.ERROR, logger="sessions_app.sweeps"):
        report = sweeps.policy_sweep(batch_size=2)
    assert (report.idled, report.errors) == (3, 1)
    assert all(fresh(s).status == Status.IDLE for s in healthy)
    assert fresh(broken).status == Status.RUNNING
    assert status_changes(broken)[-1]["to"] == "running"  # rolled back, nothing half-done
    assert f"idle timeout failed for session {broken.pk}" in caplog.text


def test_an_agent_with_an_impossible_policy_is_skipped_and_logged(
    clock, agent, world, caplog
) -> None:
    broken_agent = f.make_agent(world.project, world.agent_owner)
    broken = chat(broken_agent, world.owner)
    ok = chat(agent, world.owner)
    services.session_end(session=broken, user=world.owner)
    services.session_end(session=ok, user=world.owner)
    # Large enough to overflow `days * 86400` in SQL if it were not clamped and filtered.
    Agent.objects.filter(pk=broken_agent.pk).update(auto_archive_days=2_000_000_000)
    at(clock, days=DAYS)
    with caplog.at_level(logging.ERROR, logger="sessions_app.sweeps"):
        report = sweeps.archive_sweep()
    assert (report.archived, report.broken_agents) == (1, 1)
    assert fresh(ok).archived_at is not None
    assert fresh(broken).archived_at is None
    assert "auto_archive_days=2000000000" in caplog.text


@pytest.mark.postgres
def test_an_agent_whose_idle_timeout_is_zero_in_the_database_is_skipped(
    clock, agent, world
) -> None:
    broken_agent = f.make_agent(world.project, world.agent_owner)
    broken = chat(broken_agent, world.owner)
    ok = chat(agent, world.owner)
    with connection.cursor() as cur:  # rolled back with the test's transaction
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")  # ALTER TABLE refuses pending FK checks
        cur.execute(
            "ALTER TABLE sessions_app_agent DROP CONSTRAINT agent_idle_timeout_positive, "
            "DROP CONSTRAINT agent_max_duration_above_idle"
        )
        cur.execute(
            "UPDATE sessions_app_agent SET idle_timeout_seconds = 0 WHERE id = %s",
            [broken_agent.pk],
        )
    at(clock, seconds=IDLE)
    report = sweeps.policy_sweep()
    assert (report.idled, report.broken_agents) == (1, 1)
    assert fresh(ok).status == Status.IDLE
    assert fresh(broken).status == Status.RUNNING


# --- concurrency --------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_sweeps_racing_change_each_session_exactly_once(world) -> None:
    agent = f.make_agent(world.project, world.agent_owner, idle_timeout_seconds=IDLE)
    chats = [chat(agent, world.owner) for _ in range(30)]
    flows = [flow(agent, world.owner) for _ in range(20)]
    from django.utils import timezone

    long_ago = timezone.now() - timedelta(seconds=IDLE + 60)
    AgentSession.objects.filter(agent=agent).update(last_activity_at=long_ago)

    barrier = threading.Barrier(2)
    reports: list[sweeps.SweepReport] = []
    failures: list[BaseException] = []

    def sweep() -> None:
        try:
            barrier.wait()
            reports.append(sweeps.policy_sweep(batch_size=4))
        except BaseException as exc:  # surfaced by the assertion below
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert failures == []
    assert sum(r.idled for r in reports) == 30
    assert sum(r.stalled for r in reports) == 20
    for s in chats:
        assert [c["to"] for c in status_changes(s)] == ["running", "idle"]
    for s in flows:
        assert fresh(s).stalled is True
        assert s.events.filter(type="action", payload__action="flag_stalled").count() == 1


def test_a_run_that_never_started_counts_from_its_creation_against_the_agent_policy(
    clock, agent, world
) -> None:
    s = f.make_session(agent, world.owner, Kind.BACKGROUND_TASK, timeout_seconds=LONGEST)
    services.agent_policy_update(
        agent=agent, user=world.admin, changes={"max_duration_seconds": 900}
    )
    at(clock, seconds=899)
    sweeps.policy_sweep()
    assert fresh(s).status == Status.QUEUED
    at(clock, seconds=900)
    sweeps.policy_sweep()
    assert fresh(s).status == Status.STOPPING


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("query", "index"),
    [
        (lambda now: sweeps.max_duration_due(now)[0], "session_open_deadline_idx"),
        (sweeps.idle_due, "session_open_activity_idx"),
        (sweeps.stop_grace_due, "session_stopping_idx"),
    ],
)
def test_due_rows_are_found_through_their_partial_index(world, query, index) -> None:
    # With sequential scans off the planner takes any index that can serve the query; the one we
    # rely on only qualifies if the query's expression and predicate match it exactly.
    with connection.cursor() as cur:
        cur.execute("SET LOCAL enable_seqscan = off")
    plan = query(T0).values("pk").explain()
    assert index in plan


def test_max_duration_pages_past_a_bad_row_in_small_batches(
    clock, agent, world, monkeypatch
) -> None:
    broken = flow(agent, world.owner, timeout_seconds=300)  # earliest deadline
    at(clock, seconds=1)
    healthy = [flow(agent, world.owner, timeout_seconds=300) for _ in range(5)]
    real_transition = lifecycle.transition

    def transition_that_trips_on_one_row(session, *args, **kwargs):
        if session.pk == broken.pk:
            raise RuntimeError("corrupt row")
        return real_transition(session, *args, **kwargs)

    monkeypatch.setattr(lifecycle, "transition", transition_that_trips_on_one_row)
    at(clock, seconds=301)
    report = sweeps.policy_sweep(batch_size=2)
    assert (report.stopped_max_duration, report.errors) == (5, 1)
    assert {fresh(s).status for s in healthy} == {Status.STOPPING}
    assert fresh(broken).status == Status.RUNNING


def test_a_sweep_change_is_not_activity(clock, agent, world) -> None:
    s = chat(agent, world.owner)
    before = fresh(s)
    at(clock, seconds=IDLE + 1)
    sweeps.policy_sweep()
    after = fresh(s)
    assert after.status == Status.IDLE
    # Retention and the Active Now window still count from the last real activity.
    assert after.last_activity_at == before.last_activity_at
    assert after.expires_at == before.expires_at
    assert after.status_changed_at is not None and after.status_changed_at > before.last_activity_at

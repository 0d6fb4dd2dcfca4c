"""Bulk actions: the dry run says exactly what the run does, for every action, over a mixed
world of 200 sessions; an abort leaves a consistent state; a run killed midway and run again
loses nothing and repeats nothing."""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from sessions_app import selectors, services, tasks
from sessions_app.models import (
    AgentSession,
    BulkAction,
    BulkItem,
    BulkRun,
    BulkStatus,
    EventType,
    Role,
    SessionEvent,
)
from sessions_app.services import bulk as bulk_service
from sessions_app.states import STATUSES, VERB_TARGETS, Kind
from tests import factories as f

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

KINDS = [Kind.FLOW_RUN, Kind.BACKGROUND_TASK, Kind.CHAT]


class Rollback(Exception):
    pass


@pytest.fixture
def mixed(world: Any) -> list[AgentSession]:
    """200 sessions of every kind and status, four owners, two projects; the maintainer is
    only a developer on the second project (sees its runs, may not act on them)."""
    f.add_member(world.other_project, world.maintainer, Role.DEVELOPER)
    second = f.make_agent(world.other_project, world.agent_owner, name="indexer")
    rng = random.Random(13)
    owners = {
        world.agent.pk: [world.owner, world.developer, world.maintainer],
        second.pk: [world.outsider, world.maintainer],
    }
    sessions = []
    for i in range(200):
        kind = KINDS[i % 3]
        agent = world.agent if i % 4 else second
        owner = rng.choice(owners[agent.pk])
        status = rng.choice(sorted(STATUSES[kind]))
        s = f.make_session(agent, owner, kind, status=status)
        if rng.random() < 0.2:
            AgentSession.objects.filter(pk=s.pk).update(pinned=True)
        if not s.live and rng.random() < 0.15:
            AgentSession.objects.filter(pk=s.pk).update(archived_at=timezone.now())
        sessions.append(s)
    return sessions


def _state(pk: Any) -> Any:
    row = AgentSession.objects.filter(pk=pk).values_list("status", "pinned", "archived_at").first()
    return None if row is None else (row[0], row[1], row[2] is not None)


def _audits(pk: Any, action: str) -> int:
    return SessionEvent.objects.filter(
        session_id=pk, type=EventType.ACTION, payload__action=action
    ).count()


def _assert_changed(action: str, before: Any, after: Any) -> None:
    if action == BulkAction.DELETE:
        assert after is None
    elif action == BulkAction.PIN:
        assert after[1] is True
    elif action == BulkAction.ARCHIVE:
        assert after[2] is True
    else:
        assert after[0] == VERB_TARGETS[action]
        assert after[0] != before[0]


@pytest.mark.parametrize("persona", ["maintainer", "admin"])
def test_the_dry_run_matches_the_run_for_every_action(
    world: Any, mixed: list[AgentSession], persona: str
) -> None:
    user = getattr(world, persona)
    flt = selectors.SessionFilter()
    visible = selectors.filtered_sessions(user, flt).count()
    preview = selectors.bulk_preview(user, selectors.bulk_targets(user, flt=flt))
    assert preview.total == visible
    if persona == "maintainer":
        # Chats of others are out of sight entirely; runs of the second project are seen
        # but not actable.
        assert visible < 200
        assert all(plan.skip.get("permission", 0) > 0 for plan in preview.plans)
    else:
        assert visible == AgentSession.objects.filter(archived_at__isnull=True).count()
        assert all("permission" not in plan.skip for plan in preview.plans)
    changed_somewhere = 0
    for plan in preview.plans:
        before = {s.pk: _state(s.pk) for s in selectors.bulk_targets(user, flt=flt)}
        try:
            with transaction.atomic():
                run = services.bulk_start(user=user, action=plan.action, flt=flt)
                services.bulk_execute(run_id=run.pk)
                run.refresh_from_db()
                assert run.status == BulkStatus.DONE
                items = list(BulkItem.objects.filter(run=run))
                assert len(items) == preview.total
                changed = [i for i in items if i.outcome == "changed"]
                reasons = Counter(i.reason for i in items if i.outcome == "skipped")
                assert len(changed) == plan.change, plan.action
                assert dict(reasons) == plan.skip, plan.action
                progress = selectors.bulk_progress(run)
                assert (progress.changed, progress.skip) == (plan.change, plan.skip)
                for item in items:
                    after = _state(item.session_id)
                    if item.outcome == "changed":
                        _assert_changed(plan.action, before[item.session_id], after)
                        if plan.action != BulkAction.DELETE:
                            assert _audits(item.session_id, plan.action) == 1
                    else:
                        assert after == before[item.session_id], (plan.action, item.reason)
                changed_somewhere += len(changed)
                raise Rollback
        except Rollback:
            pass
    assert changed_somewhere > 0


def test_selected_ids_are_limited_to_what_the_actor_may_see(
    world: Any, mixed: list[AgentSession]
) -> None:
    hidden = AgentSession.objects.filter(kind=Kind.CHAT).exclude(owner=world.maintainer).first()
    mine = AgentSession.objects.filter(owner=world.maintainer, live=True).first()
    assert hidden is not None
    assert mine is not None
    ids = [str(hidden.pk), str(mine.pk)]
    targets = selectors.bulk_targets(world.maintainer, ids=ids)
    assert list(targets.values_list("pk", flat=True)) == [mine.pk]
    run = services.bulk_start(user=world.maintainer, action=BulkAction.PIN, ids=ids)
    assert run.total == 1


def _run_for(world: Any, action: str = BulkAction.PAUSE) -> tuple[BulkRun, int]:
    flt = selectors.SessionFilter()
    preview = selectors.bulk_preview(world.admin, selectors.bulk_targets(world.admin, flt=flt))
    run = services.bulk_start(user=world.admin, action=action, flt=flt)
    return run, preview.plan(action).change


def test_abort_midway_leaves_a_consistent_state(world: Any, mixed: list[AgentSession]) -> None:
    run, _ = _run_for(world)
    first = services.bulk_execute(run_id=run.pk, max_items=60)
    assert first.more
    assert first.run.status == BulkStatus.RUNNING
    services.bulk_abort(user=world.admin, run=run)
    final = services.bulk_execute(run_id=run.pk)
    assert final.run.status == BulkStatus.ABORTED
    assert final.run.finished_at is not None
    done = BulkItem.objects.filter(run=run).exclude(outcome="")
    assert done.count() == 60
    for item in done.filter(outcome="changed"):
        assert _state(item.session_id)[0] == "paused"
        assert _audits(item.session_id, "pause") == 1
    # What the run did not reach is as it was: not paused by this run, no audit line.
    untouched = BulkItem.objects.filter(run=run, outcome="")
    assert untouched.count() == run.total - 60
    for item in untouched:
        assert _audits(item.session_id, "pause") == 0
    progress = selectors.bulk_progress(final.run)
    assert progress.done == 60
    # An aborted run stays aborted: running it again does nothing more.
    assert services.bulk_execute(run_id=run.pk).run.status == BulkStatus.ABORTED
    assert BulkItem.objects.filter(run=run).exclude(outcome="").count() == 60


def test_aborting_a_queued_run_stops_it_before_it_starts(
    world: Any, mixed: list[AgentSession]
) -> None:
    run, _ = _run_for(world)
    services.bulk_abort(user=world.admin, run=run)
    assert services.bulk_execute(run_id=run.pk).run.status == BulkStatus.ABORTED
    assert not BulkItem.objects.filter(run=run).exclude(outcome="").exists()


def test_a_run_killed_midway_and_run_again_loses_and_repeats_nothing(
    world: Any, mixed: list[AgentSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    run, expected = _run_for(world, BulkAction.CANCEL)
    assert expected > 20
    real = bulk_service.ACTION_SERVICES[BulkAction.CANCEL]
    calls = {"n": 0}

    def dies_on_the_21st(**kw: Any) -> Any:
        calls["n"] += 1
        result = real(**kw)
        if calls["n"] == 21:
            # The worker dies after the action's writes but before its transaction commits.
            raise SystemExit("worker killed")
        return result

    monkeypatch.setitem(bulk_service.ACTION_SERVICES, BulkAction.CANCEL, dies_on_the_21st)
    with pytest.raises(SystemExit):
        services.bulk_execute(run_id=run.pk)
    assert BulkItem.objects.filter(run=run, outcome="changed").count() == 20
    monkeypatch.setitem(bulk_service.ACTION_SERVICES, BulkAction.CANCEL, real)
    tasks.bulk_run(str(run.pk))  # the redelivered task
    run.refresh_from_db()
    assert run.status == BulkStatus.DONE
    changed = BulkItem.objects.filter(run=run, outcome="changed")
    assert changed.count() == expected
    assert not BulkItem.objects.filter(run=run, outcome="").exists()
    for item in changed:
        assert _state(item.session_id)[0] == "cancelled"
        assert _audits(item.session_id, "cancel") == 1  # exactly once, killed one included


def test_a_run_whose_task_was_lost_is_queued_again(
    world: Any, mixed: list[AgentSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    run, _ = _run_for(world)
    later = timezone.now() + timedelta(minutes=2)
    assert selectors.bulk_runs_stalled(now=timezone.now()) == []  # too young to call lost
    assert selectors.bulk_runs_stalled(now=later) == [str(run.pk)]
    queued: list[str] = []
    monkeypatch.setattr(tasks.bulk_run, "delay", queued.append)
    with monkeypatch.context() as clock:
        clock.setattr("sessions_app.tasks.timezone.now", lambda: later)
        assert tasks.bulk_resume_stalled() == 1
    assert queued == [str(run.pk)]
    services.bulk_execute(run_id=run.pk, max_items=5)  # progress just now: not lost
    assert selectors.bulk_runs_stalled(now=timezone.now() + timedelta(seconds=30)) == []
    services.bulk_execute(run_id=run.pk)
    assert selectors.bulk_runs_stalled(now=later + timedelta(hours=1)) == []  # finished

"""Concurrency on PostgreSQL: compare-and-swap transitions and the atomic concurrency cap."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import close_old_connections, connection

from sessions_app import errors, lifecycle, services
from sessions_app.models import AgentSession, SessionEvent
from sessions_app.states import Kind
from tests import factories as f

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def run_together(n: int, fn: Callable[[int], Any]) -> list[Any]:
    """Run fn(i) in n threads released at the same instant; return results or exceptions."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def worker(i: int) -> None:
        try:
            barrier.wait()
            results[i] = fn(i)
        except Exception as exc:  # collected and asserted on by the test
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    close_old_connections()
    return results


def test_two_threads_making_the_same_transition_change_it_once(world) -> None:
    session = f.make_session(world.agent, world.owner, Kind.FLOW_RUN, status="running")

    def pause(_: int) -> Any:
        s = AgentSession.objects.select_related("agent").get(pk=session.pk)
        return lifecycle.transition(s, "paused", actor="t").changed

    results = run_together(2, pause)
    assert sorted(results) == [False, True]
    assert SessionEvent.objects.filter(session=session, payload__to="paused").count() == 1


def test_two_threads_making_conflicting_transitions_leave_one_winner(world) -> None:
    session = f.make_session(world.agent, world.owner, Kind.FLOW_RUN, status="running")
    targets = ["completed", "cancelled"]

    def move(i: int) -> Any:
        s = AgentSession.objects.select_related("agent").get(pk=session.pk)
        return lifecycle.transition(s, targets[i], actor="t")

    results = run_together(2, move)
    winners = [r for r in results if isinstance(r, lifecycle.TransitionResult) and r.changed]
    losers = [r for r in results if isinstance(r, errors.IllegalTransition)]
    assert len(winners) == 1
    assert len(losers) == 1
    session.refresh_from_db()
    assert session.status == winners[0].session.status
    terminal_events = SessionEvent.objects.filter(session=session, payload__to__in=targets)
    assert terminal_events.count() == 1
    assert "cannot go from" in str(losers[0])


def test_twenty_parallel_creates_respect_a_cap_of_three(world) -> None:
    world.agent.max_concurrent_sessions_per_user = 3
    world.agent.save()

    def create(_: int) -> Any:
        return services.session_create(agent=world.agent, owner=world.owner, kind="chat", actor="t")

    results = run_together(20, create)
    created = [r for r in results if isinstance(r, AgentSession)]
    refused = [r for r in results if isinstance(r, errors.ConcurrencyLimit)]
    assert len(created) == 3
    assert len(refused) == 17, [
        r for r in results if not isinstance(r, AgentSession | errors.ConcurrencyLimit)
    ]
    assert AgentSession.objects.filter(owner=world.owner).count() == 3


def test_concurrent_event_batches_get_gap_free_seqs(world) -> None:
    session = f.make_session(world.agent, world.owner, Kind.CHAT)

    def post(i: int) -> Any:
        s = AgentSession.objects.get(pk=session.pk)
        events = [services.EventIn(f"b{i}-{n}", "thinking", {"text": "..."}) for n in range(20)]
        return services.events_record(session=s, events=events, actor="rt")

    run_together(5, post)
    seqs = list(
        SessionEvent.objects.filter(session=session).order_by("seq").values_list("seq", flat=True)
    )
    assert seqs == list(range(1, 102))


def test_the_database_refuses_a_cross_tenant_reference(world) -> None:
    from django.db import IntegrityError, transaction

    session = f.make_session(world.agent, world.owner, Kind.FLOW_RUN)
    with pytest.raises(IntegrityError), transaction.atomic():
        AgentSession.objects.filter(pk=session.pk).update(agent=world.other_agent)


def test_the_database_refuses_a_status_outside_the_kind(world) -> None:
    from django.db import IntegrityError, transaction

    session = f.make_session(world.agent, world.owner, Kind.CHAT)
    with pytest.raises(IntegrityError), transaction.atomic():
        AgentSession.objects.filter(pk=session.pk).update(status="completed")

"""A change whose push never went out still reaches the open dashboards: the process's
reconciler compares recent changes with what each socket was pushed and repairs the gaps.

"Never went out" is simulated by taking the broadcaster off the `session_changed` hook, as if
the committing process had died before publishing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import transaction

from command_center import reconcile
from command_center.broadcast import broadcaster
from sessions_app import hooks, metrics, services
from sessions_app.states import Kind
from tests import factories as f
from tests.command_center.test_consumers import connect, drain

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture(autouse=True)
def _fast(settings: Any) -> None:
    settings.SCC_BROADCAST_COALESCE_MS = 10
    settings.SCC_RECONCILE_MS = 500


@pytest.fixture
def publishing_lost() -> Iterator[None]:
    """Committed changes are never published, as in a process killed inside its window."""
    broadcaster.wait_idle()
    hooks.unregister("session_changed", broadcaster.session_changed)
    try:
        yield
    finally:
        hooks.register("session_changed", broadcaster.session_changed)


async def frames_until(communicator: Any, needle: str, within: float) -> tuple[str, float]:
    """The first frame containing `needle` and how long after the call it came."""
    started = time.monotonic()
    while (left := within - (time.monotonic() - started)) > 0:
        try:
            frame = await communicator.receive_from(timeout=left)
        except TimeoutError:
            break
        if needle in frame:
            return frame, time.monotonic() - started
    raise AssertionError(f"no frame containing {needle!r} within {within} s")


def repairs() -> float:
    return metrics.RECONCILE_REPAIRS._value.get()


async def test_a_change_never_published_reaches_the_dashboard_within_the_bound(
    world: Any, publishing_lost: None
) -> None:
    communicator = await connect(world.owner, "view=list")
    await communicator.receive_from(timeout=10)
    before = repairs()
    session = await sync_to_async(f.make_session)(world.agent, world.owner, title="Unpublished")
    frame, took = await frames_until(
        communicator, f'id="session-{session.pk}"', within=reconcile.bound_seconds()
    )
    assert "Unpublished" in frame
    assert took >= 0.4  # by the repair, a tick after the change was read, not by a push
    assert repairs() - before == 1
    # Repaired once: later ticks see the version as pushed.
    await drain(communicator, quiet=1.5)
    assert repairs() - before == 1
    await communicator.disconnect()


async def test_without_reconciliation_the_lost_change_does_not_arrive(
    world: Any, publishing_lost: None, settings: Any
) -> None:
    # Control for the test above: the publish really was lost, so only the repair delivers it.
    settings.SCC_RECONCILE_MS = 0
    communicator = await connect(world.owner, "view=list")
    await communicator.receive_from(timeout=10)
    session = await sync_to_async(f.make_session)(world.agent, world.owner)
    frames = await drain(communicator, quiet=reconcile.bound_seconds())
    assert not any(f'id="session-{session.pk}"' in frame for frame in frames)
    await communicator.disconnect()


async def test_a_pushed_change_is_not_repaired_again(world: Any) -> None:
    communicator = await connect(world.owner, "view=list")
    await communicator.receive_from(timeout=10)
    before = repairs()
    session = await sync_to_async(f.make_session)(world.agent, world.owner)
    await frames_until(communicator, f'id="session-{session.pk}"', within=5)
    await drain(communicator, quiet=reconcile.bound_seconds())
    assert repairs() == before
    await communicator.disconnect()


async def test_a_lost_transcript_line_is_appended_once(world: Any, publishing_lost: None) -> None:
    chat = await sync_to_async(f.make_session)(world.agent, world.owner, Kind.CHAT)
    communicator = await connect(world.owner, f"view=detail&session={chat.pk}")
    await communicator.receive_from(timeout=10)
    await sync_to_async(services.events_record)(
        session=chat,
        events=[services.EventIn("m1", "message", {"role": "agent", "text": "Lost then found"})],
        actor="rt",
    )
    frame, _ = await frames_until(communicator, "Lost then found", within=reconcile.bound_seconds())
    assert 'hx-swap-oob="beforeend:#transcript"' in frame
    later = await drain(communicator, quiet=1.5)
    assert not any("Lost then found" in frame for frame in later)
    await communicator.disconnect()


async def test_the_repair_pushes_only_what_the_viewer_may_see(
    world: Any, publishing_lost: None
) -> None:
    outsider = await connect(world.other_admin, "view=list")
    owner = await connect(world.owner, "view=list")
    for communicator in (outsider, owner):
        await communicator.receive_from(timeout=10)
    session = await sync_to_async(f.make_session)(world.agent, world.owner)
    # Positive control: the repair runs and delivers to the owner ...
    await frames_until(owner, f'id="session-{session.pk}"', within=reconcile.bound_seconds())
    # ... and never to another tenant's admin.
    frames = await drain(outsider, quiet=1.5)
    assert not any(str(session.pk) in frame for frame in frames)
    for communicator in (outsider, owner):
        await communicator.disconnect()


async def test_a_socket_far_behind_gets_a_fresh_snapshot(
    world: Any, publishing_lost: None, monkeypatch: Any
) -> None:
    from command_center import consumers

    monkeypatch.setattr(consumers, "REPAIR_LIMIT", 2)
    communicator = await connect(world.owner, "view=list")
    await communicator.receive_from(timeout=10)
    before = repairs()

    def three_at_once() -> list[Any]:
        # One commit, so one reconciliation tick finds all three missing.
        with transaction.atomic():
            return [f.make_session(world.agent, world.owner, title=f"Behind {i}") for i in range(3)]

    made = await sync_to_async(three_at_once)()
    frame, _ = await frames_until(
        communicator, 'id="session-list"', within=reconcile.bound_seconds() + 1
    )
    assert all(f'id="session-{s.pk}"' in frame for s in made)
    assert repairs() == before  # one snapshot, not a load per session
    await communicator.disconnect()

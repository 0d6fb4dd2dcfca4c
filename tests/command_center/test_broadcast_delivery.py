"""Publishing survives the process: a failed publish is retried with its sessions, and a
process that exits inside the coalescing window publishes before it goes."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from unittest import mock

import pytest
from django.test import override_settings

from command_center import broadcast
from tests import factories as f

pytestmark = pytest.mark.django_db(transaction=True)


class FlakyLayer:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("redis restarting")
        self.sent.append((group, message))

    def published(self) -> list[dict[str, Any]]:
        """Each published message once (one message goes to every group that may see it)."""
        return list({id(s): s for _, m in self.sent for s in m["sessions"]}.values())


def wait_for(predicate: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_a_failed_publish_is_retried_with_its_sessions(world: Any, settings: Any) -> None:
    settings.SCC_BROADCAST_COALESCE_MS = 10
    session = f.make_session(world.agent, world.owner)
    broadcast.broadcaster.wait_idle()
    layer = FlakyLayer(failures=2)
    sender = broadcast.Broadcaster()
    with (
        mock.patch.object(broadcast, "get_channel_layer", return_value=layer),
        mock.patch.object(broadcast, "RETRY_DELAYS", (0.05,)),
    ):
        sender.session_changed(session.pk)
        assert wait_for(lambda: layer.sent)
        assert sender.wait_idle()
    assert {s["id"] for _, m in layer.sent for s in m["sessions"]} == {str(session.pk)}


def test_an_exiting_process_publishes_what_is_pending(world: Any) -> None:
    session = f.make_session(world.agent, world.owner)
    broadcast.broadcaster.wait_idle()
    layer = FlakyLayer(failures=0)
    sender = broadcast.Broadcaster()
    with (
        # Far longer than the process lives; only around this sender, so the process-wide
        # broadcaster never schedules with it.
        override_settings(SCC_BROADCAST_COALESCE_MS=60_000),
        mock.patch.object(broadcast, "get_channel_layer", return_value=layer),
    ):
        # The first change of a quiet session goes at once; the next one waits for the window
        # to close, which this process does not live to see.
        sender.session_changed(session.pk)
        assert wait_for(lambda: len(layer.published()) == 1)
        sender.session_changed(session.pk)
        time.sleep(0.1)
        assert len(layer.published()) == 1
        sender.flush_at_exit()
    assert len(layer.published()) == 2
    assert {s["id"] for _, m in layer.sent for s in m["sessions"]} == {str(session.pk)}


def test_a_quiet_session_is_published_at_once_and_then_coalesced(world: Any) -> None:
    session = f.make_session(world.agent, world.owner)
    other = f.make_session(world.agent, world.owner)
    broadcast.broadcaster.wait_idle()
    layer = FlakyLayer(failures=0)
    sender = broadcast.Broadcaster()
    with (
        override_settings(SCC_BROADCAST_COALESCE_MS=2000),
        mock.patch.object(broadcast, "get_channel_layer", return_value=layer),
    ):
        started = time.monotonic()
        sender.session_changed(session.pk)
        assert wait_for(lambda: len(layer.published()) == 1)
        assert time.monotonic() - started < 1.5  # not after the 2 s window
        # Within the window: these wait and go together, once.
        sender.session_changed(session.pk)
        sender.session_changed(session.pk)
        # Another session, quiet so far, is not held back by the busy one.
        sender.session_changed(other.pk)
        assert wait_for(lambda: len(layer.published()) == 2, timeout=1.5)
        assert time.monotonic() - started < 1.9
        assert layer.published()[1]["id"] == str(other.pk), [
            (m["id"], m.get("version"), g) for g, m0 in layer.sent for m in m0["sessions"]
        ]
        assert wait_for(lambda: len(layer.published()) == 3, timeout=4.0)
        elapsed = time.monotonic() - started
        assert sender.wait_idle()
    assert elapsed >= 1.95
    assert [m["id"] for m in layer.published()] == [
        str(session.pk),
        str(other.pk),
        str(session.pk),
    ]


def test_flush_at_exit_with_nothing_pending_returns_at_once() -> None:
    started = time.monotonic()
    broadcast.Broadcaster().flush_at_exit()
    assert time.monotonic() - started < 0.1


class SlowLayer(FlakyLayer):
    """Takes `delay` s per send, the first `failures` of them failing after the wait."""

    def __init__(self, delay: float, failures: int = 0) -> None:
        super().__init__(failures)
        self.delay = delay
        self.started = 0

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        self.started += 1
        await asyncio.sleep(self.delay)
        await super().group_send(group, message)


@pytest.mark.parametrize("failures", [0, 1])
def test_an_exiting_process_waits_for_the_publish_under_way(world: Any, failures: int) -> None:
    # A quiet session's change is sent at once from the broadcast thread; the process exiting
    # meanwhile must not stop that send half way (it ran daemon and died with the interpreter).
    # A send that fails as the process exits is made again by the exit flush itself.
    session = f.make_session(world.agent, world.owner)
    broadcast.broadcaster.wait_idle()
    layer = SlowLayer(delay=0.3, failures=failures)
    sender = broadcast.Broadcaster()
    with mock.patch.object(broadcast, "get_channel_layer", return_value=layer):
        sender.session_changed(session.pk)
        assert wait_for(lambda: layer.started >= 1)
        assert layer.published() == []  # still on its way as the exit begins
        sender.flush_at_exit()
        assert [m["id"] for m in layer.published()] == [str(session.pk)]


def test_changes_to_many_quiet_sessions_go_out_together(world: Any) -> None:
    # Each session is quiet, so each would publish at once; but flushes start at most every
    # FLUSH_GAP_SECONDS, and a flush sends one message per group with all its sessions.
    sessions = [f.make_session(world.agent, world.owner) for _ in range(10)]
    broadcast.broadcaster.wait_idle()
    layer = FlakyLayer(failures=0)
    sender = broadcast.Broadcaster()
    with (
        override_settings(SCC_BROADCAST_COALESCE_MS=2000),
        mock.patch.object(broadcast, "FLUSH_GAP_SECONDS", 0.3),
        mock.patch.object(broadcast, "get_channel_layer", return_value=layer),
    ):
        started = time.monotonic()
        sender.session_changed(sessions[0].pk)
        assert wait_for(lambda: len(layer.published()) == 1)
        assert time.monotonic() - started < 0.25  # a quiet process publishes at once
        for session in sessions[1:]:
            sender.session_changed(session.pk)
            time.sleep(0.005)
        assert wait_for(lambda: len(layer.published()) == 10, timeout=3)
        elapsed = time.monotonic() - started
        assert sender.wait_idle()
    owner_group = f"scc.u{world.owner.pk}"
    per_message = [len(m["sessions"]) for g, m in layer.sent if g == owner_group]
    # The other nine, each quiet, go together after the gap (not each at once, and not after
    # the 2 s window).
    assert per_message == [1, 9]
    assert 0.25 <= elapsed < 1.5
    assert {s["id"] for s in layer.published()} == {str(s.pk) for s in sessions}

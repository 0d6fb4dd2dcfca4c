"""Snapshots are shared between sockets asking for the same view at the same time, and never
older than the asking socket's membership of its push groups."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from command_center import snapshots


class Builds:
    """A snapshot maker that counts its builds and can be held until released."""

    def __init__(self) -> None:
        self.count = 0
        self.release = threading.Event()

    def make(self) -> snapshots.Snapshot:
        self.count += 1
        n = self.count
        self.release.wait(5)
        return snapshots.Snapshot(f"build {n}", None)


async def test_sockets_asking_at_once_share_one_build() -> None:
    shared = snapshots.SharedBuilds()
    builds = Builds()
    joined = time.monotonic()
    waiting = [
        asyncio.ensure_future(shared.get("view", joined_at=joined, make=builds.make))
        for _ in range(20)
    ]
    await asyncio.sleep(0.05)
    builds.release.set()
    results = await asyncio.gather(*waiting)
    assert builds.count == 1
    assert {r.html for r in results} == {"build 1"}
    # Positive control: another view builds on its own.
    other = await shared.get("other view", joined_at=joined, make=builds.make)
    assert other.html == "build 2"


async def test_a_build_older_than_the_socket_is_not_reused() -> None:
    shared = snapshots.SharedBuilds()
    builds = Builds()
    builds.release.set()
    first = await shared.get("view", joined_at=time.monotonic(), make=builds.make)
    # A socket that joined before that build started may have it...
    reused = await shared.get("view", joined_at=0.0, make=builds.make)
    # ...one that joined after it started may not: a change in between would be missing.
    await asyncio.sleep(0.01)
    fresh = await shared.get("view", joined_at=time.monotonic(), make=builds.make)
    assert (first.html, reused.html, fresh.html) == ("build 1", "build 1", "build 2")


async def test_a_failed_build_is_not_shared_with_later_sockets() -> None:
    shared = snapshots.SharedBuilds()
    calls: list[int] = []

    def failing() -> snapshots.Snapshot:
        calls.append(1)
        raise ConnectionError("database away")

    joined = time.monotonic()
    with pytest.raises(ConnectionError):
        await shared.get("view", joined_at=joined, make=failing)
    ok: Any = await shared.get(
        "view", joined_at=joined, make=lambda: snapshots.Snapshot("ok", None)
    )
    assert ok.html == "ok"
    assert calls == [1]


class Timed:
    """A maker that records how many of its builds run at once and can be held."""

    def __init__(self) -> None:
        self.count = 0
        self.running = 0
        self.most_at_once = 0
        self.release = threading.Event()
        self.lock = threading.Lock()

    def make(self) -> snapshots.Snapshot:
        with self.lock:
            self.count += 1
            n = self.count
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        self.release.wait(5)
        with self.lock:
            self.running -= 1
        return snapshots.Snapshot(f"build {n}", None)


async def test_sockets_joining_during_a_build_share_the_next_one() -> None:
    shared = snapshots.SharedBuilds()
    builds = Timed()
    first = asyncio.ensure_future(shared.get("view", joined_at=0.0, make=builds.make))
    await asyncio.sleep(0.05)
    # These joined after the running build started: it may not hold their changes.
    late = [
        asyncio.ensure_future(shared.get("view", joined_at=time.monotonic(), make=builds.make))
        for _ in range(20)
    ]
    await asyncio.sleep(0.05)
    assert builds.count == 1  # the next build waits for the running one
    builds.release.set()
    assert (await first).html == "build 1"
    assert {r.html for r in await asyncio.gather(*late)} == {"build 2"}
    assert (builds.count, builds.most_at_once) == (2, 1)


async def test_a_queued_build_starts_after_the_sockets_waiting_for_it_joined() -> None:
    shared = snapshots.SharedBuilds()
    builds = Timed()
    starts: list[float] = []

    def make() -> snapshots.Snapshot:
        starts.append(time.monotonic())
        return builds.make()

    first = asyncio.ensure_future(shared.get("view", joined_at=0.0, make=make))
    await asyncio.sleep(0.05)
    joined = time.monotonic()
    late = asyncio.ensure_future(shared.get("view", joined_at=joined, make=make))
    await asyncio.sleep(0.05)
    builds.release.set()
    await first
    assert (await late).html == "build 2"
    assert starts[0] < joined <= starts[1]


async def test_a_failed_build_still_starts_the_one_queued_behind_it() -> None:
    shared = snapshots.SharedBuilds()
    release = threading.Event()

    def failing() -> snapshots.Snapshot:
        release.wait(5)
        raise ConnectionError("database away")

    first = asyncio.ensure_future(shared.get("view", joined_at=0.0, make=failing))
    await asyncio.sleep(0.05)
    late = asyncio.ensure_future(
        shared.get("view", joined_at=time.monotonic(), make=lambda: snapshots.Snapshot("ok", None))
    )
    await asyncio.sleep(0.05)
    release.set()
    with pytest.raises(ConnectionError):
        await first
    assert (await late).html == "ok"

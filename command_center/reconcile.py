"""Repairs pushes that never reached a dashboard socket.

The broadcaster (broadcast.py) publishes every committed change once, retries failed publishes
and flushes on exit, but a push can still go missing: the process that committed is killed
inside its coalescing window, Redis restarts between a publish and the moment this process's
subscriber is back, Redis drops a slow subscriber. So each web process that holds dashboard
sockets runs one small loop: every `SCC_RECONCILE_MS` it reads which sessions changed in the
last `WINDOW` (id, version and visibility facts: one query on the `updated_at` index, whose
cost follows the number of recent changes, never the number of sessions) and hands its sockets
the versions it read on the PREVIOUS tick, each under the channel-layer groups its push would
have gone to. A socket loads and pushes only the sessions it may see and was not pushed at
least that version (consumers.py, `reconcile`).

Why the previous tick: a version read a tick ago was committed a whole tick ago, far past the
normal path's 100 ms, so a socket behind it really missed a push; and a session that changes
all the time is still compared (a window ending "a second ago" would never contain it). Each
version is handed over once (on the tick after it was first read), so a socket's work per tick
is about what filtering the last tick's pushes cost it: integer comparisons.

Why here and not in a Celery beat task: only the socket knows what it was pushed; and this
keeps working while Redis is away, since it reads the database and writes to sockets of this
very process.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from datetime import timedelta
from typing import Any, Protocol

from channels.db import database_sync_to_async
from django.conf import settings
from django.utils import timezone

from command_center.broadcast import groups_for_session
from sessions_app import edge, selectors

log = logging.getLogger(__name__)

# How far back each tick looks: a transaction that commits up to WINDOW minus one tick after
# it stamped `updated_at` is still seen.
WINDOW = timedelta(seconds=10)
# What the repair may take beyond its two ticks: the query, the load and the render.
LOAD_SECONDS = 1.0


def bound_seconds() -> float:
    """The longest a committed change can take to reach an open dashboard through the repair
    alone (the guarantee docs/architecture.md states): read on the first tick after its commit,
    compared on the next, then loaded and pushed."""
    return 2 * settings.SCC_RECONCILE_MS / 1000 + LOAD_SECONDS


# group name -> the changes whose push went (or should have gone) to that group
Routed = dict[str, list[dict[str, Any]]]


class Watcher(Protocol):
    async def reconcile(self, changes: Routed) -> None: ...


class Reconciler:
    """One per process. Runs on the event loop of the sockets it serves, only while at least
    one is open, so a process without dashboards (a worker, a test) queries nothing."""

    def __init__(self) -> None:
        self._watchers: weakref.WeakSet[Any] = weakref.WeakSet()
        self._task: asyncio.Task[None] | None = None
        # What the last tick read (handed over on the next one), and the version of each
        # session handed over last (never twice).
        self._previous: list[dict[str, Any]] = []
        self._handed: dict[Any, int] = {}

    def watch(self, watcher: Watcher) -> None:
        if settings.SCC_RECONCILE_MS <= 0:
            return
        self._watchers.add(watcher)
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._previous, self._handed = [], {}
            self._task = loop.create_task(self._run())

    def unwatch(self, watcher: Watcher) -> None:
        self._watchers.discard(watcher)
        if not self._watchers and self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        while self._watchers:
            await asyncio.sleep(settings.SCC_RECONCILE_MS / 1000)
            await self.tick()

    async def tick(self) -> None:
        now = timezone.now()
        try:
            current = await database_sync_to_async(selectors.sessions_changed_since)(now - WINDOW)
        except edge.DB_UNAVAILABLE as exc:
            # The sockets learn about the outage from their own queries (1013); the window
            # covers this tick's changes on the next one.
            log.warning("reconciliation skipped, database unavailable: %s", exc)
            return
        due = [c for c in self._previous if self._handed.get(c["id"]) != c["version"]]
        self._handed = {c["id"]: c["version"] for c in self._previous}
        self._previous = current
        if not due:
            return
        routed: Routed = {}
        for change in due:
            for group in groups_for_session(change):
                routed.setdefault(group, []).append(change)
        for watcher in list(self._watchers):
            try:
                await watcher.reconcile(routed)
            except Exception:  # one broken socket must not stop the repair for the others
                log.exception("reconciliation of a dashboard socket failed")


reconciler = Reconciler()

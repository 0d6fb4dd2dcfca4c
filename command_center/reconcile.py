"""Repairs pushes that never reached a dashboard socket.

The broadcaster (broadcast.py) publishes every committed change once, retries failed publishes
and flushes on exit, but a push can still go missing: the process that committed is killed
inside its coalescing window, Redis restarts between a publish and the moment this process's
subscriber is back, Redis drops a slow subscriber. So each web process that holds dashboard
sockets runs one small loop: every `SCC_RECONCILE_MS` it reads which sessions changed in the
last `WINDOW` seconds (id, version and visibility facts, one index-served query whatever the
number of sessions) and hands the list to each of its sockets, which loads and pushes only the
sessions it may see and has not been pushed at that version (consumers.py, `reconcile`).

Why here and not in a Celery beat task: the repair needs to know what each socket was actually
pushed, which only the socket knows; and it keeps working while Redis is away, since it reads
the database and writes to sockets of this very process. One query per process per tick, and a
load only for what is really missing.
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

from sessions_app import edge, selectors

log = logging.getLogger(__name__)

# Changes younger than this are left to the normal path (a 100 ms coalescing window, then the
# publish); the repair starts after it.
GRACE = timedelta(seconds=1)
# How far back each tick looks. Every change is compared on several ticks, so one failed tick
# (the database away for a moment) loses nothing, and a transaction that commits up to
# WINDOW - GRACE after it stamped `updated_at` is still seen.
WINDOW = timedelta(seconds=15)


def bound_seconds() -> float:
    """The longest a committed change can take to reach an open dashboard through the repair
    alone (the guarantee docs/architecture.md states): the grace, one tick, and the load."""
    return GRACE.total_seconds() + settings.SCC_RECONCILE_MS / 1000 + 1.0


class Watcher(Protocol):
    async def reconcile(self, changes: list[dict[str, Any]]) -> None: ...


class Reconciler:
    """One per process. Runs on the event loop of the sockets it serves, only while at least
    one is open, so a process without dashboards (a worker, a test) queries nothing."""

    def __init__(self) -> None:
        self._watchers: weakref.WeakSet[Any] = weakref.WeakSet()
        self._task: asyncio.Task[None] | None = None

    def watch(self, watcher: Watcher) -> None:
        if settings.SCC_RECONCILE_MS <= 0:
            return
        self._watchers.add(watcher)
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
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
            changes = await database_sync_to_async(selectors.sessions_changed_between)(
                start=now - WINDOW, end=now - GRACE
            )
        except edge.DB_UNAVAILABLE as exc:
            # The sockets learn about the outage from their own queries (1013); the window
            # covers this tick's changes on the next one.
            log.warning("reconciliation skipped, database unavailable: %s", exc)
            return
        if not changes:
            return
        for watcher in list(self._watchers):
            try:
                await watcher.reconcile(changes)
            except Exception:  # one broken socket must not stop the repair for the others
                log.exception("reconciliation of a dashboard socket failed")


reconciler = Reconciler()

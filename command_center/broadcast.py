"""Publishes session changes to the dashboards, once per change burst.

The domain calls `hooks.session_changed(id)` after commit. Here those ids are coalesced per
session for a short window, each changed session is loaded and its HTML rendered ONCE (from the
same partials the pages use), and one message goes to the channel-layer groups that may see it.
Consumers then only filter and forward; they never render rows themselves.

Groups (so a push reaches only the sockets that may see the session):
  scc.u<user>        the session owner and the agent owner
  scc.t<tenant>.adm  tenant admins
  scc.p<project>.dev project developers and up (flow runs and background tasks only)
  scc.all            superusers
  scc.access.u<user> every dashboard of one person, told when their access changed
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from celery.signals import worker_process_shutdown
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connections

from command_center import fragments
from sessions_app import metrics, rows
from sessions_app.models import AgentSession
from sessions_app.states import Kind

log = logging.getLogger(__name__)

# One message per group and flush, carrying every session of the flush that group may see:
# a socket gets one frame per flush however many sessions changed.
MESSAGE_TYPE = "session.changes"
ACCESS_MESSAGE_TYPE = "access.changed"

# A failed publish keeps its sessions and is tried again after these delays (then every 30 s).
RETRY_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
# The shortest time between two flushes' starts (see session_changed).
FLUSH_GAP_SECONDS = 0.05
# How long a process that is exiting waits for its last publish.
EXIT_FLUSH_TIMEOUT = 5.0


def groups_for_session(facts: Mapping[str, Any]) -> list[str]:
    groups = {
        f"scc.u{facts['owner_id']}",
        f"scc.u{facts['agent_owner_id']}",
        f"scc.t{facts['tenant_id']}.adm",
        "scc.all",
    }
    if facts["kind"] != Kind.CHAT:
        groups.add(f"scc.p{facts['project_id']}.dev")
    return sorted(groups)


def access_group(user_id: int) -> str:
    """Every dashboard socket of one person, told when their access changes."""
    return f"scc.access.u{user_id}"


def groups_for_access(access: Any) -> list[str]:
    if access.superuser:
        return ["scc.all"]
    groups = [f"scc.u{access.user_id}"]
    groups += [f"scc.t{t}.adm" for t in sorted(access.admin_tenant_ids)]
    groups += [f"scc.p{p}.dev" for p in sorted(access.developer_project_ids)]
    return groups


def summary_for(session: AgentSession) -> dict[str, Any]:
    """Everything a consumer needs to decide visibility, filter match and placement, plus the
    viewer-independent HTML."""
    return {
        "id": str(session.pk),
        "deleted": False,
        "version": session.version,
        "tenant_id": session.tenant_id,
        "project_id": session.project_id,
        "agent_id": session.agent_id,
        "agent_owner_id": session.agent.owner_id,
        "owner_id": session.owner_id,
        "initiative_id": session.initiative_id,
        "kind": session.kind,
        "status": session.status,
        "status_group": session.status_group,
        "live": session.live,
        "stalled": session.stalled,
        "agent_status": session.agent_status,
        "title": session.title,
        "short_id": session.short_id,
        "last_activity_at": session.last_activity_at.isoformat(),
        "archived": session.archived_at is not None,
        "html": fragments.session_fragments(session),
    }


BROADCAST_RELATED = ("agent", "owner", "project", "initiative")


def build_messages(session_ids: Iterable[uuid.UUID]) -> list[dict[str, Any]]:
    # Hand-written (sessions_app/rows.py): every change reads this; the ORM's query building
    # cost more than the database's work.
    return [summary_for(s) for s in rows.sessions_by_id(list(session_ids), BROADCAST_RELATED)]


def deleted_messages(facts: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            **f,
            "id": str(f["id"]),
            "deleted": True,
            "version": 2**31,
            "html": fragments.deleted_fragments(str(f["id"])),
        }
        for f in facts
    ]


class Broadcaster:
    """One per process: a daemon thread with its own event loop owns the channel-layer
    connection, so publishing never blocks a request, a worker task or a sweep."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid: int | None = None
        # Changed sessions not yet published, each with the time it is due (monotonic).
        self._pending: dict[uuid.UUID, float] = {}
        self._deleted: list[Mapping[str, Any]] = []
        # When the oldest change not yet published was committed (for the broadcast lag metric).
        self._since: float | None = None
        self._scheduled = False
        # When the scheduled flush fires (monotonic), and which schedule is current: an earlier
        # flush may be scheduled over a later one, which then finds itself stale and does nothing.
        self._due = 0.0
        self._generation = 0
        # When each recently published session was last sent: its next change within the
        # coalescing window waits for the window's end, a change after a quiet spell goes now.
        self._published: dict[uuid.UUID, float] = {}
        # Flushes under way (a quiet session may start one while another is still sending).
        self._flushing = 0
        # When the last flush took its sessions (monotonic).
        self._last_flush = 0.0
        self._failures = 0
        self._exiting = False
        # Strong references: the loop keeps only weak ones to tasks it runs.
        self._tasks: set[asyncio.Task[None]] = set()

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        # Re-create after fork: a Celery prefork child inherits the object but not the thread.
        if self._loop is None or self._pid != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="scc-broadcast", daemon=True).start()
            self._loop, self._pid = loop, os.getpid()
            self._scheduled = False
        return self._loop

    def session_changed(self, session_id: uuid.UUID) -> None:
        """Publish now if the session was quiet for the coalescing window, else at the end of
        the window since its last push (taking every change made meanwhile along)."""
        with self._lock:
            now = time.monotonic()
            self._since = self._since or now
            last = self._published.get(session_id)
            window = settings.SCC_BROADCAST_COALESCE_MS / 1000
            due = now if last is None else max(now, last + window)
            # Flushes start at most every FLUSH_GAP_SECONDS (or half the window, if shorter):
            # under a stream of changes to many sessions, each quiet in itself, every socket
            # would otherwise get a frame per change (at 100 changes/s to 100 dashboards, more
            # than one event loop can send). A quiet process still publishes at once.
            due = max(due, self._last_flush + min(FLUSH_GAP_SECONDS, window / 2))
            self._pending[session_id] = min(due, self._pending.get(session_id, due))
            self._schedule(due - now)

    def sessions_deleted(self, facts: list[Mapping[str, Any]]) -> None:
        with self._lock:
            self._deleted.extend(facts)
            self._since = self._since or time.monotonic()
            self._schedule(0.0)

    def _schedule(self, delay: float) -> None:
        """Called with the lock held: make sure a flush fires within `delay`."""
        due = time.monotonic() + delay
        if self._scheduled and self._due <= due:
            return
        self._scheduled, self._due = True, due
        self._generation += 1
        generation = self._generation
        loop = self._ensure_loop()
        loop.call_soon_threadsafe(lambda: loop.call_later(delay, self._start_flush, generation))

    def _start_flush(self, generation: int | None = None) -> None:
        if generation is not None and generation != self._generation:
            return  # replaced by an earlier flush, which reschedules whatever it leaves pending
        task = asyncio.ensure_future(self._flush())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _take(
        self, *, everything: bool = False
    ) -> tuple[set[uuid.UUID], list[Mapping[str, Any]], float | None]:
        """The sessions due now (all of them at exit), and every deletion. Sessions still
        inside their window stay pending, with a flush scheduled for the first of them."""
        with self._lock:
            now = time.monotonic()
            # A few ms of slack: timers fire a little early or late.
            ids = {s for s, due in self._pending.items() if everything or due <= now + 0.005}
            for sid in ids:
                del self._pending[sid]
            deleted, self._deleted = self._deleted, []
            since, self._since = self._since, (now if self._pending else None)
            self._scheduled = False
            self._flushing += 1
            self._last_flush = now
            self._remember_published(ids, now)
            if self._pending:
                self._schedule(max(0.0, min(self._pending.values()) - now))
        return ids, deleted, since

    async def _flush(self) -> None:
        ids, deleted, since = self._take()
        try:
            messages = await sync_to_async(_load, thread_sensitive=False)(ids)
            await _send(messages + deleted_messages(deleted))
        except Exception:
            with self._lock:
                self._since = min(filter(None, (self._since, since)), default=None)
            self._failed(ids, deleted)
        else:
            if since is not None:
                metrics.BROADCAST_LAG.observe(time.monotonic() - since)
            with self._lock:
                self._failures = 0
                self._flushing -= 1

    def _remember_published(self, ids: set[uuid.UUID], now: float) -> None:
        """Called with the lock held, as a flush takes `ids`: their next change waits for the
        window (also while this flush is still sending)."""
        window = settings.SCC_BROADCAST_COALESCE_MS / 1000
        # Forget sessions quiet for longer than the window: the map stays as small as the
        # set of sessions changing right now.
        for sid in [sid for sid, at in self._published.items() if now - at >= window]:
            del self._published[sid]
        for sid in ids:
            self._published[sid] = now

    def _retry(self) -> None:
        with self._lock:
            if self._pending or self._deleted:
                self._schedule(0.0)  # or sooner, if a newer change has a flush on its way

    def _failed(self, ids: set[uuid.UUID], deleted: list[Mapping[str, Any]]) -> None:
        # Keep the sessions and try again: a push is built from the current row, so a late or
        # repeated one is still right (consumers drop versions they have seen).
        with self._lock:
            now = time.monotonic()
            self._pending.update((sid, now) for sid in ids)
            self._deleted = deleted + self._deleted
            delay = RETRY_DELAYS[min(self._failures, len(RETRY_DELAYS) - 1)]
            self._failures += 1
            self._flushing -= 1
            if not self._exiting:
                # A timer of its own: a new change still publishes after the usual short
                # window (taking these sessions along), it never waits out the backoff.
                loop = self._ensure_loop()
                loop.call_soon_threadsafe(lambda: loop.call_later(delay, self._retry))
        log.exception(
            "broadcast of %d session(s) failed; %s",
            len(ids) + len(deleted),
            "left to the exit flush" if self._exiting else f"retrying in {delay:.1f}s",
        )

    def flush_at_exit(self, timeout: float = EXIT_FLUSH_TIMEOUT) -> None:
        """Publish what is pending now instead of after the coalescing window: the process is
        exiting (atexit, a Celery child shutting down), and a committed change must still
        reach the dashboards. Loads in the calling thread: at exit the thread pools that
        sync_to_async uses are already shut down."""
        with self._lock:
            self._exiting = True
            loop = self._loop if self._pid == os.getpid() else None
        if loop is None or not loop.is_running():
            return
        # A quiet session's change is published at once from the broadcast thread, which the
        # interpreter stops mid-send as it exits: wait for flushes under way. One that fails
        # (its thread pool is already shut down at exit) puts its sessions back, sent below.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._flushing:
                    break
            time.sleep(0.005)
        with self._lock:
            pending = bool(self._pending or self._deleted)
        if not pending:
            return
        ids, deleted, _since = self._take(everything=True)
        try:
            messages = _load(ids) + deleted_messages(deleted)
            asyncio.run_coroutine_threadsafe(_send(messages), loop).result(timeout)
        except Exception:
            self._failed(ids, deleted)
        else:
            with self._lock:
                self._flushing -= 1

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until nothing is pending or being published (tests: before the database is
        flushed under a publish that is still reading it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not (self._scheduled or self._flushing or self._pending or self._deleted):
                    return True
            time.sleep(0.01)
        return False


def notify_access_changed(user_ids: list[int]) -> None:
    """`access_changed` listener (after commit): every open dashboard of these people re-checks
    its access at once. A lost message is covered by the consumers' own re-read of an old
    access, so an unreachable channel layer is logged, not raised into the request."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        for user_id in user_ids:
            async_to_sync(layer.group_send)(access_group(user_id), {"type": ACCESS_MESSAGE_TYPE})
    except Exception:
        log.warning("could not announce an access change to %s", user_ids, exc_info=True)


async def _send(messages: list[dict[str, Any]]) -> None:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("CHANNEL_LAYERS is not configured")
    by_group: dict[str, list[dict[str, Any]]] = {}
    for message in messages:
        # Wall-clock: the consumer that forwards it may run in another process.
        message["published_at"] = time.time()
        for group in groups_for_session(message):
            by_group.setdefault(group, []).append(message)
    for group, sessions in by_group.items():
        await layer.group_send(group, {"type": MESSAGE_TYPE, "sessions": sessions})


def _load(ids: set[uuid.UUID]) -> list[dict[str, Any]]:
    try:
        return build_messages(ids) if ids else []
    finally:
        # A pool thread, not a request: do not leave its connection open between flushes.
        connections.close_all()


def _flush_worker_child(**_: Any) -> None:
    broadcaster.flush_at_exit()


broadcaster = Broadcaster()
# Exit paths: a normal interpreter exit (management commands, daphne), and a Celery pool child
# being recycled or shut down, which leaves with os._exit and so skips atexit.
atexit.register(broadcaster.flush_at_exit)
worker_process_shutdown.connect(_flush_worker_child, weak=False)

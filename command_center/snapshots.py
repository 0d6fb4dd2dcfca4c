"""What a dashboard socket sends on (re)connect, built once per view and shared.

After a server restart every open dashboard reconnects within seconds, most of them showing the
same view to the same person (an operator's several tabs, a wall display, a team on one list).
Building a snapshot costs a page of queries and renders; here sockets asking for the same view
(same person, same access, same page and filter) share one build.

Sharing must not lose a change. A socket joins its push groups first and asks for a snapshot
after; it may take a build that *started* after it joined (any change committed before that
start is in the build, any later one reaches the socket as a push), never an older one. So a
shared snapshot is never staler than one the socket would have built itself.

The same holds for the access a socket reads when it connects: every socket of one person that
joined its access group before a read started may take that read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from channels.db import database_sync_to_async

from command_center import fragments
from sessions_app import errors, selectors
from sessions_app.states import Kind

# How long a finished build stays available to sockets that joined before it started.
KEEP_SECONDS = 2.0


@dataclass(frozen=True)
class Snapshot:
    html: str | None  # None: the detail view's session is gone or not visible
    next_move: datetime | None
    last_seq: int = 0
    composer_open: bool = False


def build(user: Any, view: str, flt: selectors.SessionFilter, session_id: str | None) -> Snapshot:
    """The panel (body and counts) and the view's own part: the list's first page, or the
    detail page's header, side and transcript."""
    next_move = selectors.panel_next_move(user)
    parts = fragments.panel_body_and_counts_html(user)
    if view == "list":
        page = selectors.session_page(user, flt, limit=50)
        parts.append(fragments.list_html(page, flt))
        parts.append(fragments.new_banner_html(0))
        return Snapshot("".join(parts), next_move)
    if view == "detail":
        try:
            session = selectors.session_get_for_user(user, session_id)
        except errors.NotFound:
            return Snapshot(None, next_move)
        parts += [
            fragments.header_html(user, session),
            fragments.side_html(user, session),
            fragments.transcript_html(session),
        ]
        return Snapshot(
            "".join(parts),
            next_move,
            last_seq=session.last_seq,
            composer_open=session.kind == Kind.CHAT and not session.is_terminal,
        )
    return Snapshot("".join(parts), next_move)


class SharedBuilds:
    """One per process: per key (a view, or a person's access), the latest build and the one
    queued behind it.

    At most one build per key runs at a time. A socket that joined its groups after the running
    build started may not have that build; it waits for the next one, which starts the moment
    the running one ends and serves every socket that arrived meanwhile. So in a reconnect storm
    a view is built back to back, not once per socket, and no socket gets a build older than
    its joining."""

    def __init__(self) -> None:
        self._latest: dict[Hashable, tuple[float, asyncio.Future[Any]]] = {}
        self._queued: dict[Hashable, asyncio.Future[Any]] = {}

    async def get(self, key: Hashable, *, joined_at: float, make: Callable[[], Any]) -> Any:
        """The result of `make` for `key` from a build started at or after `joined_at` (when
        the asking socket had joined its groups), starting or queueing one if there is none."""
        now = time.monotonic()
        self._forget_old(now)
        latest = self._latest.get(key)
        if latest is not None and latest[0] >= joined_at:
            future = latest[1]
        elif latest is not None and not latest[1].done():
            future = self._queued.get(key) or self._queue(key, latest[1], make)
        else:
            future = self._start(key, make, now)
        # Shielded: one socket going away must not cancel the build others wait for.
        return await asyncio.shield(future)

    def _start(self, key: Hashable, make: Callable[[], Any], now: float) -> asyncio.Future[Any]:
        # Off the one thread that serialises this process's other thread-sensitive database
        # work: a storm of builds must not hold up the handshakes behind it, which daphne drops
        # after 5 s.
        future: asyncio.Future[Any] = asyncio.ensure_future(
            database_sync_to_async(make, thread_sensitive=False)()
        )
        entry = (now, future)
        self._latest[key] = entry

        def forget_failed(done: asyncio.Future[Any]) -> None:
            # A failed build (the database away) is not shared with later sockets.
            if (done.cancelled() or done.exception() is not None) and self._latest.get(
                key
            ) is entry:
                del self._latest[key]

        future.add_done_callback(forget_failed)
        return future

    def _queue(
        self, key: Hashable, running: asyncio.Future[Any], make: Callable[[], Any]
    ) -> asyncio.Future[Any]:
        queued: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queued[key] = queued

        def start(_: object) -> None:
            if self._queued.get(key) is queued:
                del self._queued[key]
            # It starts after every socket waiting for it had joined: it is fresh for all.
            build = self._start(key, make, time.monotonic())
            build.add_done_callback(lambda b: _settle(queued, b))

        running.add_done_callback(start)
        return queued

    def _forget_old(self, now: float) -> None:
        for key in [
            k for k, (at, f) in self._latest.items() if f.done() and now - at > KEEP_SECONDS
        ]:
            del self._latest[key]


def _settle(target: asyncio.Future[Any], source: asyncio.Future[Any]) -> None:
    """Hand `source`'s outcome to `target` (a queued build's waiters)."""
    if target.done():
        return
    if source.cancelled():
        target.cancel()
    elif (exc := source.exception()) is not None:
        target.set_exception(exc)
    else:
        target.set_result(source.result())


shared = SharedBuilds()
# The access of each person whose sockets are (re)connecting, read once for all of them: a read
# that started after a socket had joined its access group is as good as its own (a later
# change reaches it as `access.changed`).
access_reads = SharedBuilds()

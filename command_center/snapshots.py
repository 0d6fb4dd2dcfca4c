"""What a dashboard socket sends on (re)connect, built once per view and shared.

After a server restart every open dashboard reconnects within seconds, most of them showing the
same view to the same person (an operator's several tabs, a wall display, a team on one list).
Building a snapshot costs a page of queries and renders; here sockets asking for the same view
(same person, same access, same page and filter) share one build.

Sharing must not lose a change. A socket joins its push groups first and asks for a snapshot
after; it may take a build that *started* after it joined (any change committed before that
start is in the build, any later one reaches the socket as a push), never an older one. So a
shared snapshot is never staler than one the socket would have built itself.
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
    parts = [fragments.panel_body_html(user), fragments.panel_counts_html(user)]
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


class SharedSnapshots:
    """One per process: builds in flight or just finished, by view."""

    def __init__(self) -> None:
        self._builds: dict[Hashable, tuple[float, asyncio.Future[Snapshot]]] = {}

    async def get(self, key: Hashable, *, joined_at: float, make: Callable[[], Snapshot]) -> Any:
        """The snapshot for `key` from a build started at or after `joined_at` (when the
        asking socket had joined its groups), starting one if there is none."""
        now = time.monotonic()
        self._forget_old(now)
        found = self._builds.get(key)
        if found is None or found[0] < joined_at:
            # Off the one thread that serialises this process's other database work (the
            # session lookup of every handshake): a storm of snapshots must not hold up the
            # handshakes behind it, which daphne drops after 5 s.
            future = asyncio.ensure_future(database_sync_to_async(make, thread_sensitive=False)())
            found = (now, future)
            self._builds[key] = found
            future.add_done_callback(lambda f, k=key, e=found: self._forget_failed(k, e, f))
        # Shielded: one socket going away must not cancel the build others wait for.
        return await asyncio.shield(found[1])

    def _forget_old(self, now: float) -> None:
        for key in [
            k for k, (at, f) in self._builds.items() if f.done() and now - at > KEEP_SECONDS
        ]:
            del self._builds[key]

    def _forget_failed(self, key: Hashable, entry: Any, future: asyncio.Future[Snapshot]) -> None:
        # A failed build (the database away) is not shared with later sockets.
        if (future.cancelled() or future.exception() is not None) and self._builds.get(
            key
        ) is entry:
            del self._builds[key]


shared = SharedSnapshots()

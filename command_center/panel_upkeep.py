"""What keeps a dashboard socket's panel true between pushes: its counts, re-read after the
pushes that move sessions between sections, and the sections themselves, which change with time
alone. Both reads are shared by the dashboards of one person with the same access
(snapshots.py): the same push or the same moment reaches all of them at once."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from command_center import fragments, snapshots
from sessions_app import selectors

COUNTS_DEBOUNCE_SECONDS = 1.0
# With nothing due, the clock watcher still wakes this often (a push wakes it sooner).
CLOCK_IDLE_SECONDS = 3600.0


class PanelUpkeep:
    """Mixed into the dashboard consumer, which sets these in connect()."""

    user: Any
    access: selectors.Access
    view: str
    flt: selectors.SessionFilter
    paged: bool
    _next_move: datetime | None
    _clock_changed: asyncio.Event
    _counts_task: asyncio.Task[None] | None

    if TYPE_CHECKING:
        # The consumer's own (declared only for the type checker: a definition here would
        # come first in the consumer's MRO and replace it).
        async def send(
            self, text_data: str | None = None, bytes_data: bytes | None = None
        ) -> None: ...

    async def _watch_clock(self) -> None:
        """Sections change with time alone (a chat quiet for 30 minutes leaves Active Now, a day
        later Recent lets go): when the earliest such moment passes, send the panel (and a list
        filtered to Active Now) again, as a reconnect would."""
        while True:
            wait = CLOCK_IDLE_SECONDS
            if self._next_move is not None:
                wait = (self._next_move - timezone.now()).total_seconds()
            if wait > 0:
                self._clock_changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._clock_changed.wait(), timeout=min(wait, 3600))
                continue
            # Every dashboard of this person waits for the same moment: a build started after
            # it serves them all.
            due_at = time.monotonic() + wait
            self._next_move = None
            with_list = self.view == "list" and self.flt.active_only and not self.paged
            refreshed: snapshots.Snapshot = await snapshots.shared.get(
                ("clock", self.user.pk, self.access, self.flt if with_list else None),
                joined_at=due_at,
                make=functools.partial(self._time_refresh, with_list),
            )
            self._next_move = refreshed.next_move
            await self.send(text_data=refreshed.html or "")

    def _time_refresh(self, with_list: bool) -> snapshots.Snapshot:
        next_move = selectors.panel_next_move(self.user)
        parts = [fragments.panel_body_html(self.user), fragments.panel_counts_html(self.user)]
        if with_list:
            parts.append(fragments.list_html(selectors.session_page(self.user, self.flt), self.flt))
        return snapshots.Snapshot("".join(parts), next_move)

    # --- counts -----------------------------------------------------------------------------

    def _counts_task_running(self) -> bool:
        return self._counts_task is not None and not self._counts_task.done()

    def _schedule_counts(self) -> None:
        # A burst of pushes refreshes the counts once.
        if not self._counts_task_running():
            self._counts_task = asyncio.ensure_future(self._refresh_counts(time.monotonic()))

    async def _refresh_counts(self, asked_at: float) -> None:
        await asyncio.sleep(COUNTS_DEBOUNCE_SECONDS)
        # The same push reaches every dashboard of this person at once, and each asks for the
        # counts a second later: one read serves them all. A read started after the push that
        # asked for it includes its change.
        counts: snapshots.Snapshot = await snapshots.shared.get(
            ("counts", self.user.pk, self.access),
            joined_at=asked_at,
            make=lambda: snapshots.Snapshot(fragments.panel_counts_html(self.user), None),
        )
        await self.send(text_data=counts.html or "")

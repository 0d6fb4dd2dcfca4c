"""The dashboard socket: /ws/command-center/?view=list|detail|none&<filter>|session=<id>.

Holds its viewer's access and current view, sends a full snapshot on every (re)connect (so no
view is stale after a drop or a server restart), then forwards only the pushes this viewer may
see and that match the view: rows inserted, updated, moved or removed; panel items moved
between sections; transcript lines appended; counts refreshed (debounced).

The access it holds is re-read whenever it may have changed: the `access_changed` hook sends
`access.changed` to the viewer's access group after a membership, role or agent ownership
changes, and the socket re-reads its access, re-joins its groups and re-sends its snapshot
(rows the viewer may no longer see disappear; a detail view of a session they may no longer
see closes with 4403). As a backstop for changes made around the services, an access older than
ACCESS_MAX_AGE_SECONDS is re-read before the next push is filtered.

Pushes can go missing on the way (a process killed before it published, a Redis restart): the
process's reconciler (reconcile.py) hands every socket the recent changes every few seconds,
and the socket loads and pushes those it may see and was not pushed (`reconcile`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.utils import timezone

from command_center import broadcast, compose, filters, fragments, snapshots
from command_center.broadcast import access_group, groups_for_access
from command_center.panel_upkeep import PanelUpkeep
from command_center.reconcile import Routed, reconciler
from sessions_app import edge, errors, metrics, selectors

log = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_BAD_REQUEST = 4400
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
ACCESS_MAX_AGE_SECONDS = 60.0
SNAPSHOT_MIN_INTERVAL = 1.0
# A snapshot shows what had committed when it was read; a change stamped shortly before may
# have committed after, so the repair still considers changes this much older than a snapshot.
SNAPSHOT_SLACK = timedelta(seconds=2)
# A socket that missed more pushes than this in one reconciliation tick gets a fresh snapshot
# instead of one load per session.
REPAIR_LIMIT = 50


class CommandCenterConsumer(PanelUpkeep, edge.GuardedConsumer, AsyncWebsocketConsumer):
    groups_joined: list[str]
    _snapshot_task: asyncio.Task[None] | None = None
    _last_snapshot = 0.0

    async def connect(self) -> None:
        # Set before any early close: disconnect() reads them whatever connect() got to.
        self.groups_joined = []
        self._counts_task: asyncio.Task[None] | None = None
        self._clock_task: asyncio.Task[None] | None = None
        self._next_move: datetime | None = None
        self._clock_changed = asyncio.Event()
        # Pushes and repairs of one socket take turns (a detail view appends transcript lines
        # after the last one it sent, which two at once would both send).
        self._push_lock = asyncio.Lock()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            # Accept first so the close code reaches the browser: a refused handshake looks
            # like 1006, which the htmx ws extension retries forever.
            await self.accept()
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        params = {
            k: v[-1]
            for k, v in parse_qs(self.scope["query_string"].decode("utf-8", "replace")).items()
        }
        self.view = params.get("view", "none")
        self.session_id: str | None = None
        self.flt = selectors.SessionFilter()
        self.paged = False
        self.new_count = 0
        self.seen: dict[str, int] = {}
        self.sections: dict[str, str | None] = {}
        self.last_seq = 0
        self.composer_open = False
        try:
            if self.view == "list":
                self.flt = filters.parse_filter(params)
            elif self.view == "detail":
                self.session_id = str(params["session"])
        except (filters.BadFilter, KeyError):
            await self.accept()
            await self.close(code=CLOSE_BAD_REQUEST)
            return
        self.user = user
        # Handshake first: in a reconnect storm the rest may queue behind other sockets' work,
        # and daphne drops a handshake that is not answered within 5 s.
        await self.accept()
        await self._join()
        self._counted = True
        metrics.OPEN_SOCKETS.labels("dashboard").inc()
        self._watch_from = timezone.now() - SNAPSHOT_SLACK
        snapshot = await self._snapshot()
        self._last_snapshot = time.monotonic()
        if snapshot is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        await self.send(text_data=snapshot)
        self._clock_task = asyncio.ensure_future(self._watch_clock())
        reconciler.watch(self)

    async def _join(self) -> None:
        """Join this socket's groups on connect, reading the access they follow from. The
        access group comes first: from then on an access change reaches this socket as
        `access.changed`, so a read started after that moment is fresh enough, and every socket
        of the person joining meanwhile shares one (a whole office reconnecting after a
        restart reads each person's access once, not once per tab). The read and the joins
        stay off the one shared database thread, which the handshakes behind it wait for."""
        user = self.user
        personal = access_group(user.pk)
        self.groups_joined = [personal]
        await self.channel_layer.group_add(personal, self.channel_name)
        self.access = await snapshots.access_reads.get(
            # The user object's own flags are part of the access read from it.
            (user.pk, user.is_superuser, user.is_active),
            joined_at=time.monotonic(),
            make=lambda: selectors.access_for(user, fresh=True),
        )
        # The snapshot build reads the access from the user object, as pages do.
        selectors.use_access(user, self.access)
        self.access_read_at = time.monotonic()
        granted = groups_for_access(self.access)
        self.groups_joined = [personal, *granted]
        await asyncio.gather(*(self.channel_layer.group_add(g, self.channel_name) for g in granted))
        # From here on every change reaches this socket as a push (snapshots.py).
        self.joined_at = time.monotonic()

    async def _refresh_access(self) -> None:
        """Re-read the viewer's access and follow it with the groups this socket listens on."""
        self.access = await database_sync_to_async(selectors.access_for)(self.user, fresh=True)
        self.access_read_at = time.monotonic()
        wanted = [access_group(self.user.pk), *groups_for_access(self.access)]
        for group in set(self.groups_joined) - set(wanted):
            await self.channel_layer.group_discard(group, self.channel_name)
        for group in set(wanted) - set(self.groups_joined):
            await self.channel_layer.group_add(group, self.channel_name)
        self.groups_joined = wanted
        # From here on every change reaches this socket as a push (snapshots.py).
        self.joined_at = time.monotonic()

    async def access_changed(self, event: dict[str, Any]) -> None:
        """The viewer's memberships, roles or agents changed: show only what they may see now."""
        await self._refresh_access()
        self.paged, self.new_count = False, 0
        # Versions seen under the old access must not keep a now-visible session's next push out.
        self.seen.clear()
        self._watch_from = timezone.now() - SNAPSHOT_SLACK
        snapshot = await self._snapshot()
        if snapshot is None:
            await self.send(text_data=fragments.access_lost_header_html())
            await self.close(code=CLOSE_FORBIDDEN)
            return
        await self.send(text_data=snapshot)
        self._clock_changed.set()  # the snapshot found the panel's next move anew

    async def disconnect(self, code: int) -> None:
        reconciler.unwatch(self)
        if getattr(self, "_counted", False):
            self._counted = False
            metrics.OPEN_SOCKETS.labels("dashboard").dec()
        for task in (self._counts_task, self._clock_task, self._snapshot_task):
            if task is not None and not task.done():
                task.cancel()
        try:
            for group in self.groups_joined:
                await self.channel_layer.group_discard(group, self.channel_name)
        except Exception:
            # Thousands of sockets closing at once (a restart) while Redis is busy or away:
            # the layer forgets this channel with its connection anyway; not worth a traceback.
            log.warning("leaving %d group(s) failed", len(self.groups_joined), exc_info=False)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """The page says when the viewer has loaded more pages (then new rows become an
        "N new" banner instead of a jumping list) and when it went back to the top."""
        if text_data is None:
            return
        # A frame the edge refuses (too deep, not JSON, unstorable text) closes with 4400.
        message = edge.loads(text_data, root="frame")
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "paged":
            self.paged = True
        elif kind == "unpaged":
            self.paged, self.new_count = False, 0
            self._request_snapshot()

    def _request_snapshot(self) -> None:
        # A snapshot costs a page of queries and renders: at most one a second per socket, and
        # every request made while one is due is served by that one.
        if self._snapshot_task is None or self._snapshot_task.done():
            self._snapshot_task = asyncio.ensure_future(self._snapshot_when_due())

    async def _snapshot_when_due(self) -> None:
        wait = self._last_snapshot + SNAPSHOT_MIN_INTERVAL - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        await self.guarded(self._send_snapshot, {"type": "snapshot"})

    async def _send_snapshot(self, message: dict[str, Any]) -> None:
        self._last_snapshot = time.monotonic()
        # Pushes met while paged were counted, not applied: only a build from now on will do.
        await self.send(text_data=await self._snapshot(since=time.monotonic()) or "")

    # --- snapshot ---------------------------------------------------------------------------

    async def _snapshot(self, since: float | None = None) -> str | None:
        """This socket's view now, shared with sockets asking for the same view at the same
        time (snapshots.py); None when a detail view's session is gone or hidden. `since`: the
        oldest build start acceptable (default: when this socket joined its groups)."""
        key = (self.user.pk, self.access, self.view, self.flt, self.session_id)
        snapshot: snapshots.Snapshot = await snapshots.shared.get(
            key,
            joined_at=self.joined_at if since is None else since,
            make=lambda: snapshots.build(self.user, self.view, self.flt, self.session_id),
        )
        self._next_move = snapshot.next_move
        if self.view == "detail":
            self.last_seq = snapshot.last_seq
            self.composer_open = snapshot.composer_open
        return snapshot.html

    # --- pushes -----------------------------------------------------------------------------

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels runs a connection clean-up on the one shared database thread before every
        # handler. Pushes arrive already rendered and most need no database, so with many
        # viewers they would queue behind each other there; the handlers that do touch the
        # database go through database_sync_to_async, which cleans up on its own.
        if message.get("type") == broadcast.MESSAGE_TYPE:
            await self.guarded(self.session_changes, message)
            return
        if message.get("type") == "websocket.connect":
            # So for a handshake (a reconnect storm's would queue): connect() reads the
            # database only through database_sync_to_async.
            await self.guarded(self.websocket_connect, message)
            return
        await super().dispatch(message)

    async def session_changes(self, event: dict[str, Any]) -> None:
        """The sessions of one flush: everything this viewer is shown of them in one frame."""
        async with self._push_lock:
            if time.monotonic() - self.access_read_at > ACCESS_MAX_AGE_SECONDS:
                await self._refresh_access()
            flt = self.flt if self.view == "list" else None
            # What the sessions look like to this socket's viewer and filter: worked out once
            # per message for every socket with the same (compose.py).
            views = compose.views_of(event, self.access, flt)
            parts: list[str] = []
            shown = []
            for summary, view in zip(event["sessions"], views, strict=True):
                mine = await self._apply(summary, view)
                if mine:
                    parts += mine
                    shown.append(summary)
            if not parts:
                return
            await self.send(text_data="".join(parts))
            for summary in shown:
                if "published_at" in summary:
                    metrics.PUSH_LAG.observe(max(0.0, time.time() - summary["published_at"]))

    async def _apply(self, summary: dict[str, Any], view: compose.SessionView) -> list[str]:
        """What this socket shows of one pushed session (nothing if it may not see it, or has
        seen this version)."""
        sid = summary["id"]
        # One push may arrive through several groups (an admin who also owns the session).
        if self.seen.get(sid, -1) >= summary["version"] and not summary["deleted"]:
            return []
        self.seen[sid] = summary["version"]
        if not view.visible:
            return []
        parts = list(view.panel)
        if self.view == "list":
            parts += self._list_parts(summary, view.listed)
        elif self.view == "detail" and sid == self.session_id:
            parts += await database_sync_to_async(self._detail_parts)(summary)
        # Counts change only when a session enters, leaves or moves between panel sections;
        # most pushes (progress, new events) do not, and cost no query.
        if sid not in self.sections or self.sections[sid] != view.section:
            self.sections[sid] = view.section
            self._schedule_counts()
        if view.move is not None and (self._next_move is None or view.move < self._next_move):
            self._next_move = view.move
            self._clock_changed.set()
        return parts

    # --- repair -----------------------------------------------------------------------------

    async def reconcile(self, changes: Routed) -> None:
        """Called by the process's reconciler with recent changes as they were a tick ago,
        under the groups their pushes went to: load and push the sessions this viewer may see
        and was not pushed at least that version. Changes older than this socket's snapshot
        are in the snapshot already."""
        if self._closing or not hasattr(self, "access"):
            return
        candidates = {c["id"]: c for g in self.groups_joined for c in changes.get(g, ())}
        missed = [
            str(sid)
            for sid, change in candidates.items()
            if change["updated_at"] >= self._watch_from
            and self.seen.get(str(sid), -1) < change["version"]
            and selectors.may_view(self.access, **compose.facts(change))
        ]
        if len(missed) > REPAIR_LIMIT and self.paged:
            # The viewer is reading further down: count them, as pushes are counted, instead
            # of replacing the list under their eyes; "show" brings a fresh snapshot.
            self.new_count += len(missed)
            versions = {str(sid): change["version"] for sid, change in candidates.items()}
            for sid in missed:
                self.seen[sid] = versions[sid]
            await self.send(text_data=fragments.new_banner_html(self.new_count))
        elif len(missed) > REPAIR_LIMIT:
            # Far behind (a long Redis outage): a fresh snapshot, as on a reconnect, costs a
            # page of queries instead of a load per session.
            self.new_count = 0
            self._request_snapshot()
        elif missed:
            await self.guarded(self._repair, {"type": "repair", "ids": missed})

    async def _repair(self, message: dict[str, Any]) -> None:
        summaries = await database_sync_to_async(broadcast.build_messages)(message["ids"])
        metrics.RECONCILE_REPAIRS.inc(len(summaries))
        await self.session_changes({"sessions": summaries})

    def _list_parts(self, summary: dict[str, Any], listed: bool) -> list[str]:
        html = summary["html"]
        if not listed:
            return [html["row_remove"]]
        if self.paged or self.flt.sort:
            # The viewer is reading further down (or a list sorted by usage, whose order the
            # page cannot keep by itself): update a row in place if it is shown, and count the
            # rest instead of moving the list under their eyes.
            self.new_count += 1
            return [html["row_update"], fragments.new_banner_html(self.new_count)]
        return [html["row_move"]]

    def _detail_parts(self, summary: dict[str, Any]) -> list[str]:
        if summary["deleted"]:
            return [fragments.deleted_header_html()]
        try:
            session = selectors.session_get_for_user(self.user, self.session_id)
        except errors.NotFound:
            return [fragments.deleted_header_html()]
        new_events = selectors.events_after(session.pk, after=self.last_seq)
        parts = [fragments.header_html(self.user, session), fragments.side_html(self.user, session)]
        if self.composer_open and session.is_terminal:
            self.composer_open = False
            parts.append(fragments.composer_html(self.user, session))
        if new_events:
            self.last_seq = new_events[-1].seq
            parts.append(
                fragments.oob_insert("#transcript", fragments.events_html(new_events), "beforeend")
            )
        return parts

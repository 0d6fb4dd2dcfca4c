"""What a dashboard shows of a pushed session, worked out once per distinct view.

A flush reaches every dashboard socket of a process with the same message object (the channel
layer decodes it once per process, config/channel_layer.py). Whether a session is visible, which
panel section it goes to, whether it matches the list's filter and when it next moves by time
alone depend only on the viewer's access and filter, which most sockets share (an office of
tenant admins watching the same list): so the first socket of a view works them out and the
rest reuse the answer, leaving each socket only its own bookkeeping (versions seen, the
sections it counts) and the send.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from command_center import filters
from sessions_app import selectors

# Where a message keeps its views: process-local, gone with the message.
_VIEWS = "_views"


@dataclass(frozen=True)
class SessionView:
    """One pushed session as one viewer sees it."""

    visible: bool
    # The panel's operations: the item out of every section, then into its section (if any).
    panel: tuple[str, ...] = ()
    # Does the list's filter take it (False for a socket with no list)?
    listed: bool = False
    section: str | None = None
    # When it leaves its section by time alone.
    move: datetime | None = None


HIDDEN = SessionView(visible=False)


def facts(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a pushed summary the visibility rule reads."""
    return {k: summary[k] for k in selectors.SESSION_FACTS}


def view_of(
    summary: Mapping[str, Any], access: selectors.Access, flt: selectors.SessionFilter | None
) -> SessionView:
    """`summary` as a viewer with `access` sees it; `flt` is their list's filter (None: no list)."""
    session_facts = facts(summary)
    if not selectors.may_view(access, **session_facts):
        return HIDDEN
    html = summary["html"]
    can_act = selectors.may_act(access, **session_facts)
    section = html["section_act"] if can_act else html["section"]
    panel = [html["panel_remove"]]
    if section:
        panel.append(html["panel_insert_act"] if can_act else html["panel_insert"])
    listed = (
        flt is not None
        and not summary["deleted"]
        and filters.matches(summary, flt, viewer_id=access.user_id)
    )
    move = None if summary["deleted"] else filters.next_move(summary, section)
    return SessionView(True, tuple(panel), listed, section, move)


def views_of(
    message: dict[str, Any], access: selectors.Access, flt: selectors.SessionFilter | None
) -> list[SessionView]:
    """`view_of` for each session of `message`, shared by every socket with the same access and
    filter."""
    shared: dict[Hashable, list[SessionView]] = message.setdefault(_VIEWS, {})
    views = shared.get((access, flt))
    if views is None:
        views = shared[access, flt] = [view_of(s, access, flt) for s in message["sessions"]]
    return views

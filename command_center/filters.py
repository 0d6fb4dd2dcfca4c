"""The Sessions list filter: parsed from the URL (so views are bookmarkable), matched against
live pushes with the same rules the database query applies."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.utils import timezone

from sessions_app import selectors, states
from sessions_app.edge import printable, storable
from sessions_app.selectors import SessionFilter

FILTER_KEYS = (
    "owner",
    "kind",
    "initiative",
    "group",
    "agent",
    "project",
    "q",
    "active",
    "archived",
    "stalled",
    "sort",
)


class BadFilter(ValueError):
    pass


def _is_number(text: str) -> bool:
    # isascii: str.isdigit() also accepts digits such as "²" that int() refuses.
    return text.isascii() and text.isdigit() and len(text) <= 15


def _int(params: Mapping[str, Any], key: str) -> int | None:
    raw = str(params.get(key) or "")
    if not raw:
        return None
    if not _is_number(raw):
        raise BadFilter(f"{key} must be a number, got {printable(raw)!r}")
    return int(raw)


def parse_filter(params: Mapping[str, Any]) -> SessionFilter:
    """Build a SessionFilter from query parameters; raises BadFilter naming the parameter."""
    owner = str(params.get("owner") or "")
    if owner not in ("", "me") and not _is_number(owner):
        raise BadFilter(f"owner must be 'me', a user id or empty, got {printable(owner)!r}")
    kind = str(params.get("kind") or "")
    if kind and kind not in states.Kind.values:
        raise BadFilter(f"kind must be one of {', '.join(states.Kind.values)}")
    group = str(params.get("group") or "")
    if group and group not in states.Group.values:
        raise BadFilter(f"group must be one of {', '.join(states.Group.values)}")
    q = str(params.get("q") or "")[:200]
    if not storable(q):
        raise BadFilter("q must not contain NUL characters or unpaired surrogates")
    sort = str(params.get("sort") or "")
    if sort and sort not in selectors.USAGE_SORTS:
        raise BadFilter(f"sort must be one of {', '.join(selectors.USAGE_SORTS)} or empty")
    return SessionFilter(
        owner=owner,
        kind=kind,
        initiative=_int(params, "initiative"),
        group=group,
        agent=_int(params, "agent"),
        project=_int(params, "project"),
        q=q,
        active_only=params.get("active") in ("1", "true", "on"),
        archived=params.get("archived") in ("1", "true", "on"),
        stalled=params.get("stalled") in ("1", "true", "on"),
        sort=sort,
    )


def filter_params(flt: SessionFilter) -> dict[str, str]:
    params = {
        "owner": flt.owner,
        "kind": flt.kind,
        "initiative": "" if flt.initiative is None else str(flt.initiative),
        "group": flt.group,
        "agent": "" if flt.agent is None else str(flt.agent),
        "project": "" if flt.project is None else str(flt.project),
        "q": flt.q,
        "active": "1" if flt.active_only else "",
        "archived": "1" if flt.archived else "",
        "stalled": "1" if flt.stalled else "",
        "sort": flt.sort,
    }
    return {k: v for k, v in params.items() if v}


def filter_query(flt: SessionFilter, **overrides: str) -> str:
    params = filter_params(flt)
    for key, value in overrides.items():
        if value:
            params[key] = value
        else:
            params.pop(key, None)
    return urlencode(params)


def matches(
    summary: Mapping[str, Any],
    flt: SessionFilter,
    *,
    viewer_id: int | None,
    now: datetime | None = None,
) -> bool:
    """Does a pushed session summary belong in a list with this filter? Mirrors
    selectors.filtered_sessions so a live list never shows what a reload would not."""
    if summary["archived"] != flt.archived:
        return False
    if flt.owner == "me" and summary["owner_id"] != viewer_id:
        return False
    if flt.owner not in ("", "me") and summary["owner_id"] != int(flt.owner):
        return False
    if flt.kind and summary["kind"] != flt.kind:
        return False
    if flt.initiative is not None and summary["initiative_id"] != flt.initiative:
        return False
    if flt.stalled and not summary["stalled"]:
        return False
    if flt.group and summary["status_group"] != flt.group:
        return False
    if flt.agent is not None and summary["agent_id"] != flt.agent:
        return False
    if flt.project is not None and summary["project_id"] != flt.project:
        return False
    text = flt.q.strip()
    if text.startswith("#") and len(text) > 1:
        if not summary["short_id"].startswith(text[1:9].lower()):
            return False
    elif text and states.fold(text) not in states.fold(summary["title"]):
        return False
    return not flt.active_only or (not summary["archived"] and is_active_now(summary, now=now))


def is_active_now(summary: Mapping[str, Any], *, now: datetime | None = None) -> bool:
    """`selectors.active_now_q` on a pushed summary."""
    now = now or timezone.now()
    last = datetime.fromisoformat(summary["last_activity_at"])
    return bool(summary["live"]) and (
        summary["kind"] != states.Kind.CHAT or last >= now - states.ACTIVE_CHAT_WINDOW
    )


def panel_section(
    summary: Mapping[str, Any], *, can_act: bool, now: datetime | None = None
) -> str | None:
    """Which Command Center section a session belongs in for a viewer: needs (it waits on a
    person and this viewer may act on it), active (Active Now), recent (changed in the last
    24 h), or none. The same rule as `selectors.command_center_panel`."""
    now = now or timezone.now()
    if summary["archived"]:
        return None
    if can_act and states.waits_on_a_person(
        live=summary["live"],
        archived=summary["archived"],
        status=summary["status"],
        stalled=summary["stalled"],
        agent_status=summary["agent_status"],
    ):
        return "needs"
    if is_active_now(summary, now=now):
        return "active"
    if datetime.fromisoformat(summary["last_activity_at"]) >= now - states.RECENT_WINDOW:
        return "recent"
    return None


def next_move(summary: Mapping[str, Any], section: str | None) -> datetime | None:
    """When a pushed session leaves its panel section by time alone (see panel_next_move)."""
    last = datetime.fromisoformat(summary["last_activity_at"])
    if section == "active" and summary["kind"] == states.Kind.CHAT:
        return last + states.ACTIVE_CHAT_WINDOW
    if section == "recent":
        return last + states.RECENT_WINDOW
    return None

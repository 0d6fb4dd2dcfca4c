from __future__ import annotations

import difflib
import json
from typing import Any

from django import template

from sessions_app.selectors.keyset import COUNT_CAP

register = template.Library()


@register.filter
def pretty_json(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        return str(value)


@register.filter
def diff_lines(payload: Any) -> list[tuple[str, str]]:
    """A file edit's before/after as unified-diff lines tagged add / del / hunk / ctx."""
    if not isinstance(payload, dict):
        return []
    before = str(payload.get("before") or "").splitlines()
    after = str(payload.get("after") or "").splitlines()
    lines: list[tuple[str, str]] = []
    for line in difflib.unified_diff(before, after, lineterm="", n=3):
        if line.startswith(("---", "+++")):
            continue
        kind = {"+": "add", "-": "del", "@": "hunk"}.get(line[:1], "ctx")
        lines.append((kind, line))
    return lines


@register.filter
def get_item(mapping: Any, key: Any) -> Any:
    return mapping.get(key) if isinstance(mapping, dict) else None


ACTION_LABELS = {
    "cancel": "cancelled the session",
    "stop": "stopped the session",
    "pause": "paused the session",
    "resume": "resumed the session",
    "end": "ended the chat",
    "approve": "approved the checkpoint",
    "reject": "rejected the checkpoint",
    "pin": "pinned the session",
    "unpin": "unpinned the session",
    "transfer": "transferred the session",
    "flag_stalled": "flagged the session as stalled",
}


@register.filter
def action_label(action: Any) -> str:
    return ACTION_LABELS.get(str(action), str(action).replace("_", " "))


@register.filter
def redaction_summary(counts: Any) -> str:
    """{"github_token": 1, "aws_secret_access_key": 1} -> "2 credentials redacted:
    aws_secret_access_key, github_token" (rule names and counts only, never values)."""
    if not isinstance(counts, dict) or not counts:
        return ""
    total = sum(n for n in counts.values() if isinstance(n, int))
    rules = ", ".join(sorted(str(rule) for rule in counts))
    return f"{total} credential{'s' if total != 1 else ''} redacted: {rules}"


AGENT_STATUS_LABELS = {"working": "working", "idle": "idle", "waiting_input": "waiting for input"}


@register.filter
def agent_status_label(status: Any) -> str:
    return AGENT_STATUS_LABELS.get(str(status), str(status or "unknown").replace("_", " "))


@register.filter
def sort_key(session: Any) -> str:
    """The list order within a section (most recently active first, then by id, as
    `selectors.LIST_ORDER`), as a string that sorts the same way: live pushes insert by it."""
    micros = int(session.last_activity_at.timestamp() * 1_000_000)
    return f"{micros:020d}-{session.pk}"


@register.filter
def capped(count: Any) -> str:
    """A panel count as shown: counts stop at selectors.COUNT_CAP ("999+"), so reading them
    costs the same at any table size."""
    if isinstance(count, int) and count >= COUNT_CAP:
        return f"{COUNT_CAP - 1}+"
    return str(count)

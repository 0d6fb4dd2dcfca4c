from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import template

from sessions_app.exports import text
from sessions_app.exports.document import redaction_text
from sessions_app.selectors.keyset import COUNT_CAP

register = template.Library()


@register.filter
def pretty_json(value: Any) -> str:
    return text.pretty(value)


@register.filter
def diff_lines(payload: Any) -> list[tuple[str, str]]:
    """A file edit's before/after as unified-diff lines tagged add / del / hunk / ctx."""
    return text.diff_lines(payload)


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
    "archive": "archived the session",
    "transfer": "transferred the session",
    "flag_stalled": "flagged the session as stalled",
    "clone": "cloned this session from another",
    "transfer_received": "handed this session over from another",
    "start_accepted": "accepted the session and started it",
    "export": "exported the session",
}


@register.filter
def action_label(action: Any) -> str:
    return ACTION_LABELS.get(str(action), str(action).replace("_", " "))


@register.filter
def redaction_summary(counts: Any) -> str:
    """{"github_token": 1, "aws_secret_access_key": 1} -> "2 credentials redacted:
    aws_secret_access_key, github_token" (rule names and counts only, never values)."""
    return redaction_text(counts) if isinstance(counts, dict) else ""


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
def cost(value: Any) -> str:
    """A session's cost: cents for amounts a person compares, more places below a cent."""
    amount = Decimal(str(value or 0))
    if amount == 0:
        return "$0"
    return f"${amount:,.2f}" if amount >= 1 else f"${amount:.4f}".rstrip("0")


@register.filter
def tokens(value: Any) -> str:
    """12345 -> "12.3k"; 4_500_000 -> "4.5M"."""
    n = int(value or 0)
    for size, suffix in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if n >= size:
            return f"{n / size:.1f}".rstrip("0").rstrip(".") + suffix
    return str(n)


@register.filter
def capped(count: Any) -> str:
    """A panel count as shown: counts stop at selectors.COUNT_CAP ("999+"), so reading them
    costs the same at any table size."""
    if isinstance(count, int) and count >= COUNT_CAP:
        return f"{COUNT_CAP - 1}+"
    return str(count)

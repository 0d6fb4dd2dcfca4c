"""Usage: what a runtime reports a session consumed (tokens in and out, cost), as additive
`usage` events. Ingest stores each event once per `event_id`; this module turns the events
stored by one batch into increments of the session's totals, written in the same UPDATE."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

USAGE_FIELDS = ("tokens_in", "tokens_out", "cost")
COST_PLACES = Decimal("0.000001")


def tokens(value: Any) -> int:
    """A token count from a stored payload (validated at the edge; 0 for anything else)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def cost(value: Any) -> Decimal:
    """A cost from a stored payload: a decimal string (the API stores it so) or a number."""
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        return Decimal(0)
    try:
        parsed = Decimal(str(value))
    except InvalidOperation:
        return Decimal(0)
    return parsed.quantize(COST_PLACES) if parsed.is_finite() and parsed > 0 else Decimal(0)


def fold(increments: dict[str, Any], payload: Mapping[str, Any]) -> None:
    """Add one newly stored usage event to the pending session update, as increments of the
    stored totals (`column = column + delta`), so the totals move only with the events that
    were stored: a retried batch stores nothing and adds nothing."""
    deltas = {
        "tokens_in": tokens(payload.get("tokens_in")),
        "tokens_out": tokens(payload.get("tokens_out")),
        "cost": cost(payload.get("cost")),
    }
    for field, delta in deltas.items():
        if delta:
            increments[field] = increments.get(field, 0) + delta

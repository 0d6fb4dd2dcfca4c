"""Session policies: what an agent's policy may say, who may change it, and the values the
sweeps (`sweeps.py`) compute with."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db.models import Q

from sessions_app.models import Agent, AgentSession

DAY = 24 * 60 * 60

# --- the policy itself --------------------------------------------------------------------------

POLICY_FIELDS = (
    "idle_timeout_seconds",
    "max_duration_seconds",
    "max_concurrent_sessions_per_user",
    "auto_archive_days",
    "retention_days",
    "allow_model_override",
)

# Inclusive bounds of the numeric policy fields. The upper bounds keep every date computed from a
# policy inside what Python and the databases can represent (timedelta(days=10**9) raises); a value
# outside them in the database is a broken policy that the sweeps skip and log.
POLICY_BOUNDS: Mapping[str, tuple[int, int]] = {
    "idle_timeout_seconds": (1, 30 * DAY),
    "max_duration_seconds": (1, 365 * DAY),
    "max_concurrent_sessions_per_user": (1, 10_000),
    "auto_archive_days": (1, 3650),
    "retention_days": (1, 3650),
}

# Mirrors the session_timeout_range check constraint: the longest timeout a session can have.
MAX_SESSION_TIMEOUT_SECONDS = 1800


def policy_errors(values: Mapping[str, Any]) -> dict[str, str]:
    """Validate a complete policy; returns {field: message}, empty when valid.

    The one place the rules live: the policy form (admin and agent settings page) shows these
    messages on its fields and `services.agent_policy_update` refuses to save without it.
    """
    errors: dict[str, str] = {}
    for field, (low, high) in POLICY_BOUNDS.items():
        value = values.get(field)
        if value is None:
            if field != "max_concurrent_sessions_per_user":  # blank means unlimited
                errors[field] = "This field is required."
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            errors[field] = "Enter a whole number."
        elif value < low:
            errors[field] = "Must be positive."
        elif value > high:
            errors[field] = f"Must be at most {high}."
    idle, longest = values.get("idle_timeout_seconds"), values.get("max_duration_seconds")
    if (
        "idle_timeout_seconds" not in errors
        and "max_duration_seconds" not in errors
        and isinstance(idle, int)
        and isinstance(longest, int)
        and longest <= idle
    ):
        errors["max_duration_seconds"] = (
            f"Must be longer than the idle timeout ({human_duration(idle)})."
        )
    if not isinstance(values.get("allow_model_override"), bool):
        errors["allow_model_override"] = "Must be true or false."
    return errors


def human_duration(seconds: int) -> str:
    """30 min, 4 h, 1 h 30 min, 90 s: for reasons a person reads in a transcript."""
    if seconds % 60 or seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    hours, minutes = divmod(minutes, 60)
    if not hours:
        return f"{minutes} min"
    return f"{hours} h" + (f" {minutes} min" if minutes else "")


def duration_limit_seconds(session: AgentSession, agent: Agent) -> int:
    """The max duration that applies to `session`: its agent's policy, or the session's own
    timeout_seconds where shorter (issue 5)."""
    return min(session.timeout_seconds, policy_value(agent, "max_duration_seconds"))


# --- values the sweeps compute with ---------------------------------------------------------


class BrokenPolicy(ValueError):
    """An agent's policy in the database is outside what the sweeps can compute with."""


def policy_value(agent: Agent, field: str) -> int:
    value = getattr(agent, field)
    low, high = POLICY_BOUNDS[field]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BrokenPolicy(f"agent {agent.pk} ({agent.name}) has {field}={value!r}")
    checked: int = value
    return checked


def sane_policy_q(field: str) -> Q:
    low, high = POLICY_BOUNDS[field]
    return Q(**{f"{field}__gte": low, f"{field}__lte": high})

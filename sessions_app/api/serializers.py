"""Model -> response dict. Plain functions so the websocket consumer shares them with the API."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any
from uuid import UUID

from sessions_app.models import Agent, AgentSession, RuntimeCommand, SessionEvent
from sessions_app.selectors import LINKS
from sessions_app.services import METADATA_FIELDS, WAITING_FOR_RUNTIME


def session_out(s: AgentSession, *, visible: Collection[UUID]) -> dict[str, Any]:
    """`visible`: which of the sessions this one links to the caller may see
    (`selectors.visible_among(caller, selectors.link_ids([s, ...]))`); the others are named
    only in `hidden_related`, without their id."""
    links = {link: getattr(s, f"{link}_id") for link in LINKS}
    return {
        "id": s.pk,
        "short_id": s.short_id,
        "kind": s.kind,
        "status": s.status,
        "status_group": s.status_group,
        "agent_status": s.agent_status,
        "live": s.live,
        "title": s.title,
        "agent": {"id": s.agent_id, "name": s.agent.name},
        "owner": {"id": s.owner_id, "username": s.owner.get_username()},
        "project": {"id": s.project_id, "name": s.project.name},
        "initiative_id": s.initiative_id,
        **{f"{link}_id": i if i in visible else None for link, i in links.items()},
        "hidden_related": [link for link, i in links.items() if i is not None and i not in visible],
        "redactions": s.redaction_counts or {},
        "model": s.model,
        "temperature": s.temperature,
        "max_tokens": s.max_tokens,
        "timeout_seconds": s.timeout_seconds,
        "progress": {
            "text": s.progress_text,
            "percent": s.progress_percent,
            "current_step": s.current_step,
            "total_steps": s.total_steps,
            "current_step_name": s.current_step_name,
            "turns": s.turns,
            "message_count": s.message_count,
        },
        "usage": usage_out(s),
        "checkpoint": {"state": s.checkpoint_state, "name": s.checkpoint_name},
        "error": (
            {"code": s.error_code, "message": s.error_message}
            if s.error_code or s.error_message
            else None
        ),
        "stop_reason": s.stop_reason,
        "metadata": {f: getattr(s, f) for f in METADATA_FIELDS},
        "pinned": s.pinned,
        "awaiting_runtime_since": s.awaiting_runtime_since,
        "waiting_reason": WAITING_FOR_RUNTIME if s.awaiting_runtime_since else "",
        "last_seq": s.last_seq,
        "version": s.version,
        "created_at": s.created_at,
        "started_at": s.started_at,
        "ended_at": s.ended_at,
        "last_activity_at": s.last_activity_at,
        "archived_at": s.archived_at,
    }


def usage_out(s: AgentSession) -> dict[str, Any]:
    return {"tokens_in": s.tokens_in, "tokens_out": s.tokens_out, "cost": s.cost}


def session_state_out(s: AgentSession) -> dict[str, Any]:
    return {
        "id": s.pk,
        "status": s.status,
        "status_group": s.status_group,
        "last_seq": s.last_seq,
        "version": s.version,
    }


def event_out(e: SessionEvent) -> dict[str, Any]:
    return {
        "seq": e.seq,
        "event_id": e.event_id,
        "type": e.type,
        "actor": e.actor,
        "payload": e.payload if isinstance(e.payload, dict) else {"value": e.payload},
        "redactions": e.redactions or {},
        "created_at": e.created_at,
    }


def command_out(c: RuntimeCommand) -> dict[str, Any]:
    return {
        "id": c.pk,
        "kind": c.kind,
        "session_id": c.session_id,
        "agent_id": c.agent_id,
        "payload": c.payload or {},
        "status": c.status,
        "correlation_id": c.correlation_id,
        "result": c.result,
        "created_at": c.created_at,
        "delivered_at": c.delivered_at,
        "acked_at": c.acked_at,
    }


def command_json(c: RuntimeCommand) -> dict[str, Any]:
    """A command as plain JSON types (the websocket sends it without a response model)."""
    out = command_out(c)
    for key in ("id", "session_id", "correlation_id"):
        out[key] = str(out[key])
    for key in ("created_at", "delivered_at", "acked_at"):
        out[key] = out[key].isoformat() if out[key] is not None else None
    return out


def agent_out(a: Agent) -> dict[str, Any]:
    return {
        "id": a.pk,
        "name": a.name,
        "project": {"id": a.project_id, "name": a.project.name},
        "owner": {"id": a.owner_id, "username": a.owner.get_username()},
        "default_model": a.default_model,
        "allowed_models": list(a.allowed_models or []),
        "policy": {
            "idle_timeout_seconds": a.idle_timeout_seconds,
            "max_duration_seconds": a.max_duration_seconds,
            "max_concurrent_sessions_per_user": a.max_concurrent_sessions_per_user,
            "allow_model_override": a.allow_model_override,
        },
    }

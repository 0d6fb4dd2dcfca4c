"""Runtime events: the transcript and everything it changes on the session."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from sessions_app import lifecycle, metrics, rows
from sessions_app.errors import InvalidInput, NotFound
from sessions_app.models import AgentSession, EventType, StopReason
from sessions_app.redaction import redact_payload, redact_text
from sessions_app.services import usage
from sessions_app.states import STATUSES, Kind, Status


@dataclass(frozen=True)
class EventIn:
    event_id: str
    type: str
    payload: dict[str, Any]
    actor: str = ""


# Per-item outcomes of a batch. A retried batch gets the same answer, so a new event and an
# identical resend are both STORED.
STORED = "stored"
CONFLICT = "conflict"  # this event_id was stored before with other content: the stored one stays
SESSION_ENDED = "session_ended"  # the session is terminal and this is no late report it allows


@dataclass(frozen=True)
class EventsRecorded:
    # per item, in request order: {"event_id", "seq" (None when refused), "status"}
    results: list[dict[str, Any]]
    created: int
    duplicates: int
    session: AgentSession
    conflicts: int = 0
    refused: int = 0


_STATUS_STOP_REASON: dict[str, str] = {
    Status.STOPPED: StopReason.RUNTIME,
    Status.STOPPING: StopReason.RUNTIME,
}


def default_actor(session: AgentSession, event: EventIn, fallback: str = "") -> str:
    """Who an event is from when the runtime does not say: the owner for what the user said,
    the agent (or `fallback`) for everything else. A stated actor is outside input: redacted."""
    if event.actor:
        return redact_text(event.actor).text[:200]
    if event.type == EventType.MESSAGE and event.payload.get("role") == "user":
        return str(session.owner.get_username())
    return fallback or session.agent.name


def _check_statuses(session: AgentSession, events: Sequence[EventIn]) -> None:
    statuses = STATUSES[session.kind]
    for i, event in enumerate(events):
        if event.type != EventType.STATUS_CHANGE:
            continue
        to = event.payload.get("to")
        if not isinstance(to, str) or to not in statuses:
            raise InvalidInput(
                f"events[{i}].payload.to",
                f"must be one of {', '.join(sorted(statuses))} for a "
                f"{Kind(session.kind).label.lower()}",
            )


def _same_event(event: EventIn, stored_type: str, stored_payload: Any) -> bool:
    """Is a resent event the one stored under its id? Compared after redaction, as stored; a
    status report is stored as the transition it caused, so only its target is compared."""
    if event.type != stored_type:
        return False
    if event.type == EventType.STATUS_CHANGE:
        return isinstance(stored_payload, dict) and stored_payload.get("to") == event.payload.get(
            "to"
        )
    return bool(redact_payload(event.payload)[0] == stored_payload)


def _late_report(session: AgentSession, event: EventIn) -> bool:
    """What a runtime may still report about a terminal session: the status it already has
    (its own final report, crossing an operator's action), an error and the usage it billed."""
    if event.type in (EventType.ERROR, EventType.USAGE):
        return True
    return event.type == EventType.STATUS_CHANGE and event.payload.get("to") == session.status


def events_record(
    *, session: AgentSession, events: Sequence[EventIn], actor: str = ""
) -> EventsRecorded:
    """`events_record_in` for a session the caller already holds."""
    return events_record_in(session_id=session.pk, events=events, actor=actor)


def events_record_in(
    *,
    session_id: Any,
    events: Sequence[EventIn],
    tenant_id: int | None = None,
    agent_ids: Collection[int] | None = None,
    actor: str = "",
) -> EventsRecorded:
    """Append a batch of runtime events to the session `session_id` (with `tenant_id` and
    `agent_ids`, one of those agents' sessions in that workspace, as a runtime token reaches;
    NotFound otherwise): redact, assign gap-free seqs, apply their
    effects on the session's counters, progress and status, all in one transaction.

    Idempotent per `event_id`: a retried batch stores nothing new and returns the seqs of the
    first delivery; an id resent with other content is a `conflict` (the stored event stays).
    Once the session is terminal (ended, completed, failed, cancelled), later events are refused
    per item as `session_ended`, except the late reports `_late_report` allows.

    The hot path of the product, so its statements are counted (tests/api/test_events.py):
    the lookup is the row lock, which also serialises concurrent batches for one session; then
    one read of the ids already stored, one INSERT of the new events and one UPDATE of the
    session, status changes included (`lifecycle.LockedWrite`).
    """
    ids = [e.event_id for e in events]
    if len(set(ids)) != len(ids):
        raise InvalidInput("events", "event_id values must be unique within a batch")

    with transaction.atomic():
        # Hand-written statements (sessions_app/rows.py): on this path building ORM queries
        # cost more than running them.
        locked = rows.lock_session(session_id, tenant_id=tenant_id, agent_ids=agent_ids)
        if locked is None:
            raise NotFound(str(session_id))
        _check_statuses(locked, events)
        existing = rows.stored_events(locked.pk, ids)
        seq_of: dict[str, int | None] = {eid: found[0] for eid, found in existing.items()}
        outcome: dict[str, str] = {}
        write = lifecycle.LockedWrite(locked)
        new_count = 0
        batch_counts: dict[str, int] = {}
        for event in events:
            if event.event_id in existing:
                _, stored_type, stored_payload = existing[event.event_id]
                same = _same_event(event, stored_type, stored_payload)
                outcome[event.event_id] = STORED if same else CONFLICT
                continue
            if locked.is_terminal and not _late_report(locked, event):
                outcome[event.event_id], seq_of[event.event_id] = SESSION_ENDED, None
                continue
            outcome[event.event_id] = STORED
            new_count += 1
            event_actor = default_actor(locked, event, actor)
            payload, counts = redact_payload(event.payload)
            batch_counts = lifecycle.add_counts(batch_counts, counts)
            if event.type == EventType.STATUS_CHANGE:
                _apply_status_event(write, payload, actor=event_actor, event_id=event.event_id)
                seq_of[event.event_id] = locked.last_seq
                continue
            if (
                event.type == EventType.MESSAGE
                and payload.get("role") == "user"
                and locked.kind == Kind.CHAT
                and locked.status == Status.IDLE
            ):
                # A new message brings an idle chat back to running (DESIGN 5); the status
                # change takes the seq before the message that caused it.
                write.transition(Status.RUNNING, actor=event_actor, reason="message")
            stored = write.append(
                event_type=event.type,
                actor=event_actor,
                payload=payload,
                event_id=event.event_id,
                redactions=counts,
            )
            seq_of[event.event_id] = stored.seq
            _apply_event_effects(write, event.type, payload)

        if new_count:
            for field, value in lifecycle.activity_fields(locked.agent, now=timezone.now()).items():
                write.put(field, value)
            if batch_counts:
                # The row is locked for the batch: its totals cannot move under us.
                write.put(
                    "redaction_counts",
                    lifecycle.add_counts(locked.redaction_counts or {}, batch_counts),
                )
            write.save()

    metrics.INGEST_BATCHES.labels("stored").inc()
    metrics.count_redactions(batch_counts)
    results = [{"event_id": eid, "seq": seq_of[eid], "status": outcome[eid]} for eid in ids]
    conflicts = sum(1 for status in outcome.values() if status == CONFLICT)
    refused = sum(1 for status in outcome.values() if status == SESSION_ENDED)
    duplicates = len(ids) - new_count - conflicts - refused
    for label, n in (
        ("created", new_count),
        ("duplicate", duplicates),
        ("conflict", conflicts),
        ("session_ended", refused),
    ):
        metrics.INGEST_EVENTS.labels(label).inc(n)
    return EventsRecorded(
        results,
        created=new_count,
        duplicates=duplicates,
        session=locked,
        conflicts=conflicts,
        refused=refused,
    )


def _apply_event_effects(
    write: lifecycle.LockedWrite, event_type: str, payload: Mapping[str, Any]
) -> None:
    """Fold one event into the session's denormalised fields (written once per batch)."""
    session, put = write.session, write.put
    if event_type == EventType.MESSAGE:
        put("message_count", session.message_count + 1)
        if payload.get("role") == "agent":
            put("turns", session.turns + 1)
    elif event_type == EventType.STEP:
        index = _as_int(payload.get("index"))
        total = _as_int(payload.get("total"))
        if total is not None:
            put("total_steps", total)
        if index is not None:
            put("current_step", index)
        if payload.get("name"):
            put("current_step_name", str(payload["name"])[:200])
    elif event_type == EventType.PROGRESS:
        for field in ("current_step", "total_steps", "turns", "message_count"):
            value = _as_int(payload.get(field))
            if value is not None:
                put(field, value)
    elif event_type == EventType.CHECKPOINT:
        state = payload.get("state")
        if state in ("awaiting", "approved", "rejected"):
            put("checkpoint_state", state)
            put("checkpoint_name", str(payload.get("name", ""))[:200])
    elif event_type == EventType.ERROR:
        put("error_code", str(payload.get("code", ""))[:100])
        put("error_message", str(payload.get("message", "")))
    elif event_type == EventType.AGENT_STATUS:
        put("agent_status", payload.get("status", ""))
    elif event_type == EventType.USAGE:
        # Increments (F() + delta) go straight into the batch UPDATE, not onto the instance.
        usage.fold(write.increments, payload)


def _as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _apply_status_event(
    write: lifecycle.LockedWrite, payload: Mapping[str, Any], *, actor: str, event_id: str
) -> None:
    session = write.session
    to = str(payload["to"])
    error = payload.get("error") if isinstance(payload.get("error"), dict) else None
    reason = str(payload.get("reason", ""))[:500]
    changed = write.transition(
        to,
        actor=actor,
        reason=reason,
        stop_reason=_STATUS_STOP_REASON.get(to) if not session.stop_reason else None,
        error_code=str(error.get("code", ""))[:100] if error else None,
        error_message=str(error.get("message", "")) if error else None,
        event_id=event_id,
    )
    if not changed:
        # The runtime reported the status the session already has. Store the report anyway so
        # its event_id is taken: a retried batch must find it and add nothing, even if the
        # status has moved on in between.
        unchanged: dict[str, Any] = {"from": to, "to": to, "unchanged": True}
        if reason:
            unchanged["reason"] = reason
        write.append(
            event_type=EventType.STATUS_CHANGE, actor=actor, payload=unchanged, event_id=event_id
        )

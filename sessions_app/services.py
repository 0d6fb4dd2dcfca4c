"""Writes. Views, API endpoints, tasks and management commands call these; nothing else
changes sessions, events, commands or tokens."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from sessions_app import hooks, lifecycle, selectors
from sessions_app.lifecycle import Kind, LifecycleError, Status
from sessions_app.models import (
    Agent,
    AgentSession,
    ApiToken,
    CheckpointState,
    CommandKind,
    CommandStatus,
    EventType,
    Initiative,
    Membership,
    Origin,
    PolicyChange,
    Role,
    RuntimeCommand,
    SessionEvent,
    StopReason,
    Tenant,
    TenantMembership,
    TokenKind,
)
from sessions_app.redaction import redact_payload

User = get_user_model()


class InvalidInput(LifecycleError):
    """Bad input for a field (400/422 in the API, a form error in the UI)."""

    code = "invalid_input"

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class ConcurrencyLimit(LifecycleError):
    code = "concurrency_limit"

    def __init__(self, *, limit: int, current: int, agent: str) -> None:
        self.limit, self.current = limit, current
        super().__init__(
            f"The agent {agent!r} allows at most {limit} concurrent session"
            f"{'s' if limit != 1 else ''} per user; this user already has {current} open."
        )


class NotAllowed(LifecycleError):
    """The viewer may see the session but not act on it (403)."""

    code = "forbidden"


# --- sessions ---------------------------------------------------------------------------------

METADATA_FIELDS = ("sandbox", "profile", "runtime", "repo", "branch", "origin")


def _user_may_use_agent(user: Any, agent: Agent) -> bool:
    if agent.owner_id == user.pk:
        return True
    if TenantMembership.objects.filter(
        tenant_id=agent.tenant_id, user=user, is_admin=True
    ).exists():
        return True
    return Membership.objects.filter(
        project_id=agent.project_id, user=user, role__gte=Role.REPORTER
    ).exists()


def _check_cap(*, agent: Agent, owner_id: int, exclude_pk: Any = None) -> None:
    limit = agent.max_concurrent_sessions_per_user
    if limit is None:
        return
    qs = AgentSession.objects.filter(owner_id=owner_id, agent_id=agent.pk, live=True)
    if exclude_pk is not None:
        qs = qs.exclude(pk=exclude_pk)
    current = qs.count()
    if current >= limit:
        raise ConcurrencyLimit(limit=limit, current=current, agent=agent.name)


def _lock_owner(owner_id: int) -> None:
    # The per-user cap is a count-then-insert; serialising on the owner's row makes it atomic
    # without locking anyone else's creates. (SQLite serialises writers at BEGIN IMMEDIATE.)
    list(User.objects.select_for_update(no_key=True, of=("self",)).filter(pk=owner_id).values("pk"))


def session_create(
    *,
    agent: Agent,
    owner: Any,
    kind: str,
    actor: str,
    title: str = "",
    model: str = "",
    may_override_model: bool = False,
    temperature: float = 0.7,
    max_tokens: int = 4000,
    timeout_seconds: int = 300,
    initiative: Initiative | None = None,
    parent: AgentSession | None = None,
    metadata: Mapping[str, str] | None = None,
) -> AgentSession:
    """Create a session in its kind's initial status, enforcing the agent's policy and the
    per-user concurrency cap atomically."""
    if kind not in Kind.values:
        raise InvalidInput("kind", f"must be one of {', '.join(Kind.values)}")
    if not 0 <= temperature <= 2:
        raise InvalidInput("temperature", "must be between 0 and 2")
    if not 100 <= max_tokens <= 8000:
        raise InvalidInput("max_tokens", "must be between 100 and 8000")
    if not 60 <= timeout_seconds <= 1800:
        raise InvalidInput("timeout_seconds", "must be between 60 and 1800 seconds")
    if timeout_seconds > agent.max_duration_seconds:
        raise InvalidInput(
            "timeout_seconds",
            f"must not exceed the agent's max duration of {agent.max_duration_seconds} seconds",
        )
    chosen_model = model or agent.default_model
    if chosen_model != agent.default_model:
        if not agent.allow_model_override:
            raise InvalidInput(
                "model", f"this agent's policy does not allow overriding {agent.default_model!r}"
            )
        if not may_override_model:
            raise InvalidInput("model", "you may not override the model of this agent")
        if agent.allowed_models and chosen_model not in agent.allowed_models:
            raise InvalidInput(
                "model", f"must be one of {', '.join(agent.allowed_models)} for this agent"
            )
    if initiative is not None and initiative.tenant_id != agent.tenant_id:
        raise InvalidInput("initiative", "belongs to another workspace")
    if parent is not None and parent.tenant_id != agent.tenant_id:
        raise InvalidInput("parent", "belongs to another workspace")
    if not _user_may_use_agent(owner, agent):
        raise InvalidInput("owner", f"{owner} may not use the agent {agent.name!r}")
    meta = dict(metadata or {})
    unknown = set(meta) - set(METADATA_FIELDS)
    if unknown:
        raise InvalidInput("metadata", f"unknown keys: {', '.join(sorted(unknown))}")
    if meta.get("origin", Origin.API) not in Origin.values:
        raise InvalidInput("origin", f"must be one of {', '.join(Origin.values)}")

    status = lifecycle.INITIAL[kind]
    now = timezone.now()
    with transaction.atomic():
        _lock_owner(owner.pk)
        _check_cap(agent=agent, owner_id=owner.pk)
        session = AgentSession(
            tenant_id=agent.tenant_id,
            project_id=agent.project_id,
            agent=agent,
            owner=owner,
            kind=kind,
            status=status,
            status_group=lifecycle.status_group(status=status),
            live=True,
            title=title.strip()[:300],
            model=chosen_model,
            temperature=temperature,
            max_tokens=max_tokens,
            timeout_seconds=timeout_seconds,
            initiative=initiative,
            parent=parent,
            started_at=now if status == Status.RUNNING else None,
            status_changed_at=now,
            last_activity_at=now,
            expires_at=lifecycle.retention_deadline(now, agent.retention_days),
            **meta,
        )
        session.short_id = session.id.hex[:8]
        if not session.title:
            session.title = f"{agent.name} · {Kind(kind).label.lower()} {session.short_id}"
        session.save(force_insert=True)
        lifecycle.append_system_event(
            session,
            type=EventType.STATUS_CHANGE,
            actor=actor,
            payload={"from": None, "to": status, "reason": "created"},
        )
        hooks.session_changed(session.pk)
    return session


# --- events -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventIn:
    event_id: str
    type: str
    payload: dict[str, Any]
    actor: str = ""


@dataclass(frozen=True)
class EventsRecorded:
    results: list[dict[str, Any]]  # per item: {"event_id", "seq"}, in request order
    created: int
    duplicates: int
    session: AgentSession


_STATUS_STOP_REASON: dict[str, str] = {
    Status.STOPPED: StopReason.RUNTIME,
    Status.STOPPING: StopReason.RUNTIME,
}


def events_record(
    *, session: AgentSession, events: Sequence[EventIn], actor: str
) -> EventsRecorded:
    """Append a batch of runtime events: redact, assign gap-free seqs, apply their effects on
    the session's counters, progress and status, all in one transaction.

    Idempotent per `event_id`: a retried batch stores nothing new and returns the seqs of the
    first delivery. The session row lock serialises concurrent batches for one session.
    """
    ids = [e.event_id for e in events]
    if len(set(ids)) != len(ids):
        raise InvalidInput("events", "event_id values must be unique within a batch")

    with transaction.atomic():
        locked = (
            AgentSession.objects.select_for_update(no_key=True, of=("self",))
            .select_related("agent")
            .get(pk=session.pk)
        )
        existing = dict(
            SessionEvent.objects.filter(session=locked, event_id__in=ids).values_list(
                "event_id", "seq"
            )
        )
        seq_of: dict[str, int] = dict(existing)
        pending: list[SessionEvent] = []
        changes: dict[str, Any] = {}
        now = timezone.now()

        def flush() -> None:
            if pending:
                SessionEvent.objects.bulk_create(pending)
                pending.clear()
            AgentSession.objects.filter(pk=locked.pk).update(last_seq=locked.last_seq, **changes)
            changes.clear()

        new_count = 0
        for event in events:
            if event.event_id in existing:
                continue
            new_count += 1
            payload, counts = redact_payload(event.payload)
            if event.type == EventType.STATUS_CHANGE:
                flush()
                _apply_status_event(
                    locked, payload, actor=event.actor or actor, event_id=event.event_id
                )
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
                flush()
                lifecycle.transition(
                    locked, Status.RUNNING, actor=event.actor or actor, reason="message"
                )
            locked.last_seq += 1
            seq_of[event.event_id] = locked.last_seq
            pending.append(
                SessionEvent(
                    session=locked,
                    seq=locked.last_seq,
                    event_id=event.event_id,
                    type=event.type,
                    actor=(event.actor or actor)[:200],
                    payload=payload,
                    redactions=counts,
                )
            )
            _apply_event_effects(locked, event.type, payload, changes)

        if new_count:
            changes.update(
                last_activity_at=now,
                updated_at=now,
                expires_at=lifecycle.retention_deadline(now, locked.agent.retention_days),
                stalled=False,
                status_group=lifecycle.status_group(
                    status=locked.status, checkpoint_state=locked.checkpoint_state
                ),
                version=F("version") + 1,
            )
            flush()
            hooks.session_changed(locked.pk)
        locked.refresh_from_db()

    results = [{"event_id": eid, "seq": seq_of[eid]} for eid in ids]
    return EventsRecorded(results, new_count, len(ids) - new_count, locked)


def _apply_event_effects(
    session: AgentSession, type: str, payload: Mapping[str, Any], changes: dict[str, Any]
) -> None:
    """Fold one event into the session's denormalised fields (kept on `session` and in
    `changes`, written once per batch)."""

    def put(field: str, value: Any) -> None:
        setattr(session, field, value)
        changes[field] = value

    if type == EventType.MESSAGE:
        put("message_count", session.message_count + 1)
        if payload.get("role") == "agent":
            put("turns", session.turns + 1)
    elif type == EventType.STEP:
        index = _as_int(payload.get("index"))
        total = _as_int(payload.get("total"))
        if total is not None:
            put("total_steps", total)
        if index is not None:
            put("current_step", index)
        if payload.get("name"):
            put("current_step_name", str(payload["name"])[:200])
    elif type == EventType.PROGRESS:
        for field in ("current_step", "total_steps", "turns", "message_count"):
            value = _as_int(payload.get(field))
            if value is not None:
                put(field, value)
    elif type == EventType.CHECKPOINT:
        state = payload.get("state")
        if state in ("awaiting", "approved", "rejected"):
            put("checkpoint_state", state)
            put("checkpoint_name", str(payload.get("name", ""))[:200])
    elif type == EventType.ERROR:
        put("error_code", str(payload.get("code", ""))[:100])
        put("error_message", str(payload.get("message", "")))
    elif type == EventType.AGENT_STATUS:
        put("agent_status", payload.get("status", ""))


def _as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _apply_status_event(
    session: AgentSession, payload: Mapping[str, Any], *, actor: str, event_id: str
) -> None:
    to = payload.get("to")
    if not isinstance(to, str) or to not in lifecycle.STATUSES[session.kind]:
        raise InvalidInput(
            "status_change.to",
            f"must be one of {', '.join(sorted(lifecycle.STATUSES[session.kind]))} for a "
            f"{Kind(session.kind).label.lower()}",
        )
    error = payload.get("error") if isinstance(payload.get("error"), dict) else None
    reason = str(payload.get("reason", ""))[:500]
    result = lifecycle.transition(
        session,
        to,
        actor=actor,
        reason=reason,
        stop_reason=_STATUS_STOP_REASON.get(to) if not session.stop_reason else None,
        error_code=str(error.get("code", ""))[:100] if error else None,
        error_message=str(error.get("message", "")) if error else None,
        event_id=event_id,
    )
    if not result.changed:
        # The runtime reported the status the session already has. Store the report anyway so
        # its event_id is taken: a retried batch must find it and add nothing, even if the
        # status has moved on in between.
        unchanged: dict[str, Any] = {"from": to, "to": to, "unchanged": True}
        if reason:
            unchanged["reason"] = reason
        lifecycle.append_system_event(
            session, type=EventType.STATUS_CHANGE, actor=actor, payload=unchanged, event_id=event_id
        )


# --- operator actions ---------------------------------------------------------------------------


def _require_act(user: Any, session: AgentSession) -> None:
    if not selectors.can_view(user, session):
        raise selectors.NotFound(str(session.pk))
    if not selectors.can_act(user, session):
        raise NotAllowed("You may view this session but not act on it.")


def _action_event(session: AgentSession, *, user: Any, action: str, **extra: Any) -> None:
    lifecycle.append_system_event(
        session,
        type=EventType.ACTION,
        actor=user.get_username(),
        payload={"action": action, "by": user.get_username(), **extra},
    )


def command_queue(
    *,
    session: AgentSession,
    kind: str,
    issued_by: Any = None,
    payload: dict[str, Any] | None = None,
) -> RuntimeCommand:
    """Queue a command for the session's runtime; the runtime channel is told after commit."""
    command = RuntimeCommand.objects.create(
        tenant_id=session.tenant_id,
        session=session,
        agent_id=session.agent_id,
        kind=kind,
        payload=payload or {},
        issued_by=issued_by,
    )
    hooks.command_queued(command.pk)
    return command


def _verb(
    *,
    session: AgentSession,
    user: Any,
    action: str,
    to_status: str,
    command: str,
    stop_reason: str | None = None,
) -> AgentSession:
    _require_act(user, session)
    with transaction.atomic():
        result = lifecycle.transition(
            session, to_status, actor=user.get_username(), reason=action, stop_reason=stop_reason
        )
        if result.changed:
            _action_event(session, user=user, action=action)
            command_queue(session=session, kind=command, issued_by=user)
    return result.session


def session_cancel(*, session: AgentSession, user: Any) -> AgentSession:
    """Cancel a flow run or background task for good (not resumable)."""
    return _verb(
        session=session,
        user=user,
        action="cancel",
        to_status=Status.CANCELLED,
        command=CommandKind.CANCEL,
        stop_reason=StopReason.USER,
    )


def session_stop(
    *, session: AgentSession, user: Any, stop_reason: str = StopReason.USER
) -> AgentSession:
    """Ask the runtime to stop; the session waits in `stopping` until it confirms."""
    return _verb(
        session=session,
        user=user,
        action="stop",
        to_status=Status.STOPPING,
        command=CommandKind.STOP,
        stop_reason=stop_reason,
    )


def session_pause(*, session: AgentSession, user: Any) -> AgentSession:
    return _verb(
        session=session,
        user=user,
        action="pause",
        to_status=Status.PAUSED,
        command=CommandKind.PAUSE,
    )


def session_resume(*, session: AgentSession, user: Any) -> AgentSession:
    """Resume a paused, stopped or idle session; a stopped one counts toward the cap again."""
    _require_act(user, session)
    with transaction.atomic():
        _lock_owner(session.owner_id)
        # The row's own `live`, read under the owner lock: a stale instance must not skip the cap.
        if not AgentSession.objects.values_list("live", flat=True).get(pk=session.pk):
            _check_cap(agent=session.agent, owner_id=session.owner_id, exclude_pk=session.pk)
        return _verb(
            session=session,
            user=user,
            action="resume",
            to_status=Status.RUNNING,
            command=CommandKind.RESUME,
        )


def session_end(*, session: AgentSession, user: Any) -> AgentSession:
    if session.kind != Kind.CHAT:
        raise LifecycleError(
            f"Only chats can be ended; stop or cancel this {Kind(session.kind).label.lower()}."
        )
    return _verb(
        session=session,
        user=user,
        action="end",
        to_status=Status.ENDED,
        command=CommandKind.END,
        stop_reason=StopReason.USER,
    )


def checkpoint_decide(
    *, session: AgentSession, user: Any, approve: bool, note: str = ""
) -> AgentSession:
    """Approve (the run continues) or reject (the run is marked a problem; the runtime fails it)."""
    _require_act(user, session)
    if session.checkpoint_state != CheckpointState.AWAITING:
        raise LifecycleError("This session has no checkpoint waiting for approval.")
    with transaction.atomic():
        state = CheckpointState.APPROVED if approve else CheckpointState.REJECTED
        updated = AgentSession.objects.filter(
            pk=session.pk, checkpoint_state=CheckpointState.AWAITING
        ).update(
            checkpoint_state=state,
            status_group=lifecycle.status_group(status=session.status, checkpoint_state=state),
            last_activity_at=timezone.now(),
            version=F("version") + 1,
        )
        if updated != 1:
            # Another operator decided first; theirs stands.
            session.refresh_from_db()
            raise LifecycleError("The checkpoint was already decided by someone else.")
        session.refresh_from_db()
        lifecycle.append_system_event(
            session,
            type=EventType.CHECKPOINT,
            actor=user.get_username(),
            payload={"state": state, "name": session.checkpoint_name, "note": note},
        )
        _action_event(session, user=user, action="approve" if approve else "reject")
        if approve and session.status == Status.WAITING_INPUT:
            lifecycle.transition(
                session, Status.RUNNING, actor=user.get_username(), reason="approved"
            )
        command_queue(
            session=session,
            kind=CommandKind.APPROVE if approve else CommandKind.REJECT,
            issued_by=user,
            payload={"checkpoint": session.checkpoint_name, "note": note},
        )
        hooks.session_changed(session.pk)
    return session


def message_send(*, session: AgentSession, user: Any, text: str) -> RuntimeCommand:
    """An operator message: stored in the transcript and sent to the runtime, also while the
    agent is working. An idle chat comes back to running."""
    _require_act(user, session)
    text = text.strip()
    if not text:
        raise InvalidInput("text", "must not be empty")
    if len(text) > 20_000:
        raise InvalidInput("text", "must be at most 20000 characters")
    if session.is_terminal:
        raise LifecycleError(f"This session has {session.status}; it takes no more messages.")
    with transaction.atomic():
        # Read the status under the row lock: the idle sweep (which skips locked rows) then
        # either sees this message's activity or has already made the chat idle, undone below.
        session.status = (
            AgentSession.objects.select_for_update(no_key=True, of=("self",))
            .values_list("status", flat=True)
            .get(pk=session.pk)
        )
        payload, counts = redact_payload(
            {"role": "user", "text": text, "author": user.get_username()}
        )
        if session.status == Status.IDLE:
            lifecycle.transition(
                session, Status.RUNNING, actor=user.get_username(), reason="message"
            )
        event = lifecycle.append_system_event(
            session, type=EventType.MESSAGE, actor=user.get_username(), payload=payload
        )
        if counts:
            SessionEvent.objects.filter(pk=event.pk).update(redactions=counts)
        now = timezone.now()
        AgentSession.objects.filter(pk=session.pk).update(
            message_count=F("message_count") + 1,
            last_activity_at=now,
            expires_at=lifecycle.retention_deadline(now, session.agent.retention_days),
            stalled=False,
            version=F("version") + 1,
        )
        command = command_queue(
            session=session,
            kind=CommandKind.MESSAGE,
            issued_by=user,
            payload={"text": payload["text"]},
        )
        hooks.session_changed(session.pk)
    session.refresh_from_db()
    return command


def session_clone(*, session: AgentSession, user: Any) -> AgentSession:
    """A fresh session with the same agent, settings and metadata, owned by the cloner."""
    if not selectors.can_view(user, session):
        raise selectors.NotFound(str(session.pk))
    clone = session_create(
        agent=session.agent,
        owner=user,
        kind=session.kind,
        actor=user.get_username(),
        title=f"{session.title} (clone)"[:300],
        model=session.model,
        may_override_model=True,
        temperature=session.temperature,
        max_tokens=session.max_tokens,
        timeout_seconds=session.timeout_seconds,
        initiative=session.initiative,
        metadata={f: getattr(session, f) for f in METADATA_FIELDS},
    )
    AgentSession.objects.filter(pk=clone.pk).update(cloned_from=session)
    clone.cloned_from = session
    return clone


def session_transfer(*, session: AgentSession, user: Any, to_user: Any) -> AgentSession:
    """Hand a live session to another person: a new session owned by them continues it and the
    original stops with stop reason `transfer`."""
    _require_act(user, session)
    if session.is_terminal:
        raise LifecycleError(f"A {session.status} session cannot be transferred.")
    if to_user.pk == session.owner_id:
        raise InvalidInput("to_user", "already owns this session")
    with transaction.atomic():
        successor = session_create(
            agent=session.agent,
            owner=to_user,
            kind=session.kind,
            actor=user.get_username(),
            title=session.title,
            model=session.model,
            may_override_model=True,
            temperature=session.temperature,
            max_tokens=session.max_tokens,
            timeout_seconds=session.timeout_seconds,
            initiative=session.initiative,
            parent=session.parent,
            metadata={f: getattr(session, f) for f in METADATA_FIELDS},
        )
        AgentSession.objects.filter(pk=successor.pk).update(transferred_from=session)
        final = Status.ENDED if session.kind == Kind.CHAT else Status.STOPPED
        if session.kind != Kind.CHAT and session.status != Status.STOPPING:
            lifecycle.transition(
                session, Status.STOPPING, actor=user.get_username(), stop_reason=StopReason.TRANSFER
            )
        lifecycle.transition(
            session,
            final,
            actor=user.get_username(),
            reason="transfer",
            stop_reason=StopReason.TRANSFER,
        )
        _action_event(
            session,
            user=user,
            action="transfer",
            to=to_user.get_username(),
            successor=str(successor.pk),
        )
        command_queue(
            session=session,
            kind=CommandKind.TRANSFER,
            issued_by=user,
            payload={"to_session": str(successor.pk), "to_user": to_user.get_username()},
        )
    successor.refresh_from_db()
    return successor


def session_delete(*, session: AgentSession, user: Any) -> None:
    """Delete a session with its transcript and commands (children keep living, unparented)."""
    _require_act(user, session)
    with transaction.atomic():
        facts = deleted_facts(AgentSession.objects.filter(pk=session.pk))
        AgentSession.objects.filter(pk=session.pk).delete()
        hooks.sessions_deleted(facts)


def deleted_facts(sessions: Any) -> list[dict[str, Any]]:
    """What the live views need to route a removal, read before the rows go."""
    return [
        {**row, "id": str(row["id"])}
        for row in sessions.values(
            "id", "tenant_id", "project_id", "owner_id", "kind", agent_owner_id=F("agent__owner_id")
        )
    ]


def session_set_pinned(*, session: AgentSession, user: Any, pinned: bool) -> AgentSession:
    """Pinned sessions are exempt from retention."""
    _require_act(user, session)
    with transaction.atomic():
        AgentSession.objects.filter(pk=session.pk).update(pinned=pinned, version=F("version") + 1)
        _action_event(session, user=user, action="pin" if pinned else "unpin")
        hooks.session_changed(session.pk)
    session.refresh_from_db()
    return session


# --- agent policies -----------------------------------------------------------------------------


class PolicyInvalid(InvalidInput):
    """A session policy that breaks the rules of `policies.policy_errors`."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        field, message = next(iter(self.errors.items()))
        super().__init__(field, message)


def agent_policy_update(*, agent: Agent, user: Any, changes: Mapping[str, Any]) -> Agent:
    """Change an agent's session policy: check the user may, validate the resulting policy, save
    it and record a PolicyChange {field: [old, new]} when anything changed. The one path for the
    admin and the agent settings page. Sweeps read the current policy, so open sessions follow
    the new one from the next sweep on."""
    # policies builds on this module (its sweeps queue commands), so import it at call time.
    from sessions_app import policies

    unknown = set(changes) - set(policies.POLICY_FIELDS)
    if unknown:
        raise InvalidInput("changes", f"not policy fields: {', '.join(sorted(unknown))}")
    if not policies.can_edit_policy(user, agent):
        raise NotAllowed("Only tenant admins and the agent's owner may change its session policy.")
    with transaction.atomic():
        # Lock so two editors at once each see (and audit) the other's result as "old".
        current = Agent.objects.select_for_update().get(pk=agent.pk)
        values = {f: getattr(current, f) for f in policies.POLICY_FIELDS}
        values.update(changes)
        errors = policies.policy_errors(values)
        if errors:
            raise PolicyInvalid(errors)
        diff = {
            f: [getattr(current, f), values[f]]
            for f in policies.POLICY_FIELDS
            if getattr(current, f) != values[f]
        }
        if diff:
            for field, (_old, new) in diff.items():
                setattr(current, field, new)
            current.save(update_fields=list(diff))
            PolicyChange.objects.create(
                tenant_id=current.tenant_id, agent=current, changed_by=user, changes=diff
            )
    for field in policies.POLICY_FIELDS:
        setattr(agent, field, getattr(current, field))
    return agent


# --- runtime commands -------------------------------------------------------------------------


def command_mark(*, command_ids: Iterable[Any], status: str, result: str = "") -> int:
    """Advance commands queued -> delivered -> applied/rejected; never backwards."""
    now = timezone.now()
    if status == CommandStatus.DELIVERED:
        return RuntimeCommand.objects.filter(
            pk__in=list(command_ids), status=CommandStatus.QUEUED
        ).update(status=status, delivered_at=now)
    if status in (CommandStatus.APPLIED, CommandStatus.REJECTED):
        return RuntimeCommand.objects.filter(
            pk__in=list(command_ids), status__in=[CommandStatus.QUEUED, CommandStatus.DELIVERED]
        ).update(status=status, acked_at=now, result=result[:2000])
    raise InvalidInput("status", "must be delivered, applied or rejected")


def commands_claim(
    *, agent_ids: Iterable[int], limit: int = 100, redeliver_after: timedelta | None = None
) -> list[RuntimeCommand]:
    """The commands a runtime for these agents has not acknowledged yet, oldest first, marked
    delivered (now). Commands stay pending until acknowledged, so runtimes deduplicate by id.

    `redeliver_after`: hand out a delivered-but-unacknowledged command again only when it was
    last handed out that long ago (a long-polling runtime polls again while it still works on
    it); None hands them all out (a runtime that just reconnected may have missed them).
    """
    now = timezone.now()
    pending = Q(status=CommandStatus.QUEUED)
    if redeliver_after is None:
        pending |= Q(status=CommandStatus.DELIVERED)
    else:
        pending |= Q(status=CommandStatus.DELIVERED, delivered_at__lt=now - redeliver_after)
    commands = list(
        RuntimeCommand.objects.filter(pending, agent_id__in=list(agent_ids)).order_by(
            "created_at", "id"
        )[:limit]
    )
    if commands:
        RuntimeCommand.objects.filter(
            pk__in=[c.pk for c in commands], status__in=selectors.PENDING_COMMAND_STATUSES
        ).update(status=CommandStatus.DELIVERED, delivered_at=now)
        for command in commands:
            command.status, command.delivered_at = CommandStatus.DELIVERED, now
    return commands


def command_claim(*, command_id: Any, agent_ids: Iterable[int]) -> RuntimeCommand | None:
    """One command for these agents, marked delivered; None when it is not theirs or was
    already acknowledged."""
    command = RuntimeCommand.objects.filter(
        pk=command_id, agent_id__in=list(agent_ids), status__in=selectors.PENDING_COMMAND_STATUSES
    ).first()
    if command is not None and command.status == CommandStatus.QUEUED:
        command_mark(command_ids=[command.pk], status=CommandStatus.DELIVERED)
        command.refresh_from_db()
    return command


def command_ack(
    *, command_id: Any, agent_ids: Iterable[int], status: str, result: str = ""
) -> RuntimeCommand:
    """A runtime's acknowledgement. Only commands for the runtime's own agents; repeating an
    acknowledgement changes nothing (the first applied/rejected stands)."""
    command = RuntimeCommand.objects.filter(pk=command_id, agent_id__in=list(agent_ids)).first()
    if command is None:
        raise selectors.NotFound(str(command_id))
    command_mark(command_ids=[command.pk], status=status, result=result)
    command.refresh_from_db()
    return command


def token_touch(*, token: ApiToken) -> None:
    """Record use, at most once a minute per token so busy runtimes do not write on every call."""
    now = timezone.now()
    if token.last_used_at is not None and now - token.last_used_at < timedelta(minutes=1):
        return
    ApiToken.objects.filter(pk=token.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - timedelta(minutes=1))
    ).update(last_used_at=now)
    token.last_used_at = now


# --- tokens -----------------------------------------------------------------------------------

TOKEN_PREFIX = "scc_"


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def token_create(
    *, tenant: Tenant, kind: str, name: str, user: Any, agents: Iterable[Agent] = ()
) -> tuple[ApiToken, str]:
    """Make a token; the raw value is returned once and never stored."""
    if kind not in TokenKind.values:
        raise InvalidInput("kind", f"must be one of {', '.join(TokenKind.values)}")
    agents = list(agents)
    if any(a.tenant_id != tenant.pk for a in agents):
        raise InvalidInput("agents", "every agent must belong to the token's workspace")
    if kind == TokenKind.RUNTIME and not agents:
        raise InvalidInput("agents", "a runtime token needs at least one agent")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        token = ApiToken.objects.create(
            tenant=tenant,
            kind=kind,
            name=name,
            user=user,
            prefix=raw[:12],
            token_hash=hash_token(raw),
        )
        token.agents.set(agents)
    return token, raw


def token_revoke(*, token: ApiToken) -> None:
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())

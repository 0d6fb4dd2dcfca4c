"""Sessions coming and going: create (from a page, a personal token or a runtime), start
(server-created sessions wait for a runtime), pin and delete. Clone and transfer are in
`handover.py`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from sessions_app import hooks, lifecycle, metrics, selectors
from sessions_app.errors import InvalidInput, NotAllowed
from sessions_app.models import (
    Agent,
    AgentSession,
    CommandKind,
    EventType,
    Initiative,
    Origin,
    RuntimeCommand,
)
from sessions_app.redaction import redact_text
from sessions_app.services.commands import command_queue
from sessions_app.services.common import (
    MAX_MESSAGE_CHARS,
    action_event,
    check_cap,
    lock_owner,
    record_user_message,
    require_act,
)
from sessions_app.services.starts import start_configuration
from sessions_app.states import INITIAL, Kind, Status, fold, retention_deadline

METADATA_FIELDS = ("sandbox", "profile", "runtime", "repo", "branch", "origin")


def user_may_use_agent(user: Any, agent: Agent) -> bool:
    """Agent owner, tenant admin, or reporter and up on the agent's project; always only as a
    member of the agent's workspace (the rule is `selectors.agents_usable_by`)."""
    return selectors.agents_usable_by(user).filter(pk=agent.pk).exists()


def may_override_model(user: Any, agent: Agent) -> bool:
    """Whether the policy allows overriding the model is the agent's; who may do it is its
    owner and the workspace's admins (DESIGN 7)."""
    return agent.owner_id == user.pk or selectors.is_tenant_admin(user, agent.tenant_id)


def check_model(*, agent: Agent, model: str, user: Any) -> str:
    chosen = model or agent.default_model
    if chosen == agent.default_model:
        return chosen
    if not agent.allow_model_override:
        raise InvalidInput(
            "model", f"this agent's policy does not allow overriding {agent.default_model!r}"
        )
    if not may_override_model(user, agent):
        raise InvalidInput("model", "you may not override the model of this agent")
    if agent.allowed_models and chosen not in agent.allowed_models:
        raise InvalidInput(
            "model", f"must be one of {', '.join(agent.allowed_models)} for this agent"
        )
    return chosen


def _clean_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    meta = dict(metadata or {})
    unknown = set(meta) - set(METADATA_FIELDS)
    if unknown:
        raise InvalidInput("metadata", f"unknown keys: {', '.join(sorted(unknown))}")
    if meta.get("origin", Origin.API) not in Origin.values:
        raise InvalidInput("origin", f"must be one of {', '.join(Origin.values)}")
    return meta


def _redacted_texts(values: Mapping[str, str]) -> tuple[dict[str, str], dict[str, int]]:
    """Titles and run metadata come from outside (a repo URL may carry a token): redacted like a
    transcript, with the counts kept for the session's redaction report."""
    out: dict[str, str] = {}
    totals: dict[str, int] = {}
    for field, value in values.items():
        result = redact_text(str(value))
        out[field] = result.text
        totals = lifecycle.add_counts(totals, result.counts)
    return out, totals


def session_create(
    *,
    agent: Agent,
    owner: Any,
    kind: str,
    actor: str,
    requested_by: Any = None,
    title: str = "",
    model: str = "",
    temperature: float = 0.7,
    max_tokens: int = 4000,
    timeout_seconds: int = 300,
    initiative: Initiative | None = None,
    parent: AgentSession | None = None,
    metadata: Mapping[str, str] | None = None,
) -> AgentSession:
    """Create a session in its kind's initial status, enforcing the agent's policy and the
    per-user concurrency cap atomically. `requested_by` is the person whose rights decide a
    model override (the owner unless someone clones or transfers for them)."""
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
    chosen_model = check_model(agent=agent, model=model, user=requested_by or owner)
    if initiative is not None and initiative.tenant_id != agent.tenant_id:
        raise InvalidInput("initiative", "belongs to another workspace")
    if parent is not None and parent.tenant_id != agent.tenant_id:
        raise InvalidInput("parent", "belongs to another workspace")
    if not user_may_use_agent(owner, agent):
        raise InvalidInput("owner", f"{owner} may not use the agent {agent.name!r}")
    texts, redaction_counts = _redacted_texts({"title": title.strip(), **_clean_metadata(metadata)})
    title = texts.pop("title")

    status = INITIAL[kind]
    now = timezone.now()
    with transaction.atomic():
        lock_owner(owner.pk)
        check_cap(agent=agent, owner_id=owner.pk)
        session = AgentSession(
            tenant_id=agent.tenant_id,
            project_id=agent.project_id,
            agent=agent,
            owner=owner,
            kind=kind,
            status=status,
            title=title[:300],
            model=chosen_model,
            temperature=temperature,
            max_tokens=max_tokens,
            timeout_seconds=timeout_seconds,
            initiative=initiative,
            parent=parent,
            started_at=now if status == Status.RUNNING else None,
            status_changed_at=now,
            last_activity_at=now,
            expires_at=retention_deadline(now, agent.retention_days),
            redaction_counts=redaction_counts,
            **texts,
        )
        session.short_id = session.id.hex[:8]
        if not session.title:
            session.title = f"{agent.name} · {Kind(kind).label.lower()} {session.short_id}"
        session.title_folded = fold(session.title)
        session.save(force_insert=True)
        lifecycle.append_system_event(
            session,
            event_type=EventType.STATUS_CHANGE,
            actor=actor,
            payload={"from": None, "to": status, "reason": "created"},
        )
        hooks.session_changed(session.pk)
    metrics.count_redactions(redaction_counts)
    return session


def start_request(
    *,
    session: AgentSession,
    origin: str,
    issued_by: Any,
    text: str = "",
    cloned_from: AgentSession | None = None,
    transfer: Mapping[str, Any] | None = None,
) -> RuntimeCommand:
    """Queue the `start` of a session the server created (origin: new, clone or transfer) for
    the runtimes of its agent, with its full configuration; it waits ("waiting for a
    runtime") until one accepts, and the start-timeout sweep fails it if none does. A
    transfer carries what the receiver needs to continue where the source stopped
    (`starts.transfer_context`, read before the source stopped)."""
    now = timezone.now()
    AgentSession.objects.filter(pk=session.pk).update(**lifecycle.bump(awaiting_runtime_since=now))
    session.awaiting_runtime_since = now
    payload: dict[str, Any] = {
        "origin": origin,
        "session": start_configuration(session, METADATA_FIELDS),
        "input": text,
    }
    if cloned_from is not None:
        payload["cloned_from"] = str(cloned_from.pk)
    if transfer is not None:
        payload["transfer"] = dict(transfer)
    command = command_queue(
        session=session, kind=CommandKind.START, issued_by=issued_by, payload=payload
    )
    hooks.session_changed(session.pk)
    return command


def _first_input(text: str) -> str:
    text = text.strip()
    if len(text) > MAX_MESSAGE_CHARS:
        raise InvalidInput("input", f"must be at most {MAX_MESSAGE_CHARS} characters")
    return text


def session_new(
    *, agent: Agent, user: Any, kind: str, text: str = "", **settings: Any
) -> AgentSession:
    """A session a person starts (the page's New session, or the API with a personal token):
    owned by them, under the agent's policy and their concurrency cap; the first message or
    goal goes into the transcript, and the session waits for a runtime of the agent."""
    text = _first_input(text)
    with transaction.atomic():
        session = session_create(
            agent=agent, owner=user, kind=kind, actor=user.get_username(), **settings
        )
        stored = record_user_message(session, user=user, text=text) if text else ""
        start_request(session=session, origin="new", issued_by=user, text=stored)
    session.refresh_from_db()
    return session


def session_create_for_token(
    *,
    access: selectors.TokenAccess,
    agent_id: int,
    owner_username: str = "",
    initiative_id: int | None = None,
    parent_id: Any = None,
    text: str = "",
    **settings: Any,
) -> AgentSession:
    """A session asked for through the API: runtime tokens create for their agents on behalf of
    a named member (the runtime runs it, so nothing is queued; `text` only goes into the
    transcript); personal tokens start sessions owned by their own user, like the page."""
    agent = selectors.agent_in_tenant(tenant_id=access.tenant_id, agent_id=agent_id)
    if agent is None:
        raise InvalidInput("agent", f"no agent with id {agent_id} in this workspace")
    if access.is_runtime:
        if agent.pk not in access.agent_ids:
            raise NotAllowed(f"This token is not scoped to the agent {agent.name!r}.")
        if not owner_username:
            raise InvalidInput("owner", "a runtime token must name the session's owner")
        owner = selectors.member_by_username(tenant_id=access.tenant_id, username=owner_username)
        if owner is None:
            raise InvalidInput("owner", f"no user {owner_username!r} in this workspace")
    else:
        owner = access.user
        if owner_username and owner_username != owner.get_username():
            raise InvalidInput("owner", "a personal token creates sessions for its own user only")
    initiative = None
    if initiative_id is not None:
        initiative = selectors.initiative_in_tenant(
            tenant_id=access.tenant_id, initiative_id=initiative_id
        )
        if initiative is None:
            raise InvalidInput(
                "initiative", f"no initiative with id {initiative_id} in this workspace"
            )
    parent = None
    if parent_id is not None:
        parent = selectors.sessions_visible_to_token(access).filter(pk=parent_id).first()
        if parent is None:
            raise InvalidInput("parent", f"no session {parent_id} visible to you")
    if not access.is_runtime:
        return session_new(
            agent=agent, user=owner, text=text, initiative=initiative, parent=parent, **settings
        )
    text = _first_input(text)
    with transaction.atomic():
        session = session_create(
            agent=agent,
            owner=owner,
            kind=settings.pop("kind"),
            actor=agent.name,
            initiative=initiative,
            parent=parent,
            **settings,
        )
        if text:
            record_user_message(session, user=owner, text=text)
    session.refresh_from_db()
    return session


def session_delete(*, session: AgentSession, user: Any) -> None:
    """Delete a session with its transcript and commands (children keep living, unparented)."""
    require_act(user, session)
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
    require_act(user, session)
    with transaction.atomic():
        AgentSession.objects.filter(pk=session.pk).update(**lifecycle.bump(pinned=pinned))
        action_event(session, user=user, action="pin" if pinned else "unpin")
        hooks.session_changed(session.pk)
    session.refresh_from_db()
    return session


def session_archive(*, session: AgentSession, user: Any) -> AgentSession:
    """Archive a finished session now (the archive sweep does it after the policy's days)."""
    require_act(user, session)
    with transaction.atomic():
        updated = AgentSession.objects.filter(
            pk=session.pk, archived_at__isnull=True, live=False
        ).update(**lifecycle.bump(archived_at=timezone.now()))
        if updated:
            action_event(session, user=user, action="archive")
            hooks.session_changed(session.pk)
    session.refresh_from_db()
    return session

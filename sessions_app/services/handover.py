"""Handing a session on: clone (a fresh session with the same configuration, for the cloner) and
transfer (a successor that continues it, owned by another person or run by another agent, while
the source ends or stops). Both successors are started by a runtime of their agent (`start`)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from sessions_app import lifecycle, selectors
from sessions_app.errors import Conflict, InvalidInput
from sessions_app.models import Agent, AgentSession, CommandKind, StopReason
from sessions_app.services.commands import command_queue
from sessions_app.services.common import action_event, require_act, require_view
from sessions_app.services.sessions import (
    METADATA_FIELDS,
    check_model,
    session_create,
    start_request,
    user_may_use_agent,
)
from sessions_app.services.starts import start_withdraw, transfer_context
from sessions_app.states import Kind, Status


def _copy_settings(session: AgentSession) -> dict[str, Any]:
    return {
        "agent": session.agent,
        "kind": session.kind,
        "model": session.model,
        "temperature": session.temperature,
        "max_tokens": session.max_tokens,
        "timeout_seconds": session.timeout_seconds,
        "initiative": session.initiative,
        "metadata": {f: getattr(session, f) for f in METADATA_FIELDS},
    }


def session_clone(*, session: AgentSession, user: Any) -> AgentSession:
    """A fresh session with the same agent, settings and metadata, owned by the cloner, under
    the same model and concurrency policy as any session they create; a runtime of the agent
    starts it from the beginning."""
    require_view(user, session)
    with transaction.atomic():
        clone = session_create(
            owner=user,
            actor=user.get_username(),
            title=f"{session.title} (clone)"[:300],
            **_copy_settings(session),
        )
        AgentSession.objects.filter(pk=clone.pk).update(cloned_from=session)
        clone.cloned_from = session
        action_event(clone, user=user, action="clone", source=str(session.pk))
        start_request(session=clone, origin="clone", issued_by=user, cloned_from=session)
    clone.refresh_from_db()
    return clone


def _check_transferable(session: AgentSession) -> None:
    if session.is_terminal:
        raise Conflict(f"A {session.status} session cannot be transferred.")


def _retire_source(session: AgentSession, *, user: Any) -> None:
    """The source of a transfer: a chat ends, a flow run or task stops; both with stop reason
    `transfer`. If no runtime took it yet, its `start` is withdrawn: the successor runs instead."""
    start_withdraw(session, reason="transferred before a runtime accepted it")
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


def session_transfer(*, session: AgentSession, user: Any, to_user: Any) -> AgentSession:
    """Hand a live session to another person: a new session owned by them continues it and the
    original stops with stop reason `transfer`."""
    require_act(user, session)
    _check_transferable(session)
    if to_user.pk == session.owner_id:
        raise InvalidInput("to_user", "already owns this session")
    with transaction.atomic():
        successor = session_create(
            owner=to_user,
            requested_by=user,
            actor=user.get_username(),
            title=session.title,
            parent=session.parent,
            **_copy_settings(session),
        )
        AgentSession.objects.filter(pk=successor.pk).update(transferred_from=session)
        successor.transferred_from = session
        # What the receiver continues from is read before the source stops.
        context = transfer_context(session)
        _retire_source(session, user=user)
        # The successor is linked by its `transferred_from`, shown to those who may see it
        # (lineage); its id in the transcript would reach everyone who reads this one.
        action_event(session, user=user, action="transfer", to=to_user.get_username())
        command_queue(
            session=session,
            kind=CommandKind.TRANSFER,
            issued_by=user,
            payload={"to_session": str(successor.pk), "to_user": to_user.get_username()},
        )
        _start_successor(successor, user=user, source=session, context=context)
    successor.refresh_from_db()
    return successor


def _start_successor(
    successor: AgentSession, *, user: Any, source: AgentSession, context: dict[str, Any]
) -> None:
    action_event(successor, user=user, action="transfer_received", source=str(source.pk))
    start_request(
        session=successor,
        origin="transfer",
        issued_by=user,
        transfer=context,
    )


def model_on(agent: Agent, *, model: str, user: Any) -> str:
    """The model a transferred session runs on under the target agent's policy: the source's
    when that policy (and the person's rights) allow it, otherwise the agent's default."""
    try:
        return check_model(agent=agent, model=model, user=user)
    except InvalidInput:
        return agent.default_model


def session_transfer_to_agent(*, session: AgentSession, user: Any, to_agent: Agent) -> AgentSession:
    """Hand a live session to another agent: the successor belongs to that agent and the same
    owner, under the target's policy (model, timeout bound, concurrency cap), and continues
    on the user's next turn (chats) or at once (runs). The source ends (chats) or stops (runs)
    with stop reason `transfer`."""
    require_act(user, session)
    _check_transferable(session)
    if to_agent.tenant_id != session.tenant_id:
        raise InvalidInput("to_agent", "no such agent in this workspace")
    if to_agent.pk == session.agent_id:
        raise InvalidInput("to_agent", f"the session already runs on {to_agent.name!r}")
    if not user_may_use_agent(user, to_agent):
        raise InvalidInput("to_agent", f"you may not use the agent {to_agent.name!r}")
    settings = _copy_settings(session)
    settings.update(
        agent=to_agent,
        model=model_on(to_agent, model=session.model, user=user),
        timeout_seconds=max(60, min(session.timeout_seconds, to_agent.max_duration_seconds)),
    )
    with transaction.atomic():
        successor = session_create(
            owner=session.owner,
            requested_by=user,
            actor=user.get_username(),
            title=session.title,
            parent=session.parent,
            **settings,
        )
        AgentSession.objects.filter(pk=successor.pk).update(transferred_from=session)
        successor.transferred_from = session
        context = transfer_context(session)
        _retire_source(session, user=user)
        action_event(session, user=user, action="transfer", to_agent=to_agent.name)
        command_queue(
            session=session,
            kind=CommandKind.TRANSFER,
            issued_by=user,
            payload={"to_session": str(successor.pk), "to_agent": to_agent.name},
        )
        _start_successor(successor, user=user, source=session, context=context)
    successor.refresh_from_db()
    return successor


def session_hand_over(
    *, session: AgentSession, user: Any, to_user: str = "", to_agent: int | None = None
) -> AgentSession:
    """A transfer as people ask for it (the page's dialog, the API): exactly one of a member's
    username or an agent id of the session's workspace."""
    if bool(to_user) == (to_agent is not None):
        raise InvalidInput("to_user", "name either a person (to_user) or an agent (to_agent)")
    if to_agent is not None:
        agent = selectors.agent_in_tenant(tenant_id=session.tenant_id, agent_id=to_agent)
        if agent is None:
            raise InvalidInput("to_agent", f"no agent with id {to_agent} in this workspace")
        return session_transfer_to_agent(session=session, user=user, to_agent=agent)
    person = selectors.member_by_username(tenant_id=session.tenant_id, username=to_user)
    if person is None:
        raise InvalidInput("to_user", f"no member of this workspace is called {to_user!r}")
    return session_transfer(session=session, user=user, to_user=person)

"""Rules several services share: who may act, who may use an agent, the concurrency cap, and
the audit line an operator action writes."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import F
from django.utils import timezone

from sessions_app import lifecycle, selectors
from sessions_app.errors import ConcurrencyLimit, NotAllowed, NotFound
from sessions_app.models import Agent, AgentSession, EventType
from sessions_app.redaction import redact_payload

User = get_user_model()
MAX_MESSAGE_CHARS = 20_000


def require_act(user: Any, session: AgentSession) -> None:
    """Permission before state, everywhere: 404 for a session the user may not see, 403 for
    one they may see but not act on; only then may a service look at the status."""
    if not selectors.can_view(user, session):
        raise NotFound(str(session.pk))
    if not selectors.can_act(user, session):
        raise NotAllowed("You may view this session but not act on it.")


def require_view(user: Any, session: AgentSession) -> None:
    if not selectors.can_view(user, session):
        raise NotFound(str(session.pk))


def action_event(session: AgentSession, *, user: Any, action: str, **extra: Any) -> None:
    lifecycle.append_system_event(
        session,
        event_type=EventType.ACTION,
        actor=user.get_username(),
        payload={"action": action, "by": user.get_username(), **extra},
    )


def check_cap(*, agent: Agent, owner_id: int, exclude_pk: Any = None) -> None:
    limit = agent.max_concurrent_sessions_per_user
    if limit is None:
        return
    qs = AgentSession.objects.filter(owner_id=owner_id, agent_id=agent.pk, live=True)
    if exclude_pk is not None:
        qs = qs.exclude(pk=exclude_pk)
    current = qs.count()
    if current >= limit:
        raise ConcurrencyLimit(limit=limit, current=current, agent=agent.name)


def lock_owner(owner_id: int) -> None:
    # The per-user cap is a count-then-insert; serialising on the owner's row makes it atomic
    # without locking anyone else's creates. (SQLite serialises writers at BEGIN IMMEDIATE.)
    list(User.objects.select_for_update(no_key=True, of=("self",)).filter(pk=owner_id).values("pk"))


def record_user_message(session: AgentSession, *, user: Any, text: str) -> str:
    """A person's message in the transcript (redacted), counted and as activity; returns the
    stored text. The caller holds a transaction and queues whatever tells the runtime."""
    payload, counts = redact_payload({"role": "user", "text": text, "author": user.get_username()})
    lifecycle.append_system_event(
        session,
        event_type=EventType.MESSAGE,
        actor=user.get_username(),
        payload=payload,
        redactions=counts,
    )
    lifecycle.record_redactions(session, counts)
    AgentSession.objects.filter(pk=session.pk).update(
        **lifecycle.bump(
            message_count=F("message_count") + 1,
            **lifecycle.activity_fields(session.agent, now=timezone.now()),
        )
    )
    return str(payload["text"])

"""After-commit notifications.

The domain does not import the live UI or the runtime channel: command_center registers its
listeners here when its app is ready. Listeners run only after the surrounding transaction
commits, so nobody hears about a change that was rolled back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from uuid import UUID

from django.db import transaction

Listener = Callable[[Any], None]
_listeners: dict[str, list[Listener]] = {
    "session_changed": [],
    "command_queued": [],
    "sessions_deleted": [],
    "access_changed": [],
    "tokens_changed": [],
}


# Caches of who may do what (the token cache in selectors/tokens.py). They forget at once when
# access changes, before commit too: forgetting early only costs a re-read.
_access_caches: list[Callable[[], None]] = []


def register_access_cache(forget: Callable[[], None]) -> None:
    if forget not in _access_caches:
        _access_caches.append(forget)


def forget_access() -> None:
    for forget in list(_access_caches):
        forget()


def register(topic: str, listener: Listener) -> None:
    if listener not in _listeners[topic]:
        _listeners[topic].append(listener)


def unregister(topic: str, listener: Listener) -> None:
    if listener in _listeners[topic]:
        _listeners[topic].remove(listener)


def _notify_on_commit(topic: str, payload: Any) -> None:
    def notify() -> None:
        for listener in list(_listeners[topic]):
            listener(payload)

    transaction.on_commit(notify)


def session_changed(session_id: UUID) -> None:
    _notify_on_commit("session_changed", session_id)


def command_queued(command_id: UUID) -> None:
    _notify_on_commit("command_queued", command_id)


def sessions_deleted(facts: list[dict[str, Any]]) -> None:
    """Deleted rows can no longer be loaded after commit, so the caller passes what the live
    views need to route the removal: id, tenant_id, project_id, owner_id, agent_owner_id, kind."""
    if facts:
        _notify_on_commit("sessions_deleted", facts)


def access_changed(user_ids: Iterable[int]) -> None:
    """What these people may see or do changed (a membership, a role, the tenant-admin flag, an
    agent's owner): their open sockets re-check their access."""
    ids = sorted({int(i) for i in user_ids if i is not None})
    if ids:
        forget_access()
        _notify_on_commit("access_changed", ids)


def tokens_changed(token_ids: Iterable[int]) -> None:
    """These tokens were revoked, deleted or re-scoped: sockets holding them re-check."""
    ids = sorted({int(i) for i in token_ids if i is not None})
    if ids:
        forget_access()
        _notify_on_commit("tokens_changed", ids)

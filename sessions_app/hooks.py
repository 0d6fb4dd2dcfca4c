"""After-commit notifications.

The domain does not import the live UI or the runtime channel: command_center registers its
listeners here when its app is ready. Listeners run only after the surrounding transaction
commits, so nobody hears about a change that was rolled back.
"""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from django.db import transaction

Listener = Callable[[UUID], None]
_listeners: dict[str, list[Listener]] = {"session_changed": [], "command_queued": []}


def register(topic: str, listener: Listener) -> None:
    if listener not in _listeners[topic]:
        _listeners[topic].append(listener)


def unregister(topic: str, listener: Listener) -> None:
    if listener in _listeners[topic]:
        _listeners[topic].remove(listener)


def _notify_on_commit(topic: str, object_id: UUID) -> None:
    def notify() -> None:
        for listener in list(_listeners[topic]):
            listener(object_id)

    transaction.on_commit(notify)


def session_changed(session_id: UUID) -> None:
    _notify_on_commit("session_changed", session_id)


def command_queued(command_id: UUID) -> None:
    _notify_on_commit("command_queued", command_id)

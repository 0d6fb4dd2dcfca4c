"""A small client for agent runtimes: create sessions, post events, receive commands.

It speaks only the public HTTP API and the /ws/runtime/ websocket, and imports nothing from
Django, so a runtime can vendor this one directory (it needs `httpx`, and `websockets` for the
websocket; without it, commands arrive by long-poll). The modules import each other relatively
so the copy works under any package name.

    client = RuntimeClient("http://127.0.0.1:8000", token)
    session = client.create_session(kind="flow_run", agent=3, owner="alice", title="Nightly")
    batch = client.batch(session["id"])
    batch.status("running")
    batch.step("started", "Fetch data", index=1, total=3)
    batch.flush()  # one POST; a retry resends the same event ids, so nothing is stored twice
    for command in client.commands(stop=stop_event):
        ...  # obey, then client.ack(command["id"], "applied")

A `start` command is a session the server created (New session on the page or with a personal
token, clone, transfer) for one of the token's agents: its payload has `origin` (new, clone,
transfer), `session` (the full configuration: kind, title, model, temperature, max_tokens,
timeout_seconds, metadata, ...), `input` (the first message or goal) and, for a transfer,
`transfer` (the source's id, where it stood, a summary and the end of its transcript).
`client.accept_start(command)` accepts it and says whether this runtime won it; then run it
(post its events like any session's).

Failures: network errors and 429/5xx answers are retried with exponential backoff (the server
may be restarting); other errors raise an ApiError subclass carrying the server's message.

Modules: api (RuntimeClient), events (event helpers, EventBatch, batch limits), errors (the
error tree), retry (Backoff), websocket (the websocket command channel).
"""

from __future__ import annotations

from .api import RuntimeClient
from .errors import (
    ApiError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    Unavailable,
    error_for,
)
from .events import (
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    MAX_EVENT_BYTES,
    EventBatch,
    event,
    new_event_id,
    split_batches,
    storable,
)
from .retry import RETRY_STATUSES, Backoff
from .websocket import WS_CLOSE_FORBIDDEN, WS_CLOSE_UNAUTHORIZED

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_BATCH_EVENTS",
    "MAX_EVENT_BYTES",
    "RETRY_STATUSES",
    "WS_CLOSE_FORBIDDEN",
    "WS_CLOSE_UNAUTHORIZED",
    "ApiError",
    "Backoff",
    "Conflict",
    "EventBatch",
    "Forbidden",
    "InvalidInput",
    "NotFound",
    "PayloadTooLarge",
    "RuntimeClient",
    "Unauthorized",
    "Unavailable",
    "error_for",
    "event",
    "new_event_id",
    "split_batches",
    "storable",
]

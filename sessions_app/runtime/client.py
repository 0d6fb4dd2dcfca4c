"""A small client for agent runtimes: create sessions, post events, receive commands.

It speaks only the public HTTP API and the /ws/runtime/ websocket, and imports nothing from
Django, so a runtime can vendor this one file (it needs `httpx`, and `websockets` for the
websocket; without it, commands arrive by long-poll).

    client = RuntimeClient("http://127.0.0.1:8000", token)
    session = client.create_session(kind="flow_run", agent=3, owner="alice", title="Nightly")
    batch = client.batch(session["id"])
    batch.status("running")
    batch.step("started", "Fetch data", index=1, total=3)
    batch.flush()  # one POST; a retry resends the same event ids, so nothing is stored twice
    for command in client.commands(stop=stop_event):
        ...  # obey, then client.ack(command["id"], "applied")

Failures: network errors and 429/5xx answers are retried with exponential backoff (the server
may be restarting); other errors raise an ApiError subclass carrying the server's message.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import httpx

logger = logging.getLogger(__name__)

# The server's limits (see docs/api.md); batches are split to stay under them.
MAX_BATCH_EVENTS = 500
MAX_BATCH_BYTES = 1024 * 1024
MAX_EVENT_BYTES = 256 * 1024
# Room for the {"events": [...]} envelope and the separators between events.
_BATCH_BYTES_BUDGET = MAX_BATCH_BYTES - 4096

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# A str holding a surrogate code point cannot be encoded as UTF-8 (a broken \ud800 escape).
_SURROGATE = re.compile("[\ud800-\udfff]")
WS_CLOSE_UNAUTHORIZED = 4401
WS_CLOSE_FORBIDDEN = 4403


# --- errors -------------------------------------------------------------------------------------


class ApiError(Exception):
    """The server refused a request; `status`, `code`, `message`, `field` come from its answer."""

    def __init__(self, status: int, body: Mapping[str, Any] | None) -> None:
        body = body or {}
        self.status = status
        self.code = str(body.get("code", ""))
        self.message = str(body.get("message", "")) or f"HTTP {status}"
        self.field = body.get("field")
        self.details = body.get("details") or {}
        self.body = dict(body)
        super().__init__(f"{status} {self.code}: {self.message}")


class InvalidInput(ApiError):
    """400 or 422: a field is wrong (`field` says which)."""


class Unauthorized(ApiError):
    """401: the token is unknown or revoked."""


class Forbidden(ApiError):
    """403: the token may not do this."""


class NotFound(ApiError):
    """404: no such session (or not visible to this token)."""


class Conflict(ApiError):
    """409: an illegal status change, the concurrency cap, or a session in the wrong state."""


class PayloadTooLarge(ApiError):
    """413: a batch or an event over the server's limits."""


class Unavailable(Exception):
    """The server could not be reached (or kept failing) through every retry."""


_ERRORS: dict[int, type[ApiError]] = {
    400: InvalidInput,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: InvalidInput,
}


def error_for(status: int, body: Mapping[str, Any] | None) -> ApiError:
    return _ERRORS.get(status, ApiError)(status, body)


# --- retries ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter. `attempts=None` retries forever (a demo or daemon that
    should outlive a server restart); the default gives up after about a minute."""

    initial: float = 0.5
    maximum: float = 15.0
    factor: float = 2.0
    jitter: float = 0.25
    attempts: int | None = 8

    def delays(self) -> Iterator[float]:
        delay = self.initial
        n = 0
        while self.attempts is None or n < self.attempts - 1:
            n += 1
            yield delay * (1 + random.uniform(-self.jitter, self.jitter))
            delay = min(self.maximum, delay * self.factor)


# --- events ---------------------------------------------------------------------------------------


def new_event_id() -> str:
    return uuid.uuid4().hex


def event(
    type: str, payload: Mapping[str, Any], *, event_id: str | None = None, actor: str = ""
) -> dict[str, Any]:
    """One event for post_events(). The id is fixed here, so every retry reuses it."""
    item: dict[str, Any] = {
        "event_id": event_id or new_event_id(),
        "type": type,
        "payload": storable(dict(payload)),
    }
    if actor:
        item["actor"] = actor
    return item


def storable(value: Any) -> Any:
    """Replace what the server refuses (NUL, unpaired surrogates) with U+FFFD; tool output is
    arbitrary bytes more often than one would think."""
    if isinstance(value, str):
        if "\x00" in value:
            value = value.replace("\x00", "\ufffd")
        if not value.isascii():
            value = _SURROGATE.sub("\ufffd", value)
        return value
    if isinstance(value, dict):
        return {storable(str(k)): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    return value


def _encoded_size(item: Mapping[str, Any]) -> int:
    return len(json.dumps(item, ensure_ascii=False).encode("utf-8"))


def split_batches(events: Sequence[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    """Split into batches within the server's event-count and byte limits."""
    batches: list[list[Mapping[str, Any]]] = []
    current: list[Mapping[str, Any]] = []
    size = 0
    for item in events:
        item_size = _encoded_size(item) + 1
        if item_size > MAX_EVENT_BYTES:
            raise PayloadTooLarge(
                413,
                {
                    "code": "payload_too_large",
                    "message": f"event {item.get('event_id')} is {item_size} bytes; the server "
                    f"takes at most {MAX_EVENT_BYTES} per event",
                },
            )
        if current and (len(current) >= MAX_BATCH_EVENTS or size + item_size > _BATCH_BYTES_BUDGET):
            batches.append(current)
            current, size = [], 0
        current.append(item)
        size += item_size
    if current:
        batches.append(current)
    return batches


# --- the client -----------------------------------------------------------------------------------


class RuntimeClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 15.0,
        backoff: Backoff | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.backoff = backoff or Backoff()
        self.sleep = sleep
        self.http = httpx.Client(
            base_url=f"{self.base_url}/api/v1",
            headers={"Authorization": f"Bearer {token}", "User-Agent": "scc-runtime-client/1"},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> RuntimeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing --

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """One API call, retried on network errors and 429/5xx. Only safe to retry because
        every call of this API is idempotent or harmless to repeat (event ids make batches
        idempotent); session creation is the exception, see create_session()."""
        delays = self.backoff.delays()
        while True:
            try:
                response = self.http.request(
                    method,
                    path,
                    json=json_body,
                    params=params,
                    timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
                )
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code not in RETRY_STATUSES:
                    return self._answer(response)
                problem = f"HTTP {response.status_code}"
            delay = next(delays, None)
            if delay is None:
                raise Unavailable(f"{method} {path} failed after retries: {problem}")
            logger.warning("%s %s: %s; retrying in %.1fs", method, path, problem, delay)
            self.sleep(delay)

    @staticmethod
    def _answer(response: httpx.Response) -> Any:
        try:
            body = response.json()
        except ValueError:
            body = {"code": "error", "message": response.text[:500]}
        if response.is_success:
            return body
        raise error_for(response.status_code, body if isinstance(body, dict) else None)

    # -- sessions --

    def create_session(
        self,
        *,
        kind: str,
        agent: int,
        owner: str | None = None,
        title: str = "",
        model: str = "",
        temperature: float | None = None,
        max_tokens: int | None = None,
        timeout_seconds: int | None = None,
        initiative: int | None = None,
        parent: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Create a session. Raises Conflict at the owner's concurrency cap. A retry after a
        lost answer may create a second session (creation has no idempotency key)."""
        body: dict[str, Any] = {"kind": kind, "agent": agent, "title": storable(title)}
        optional = {
            "owner": owner,
            "model": model or None,
            "temperature": temperature,
            "max_tokens": max_tokens,
            "timeout_seconds": timeout_seconds,
            "initiative": initiative,
            "parent": parent,
            "metadata": dict(metadata) if metadata else None,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        result: dict[str, Any] = self.request("POST", "/sessions", json_body=body)
        return result

    def get_session(self, session_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", f"/sessions/{session_id}")
        return result

    def list_sessions(self, **filters: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/sessions", params=filters)
        return result

    def events(self, session_id: str, *, after: int = 0, limit: int = 200) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "GET", f"/sessions/{session_id}/events", params={"after": after, "limit": limit}
        )
        return result

    def post_events(
        self, session_id: str, events: Iterable[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """Post events (made with event()), split into batches within the server's limits.
        Each batch is retried as-is, same ids, so a retry after a lost answer stores nothing
        twice. Returns the per-event results ({event_id, seq}) in order."""
        items = [e if "event_id" in e else {**e, "event_id": new_event_id()} for e in events]
        results: list[dict[str, Any]] = []
        for chunk in split_batches(items):
            answer = self.request(
                "POST", f"/sessions/{session_id}/events", json_body={"events": chunk}
            )
            results.extend(answer["results"])
        return results

    def batch(self, session_id: str) -> EventBatch:
        return EventBatch(self, session_id)

    # -- agents, token --

    def whoami(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/token")
        return result

    def agents(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.request("GET", "/agents")["items"]
        return result

    # -- commands --

    def poll_commands(self, *, wait: int = 25) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.request(
            "GET", "/runtime/commands", params={"wait": wait}, timeout=wait + 15
        )["items"]
        return result

    def ack(self, command_id: str, status: str, result: str = "") -> dict[str, Any]:
        """`applied` or `rejected` (with `result` saying why); `delivered` is optional."""
        answer: dict[str, Any] = self.request(
            "POST",
            f"/runtime/commands/{command_id}/ack",
            json_body={"status": status, "result": storable(result)[:2000]},
        )
        return answer

    def commands(
        self, *, stop: threading.Event | None = None, transport: str = "auto"
    ) -> Iterator[dict[str, Any]]:
        """Yield commands as they come, each once, until `stop` is set.

        transport: "websocket", "poll", or "auto" (the websocket, falling back to long-poll
        when the server or this Python has no websocket). Reconnects with backoff forever;
        a refused token raises Unauthorized/Forbidden instead (retrying cannot help).
        Acknowledge each command with ack() when it is applied or rejected.
        """
        stop = stop or threading.Event()
        seen: deque[str] = deque(maxlen=2000)
        use_ws = transport in ("auto", "websocket") and _websockets_available()
        if transport == "websocket" and not use_ws:
            raise RuntimeError("transport='websocket' needs the websockets package")
        delays = replace(self.backoff, attempts=None).delays()
        while not stop.is_set():
            try:
                source = self._ws_commands(stop) if use_ws else self._polled_commands(stop)
                for command in source:
                    delays = replace(self.backoff, attempts=None).delays()  # healthy again
                    if command["id"] in seen:
                        continue
                    seen.append(command["id"])
                    yield command
            except _WebsocketUnsupported as exc:
                if transport == "websocket":
                    raise
                logger.warning("websocket unavailable (%s); falling back to long-poll", exc)
                use_ws = False
                continue
            except (Unauthorized, Forbidden):
                raise
            except (OSError, Unavailable, ApiError, _WebsocketDropped) as exc:
                delay = next(delays)
                logger.warning("command channel down (%s); reconnecting in %.1fs", exc, delay)
                stop.wait(delay)

    def _polled_commands(self, stop: threading.Event) -> Iterator[dict[str, Any]]:
        while not stop.is_set():
            yield from self.poll_commands(wait=20)

    def websocket_url(self) -> str:
        scheme, rest = self.base_url.split("://", 1)
        return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/ws/runtime/"

    def _ws_commands(self, stop: threading.Event) -> Iterator[dict[str, Any]]:
        from websockets.exceptions import InvalidHandshake, InvalidStatus
        from websockets.sync.client import connect

        try:
            with connect(
                self.websocket_url(),
                additional_headers={"Authorization": f"Bearer {self.token}"},
                open_timeout=10,
            ) as ws:
                logger.info("command channel connected (websocket)")
                yield from self._ws_loop(ws, stop)
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (403, 404, 405, 426):
                # No websocket route, or a proxy/origin check in the way: long-poll still works.
                raise _WebsocketUnsupported(f"HTTP {status}") from exc
            raise _WebsocketDropped(f"handshake refused: HTTP {status}") from exc
        except InvalidHandshake as exc:
            raise _WebsocketDropped(str(exc)) from exc

    def _ws_loop(self, ws: Any, stop: threading.Event) -> Iterator[dict[str, Any]]:
        from websockets.exceptions import ConnectionClosed

        while not stop.is_set():
            try:
                raw = ws.recv(timeout=1.0)
            except TimeoutError:
                continue
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else None
                if code == WS_CLOSE_UNAUTHORIZED:
                    raise Unauthorized(
                        401, {"code": "unauthorized", "message": "token refused"}
                    ) from exc
                if code == WS_CLOSE_FORBIDDEN:
                    raise Forbidden(
                        403, {"code": "forbidden", "message": "not a runtime token"}
                    ) from exc
                raise _WebsocketDropped(f"closed ({code})") from exc
            try:
                message = json.loads(raw)
            except ValueError:
                continue
            if message.get("type") == "command":
                command = {k: v for k, v in message.items() if k != "type"}
                # Tell the server it arrived; the final ack (applied/rejected) comes later.
                ws.send(json.dumps({"type": "ack", "id": command["id"], "status": "delivered"}))
                yield command
            elif message.get("type") == "error":
                logger.warning("command channel: %s", message.get("message"))


class _WebsocketUnsupported(Exception):
    pass


class _WebsocketDropped(Exception):
    pass


def _websockets_available() -> bool:
    try:
        import websockets.sync.client  # noqa: F401
    except ImportError:
        return False
    return True


# --- batching -------------------------------------------------------------------------------------


class EventBatch:
    """Events for one session, posted together by flush().

    Ids are fixed when an event is added, so a flush that fails (and is retried, by the client
    or by calling flush() again) never stores an event twice. After a Conflict the server
    stored nothing of the batch; call discard() to drop it or fix and flush again.
    """

    def __init__(self, client: RuntimeClient, session_id: str) -> None:
        self.client = client
        self.session_id = session_id
        self.pending: list[dict[str, Any]] = []

    def __len__(self) -> int:
        return len(self.pending)

    def add(self, type: str, payload: Mapping[str, Any], *, actor: str = "") -> str:
        item = event(type, payload, actor=actor)
        self.pending.append(item)
        return str(item["event_id"])

    def flush(self) -> list[dict[str, Any]]:
        if not self.pending:
            return []
        results = self.client.post_events(self.session_id, self.pending)
        self.pending = []
        return results

    def discard(self) -> None:
        self.pending = []

    # -- one helper per event type (payloads as docs/api.md describes them) --

    def message(self, role: str, text: str, *, actor: str = "") -> str:
        return self.add("message", {"role": role, "text": text}, actor=actor)

    def thinking(self, text: str) -> str:
        return self.add("thinking", {"text": text})

    def tool_call(self, name: str, arguments: Mapping[str, Any], *, call_id: str = "") -> str:
        call_id = call_id or f"call_{uuid.uuid4().hex[:12]}"
        self.add("tool_call", {"call_id": call_id, "name": name, "arguments": dict(arguments)})
        return call_id

    def tool_result(
        self, call_id: str, output: str, *, name: str = "", is_error: bool = False
    ) -> str:
        return self.add(
            "tool_result",
            {"call_id": call_id, "name": name, "output": output, "is_error": is_error},
        )

    def file_edit(self, path: str, before: str | None, after: str | None) -> str:
        return self.add("file_edit", {"path": path, "before": before, "after": after})

    def step(self, state: str, name: str, *, index: int, total: int | None = None) -> str:
        payload: dict[str, Any] = {"state": state, "name": name, "index": index}
        if total is not None:
            payload["total"] = total
        return self.add("step", payload)

    def checkpoint(self, state: str, name: str, note: str = "") -> str:
        return self.add("checkpoint", {"state": state, "name": name, "note": note})

    def status(self, to: str, *, reason: str = "", error: Mapping[str, str] | None = None) -> str:
        payload: dict[str, Any] = {"to": to}
        if reason:
            payload["reason"] = reason
        if error:
            payload["error"] = dict(error)
        return self.add("status_change", payload)

    def progress(self, **counts: int) -> str:
        return self.add("progress", counts)

    def error(self, message: str, *, code: str = "") -> str:
        return self.add("error", {"code": code, "message": message})

    def agent_status(self, status: str) -> str:
        return self.add("agent_status", {"status": status})

    def artifact(
        self, name: str, *, uri: str = "", mime_type: str = "", size_bytes: int | None = None
    ) -> str:
        payload: dict[str, Any] = {"name": name, "uri": uri, "mime_type": mime_type}
        if size_bytes is not None:
            payload["size_bytes"] = size_bytes
        return self.add("artifact", payload)

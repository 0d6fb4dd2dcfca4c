"""RuntimeClient: one method per API call, each retried with backoff, and the stream of
commands (websocket, or long-poll without one)."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from typing import Any

import httpx

from .errors import ApiError, Forbidden, Unauthorized, Unavailable, error_for
from .events import EventBatch, new_event_id, split_batches, storable
from .retry import RETRY_STATUSES, Backoff
from .websocket import (
    WebsocketDropped,
    WebsocketUnsupported,
    websocket_commands,
    websockets_available,
)

logger = logging.getLogger(__name__)


def new_idempotency_key() -> str:
    return uuid.uuid4().hex


def _in_flight(response: httpx.Response) -> bool:
    """409 idempotency_in_flight: the first attempt of this very request is still running on
    the server (a retry overtook it); waiting gets its answer."""
    if response.status_code != 409:
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("code") == "idempotency_in_flight"


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
        # Names this process in `start` acknowledgements, so it can tell whether it won one.
        self.instance = f"runtime-{uuid.uuid4().hex[:12]}"
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
        idempotency_key: str | None = None,
    ) -> Any:
        """One API call, retried on network errors and 429/5xx. Safe to retry because every
        call is idempotent: event ids make batches so, and creates and actions send an
        Idempotency-Key (the same one on every retry), so a lost answer is replayed, not
        repeated."""
        delays = self.backoff.delays()
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        while True:
            try:
                response = self.http.request(
                    method,
                    path,
                    json=json_body,
                    params=params,
                    headers=headers,
                    timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
                )
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code not in RETRY_STATUSES and not _in_flight(response):
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
        """Create a session. Raises Conflict at the owner's concurrency cap. Sent with a fresh
        Idempotency-Key that every retry reuses, so a lost answer never makes a second
        session."""
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
        result: dict[str, Any] = self.request(
            "POST", "/sessions", json_body=body, idempotency_key=new_idempotency_key()
        )
        return result

    def act(self, session_id: str, action: str, body: Mapping[str, Any] | None = None) -> Any:
        """An operator action (personal tokens): cancel, stop, pause, resume, end,
        checkpoint/approve, checkpoint/reject, messages. Idempotent like create_session()."""
        return self.request(
            "POST",
            f"/sessions/{session_id}/{action}",
            json_body=dict(body) if body is not None else None,
            idempotency_key=new_idempotency_key(),
        )

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

    def accept_start(self, command: Mapping[str, Any]) -> bool:
        """Accept a `start` command (a session the server created: new from a page, clone,
        transfer). Several runtimes may serve one agent and all receive it; the first
        `applied` wins. True when this runtime won and should run the session."""
        mine = f"started by {self.instance}"
        answer = self.ack(str(command["id"]), "applied", mine)
        return answer.get("status") == "applied" and answer.get("result") == mine

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
        use_ws = transport in ("auto", "websocket") and websockets_available()
        if transport == "websocket" and not use_ws:
            raise RuntimeError("transport='websocket' needs the websockets package")
        delays = replace(self.backoff, attempts=None).delays()
        while not stop.is_set():
            try:
                source = (
                    websocket_commands(self.websocket_url(), self.token, stop)
                    if use_ws
                    else self._polled_commands(stop)
                )
                for command in source:
                    delays = replace(self.backoff, attempts=None).delays()  # healthy again
                    if command["id"] in seen:
                        continue
                    seen.append(command["id"])
                    yield command
            except WebsocketUnsupported as exc:
                if transport == "websocket":
                    raise
                logger.warning("websocket unavailable (%s); falling back to long-poll", exc)
                use_ws = False
                continue
            except (Unauthorized, Forbidden):
                raise
            except (OSError, Unavailable, ApiError, WebsocketDropped) as exc:
                delay = next(delays)
                logger.warning("command channel down (%s); reconnecting in %.1fs", exc, delay)
                stop.wait(delay)

    def _polled_commands(self, stop: threading.Event) -> Iterator[dict[str, Any]]:
        while not stop.is_set():
            yield from self.poll_commands(wait=20)

    def websocket_url(self) -> str:
        scheme, rest = self.base_url.split("://", 1)
        return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/ws/runtime/"

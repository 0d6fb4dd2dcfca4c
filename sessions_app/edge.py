"""What every transport checks at its edge, and how it answers when the database is away.

Input from outside (an API body, a form, a socket frame) is refused here, before any service
sees it, when it could not be processed or stored faithfully: JSON nested deeper than
`MAX_JSON_DEPTH` (pydantic and the serialisers recurse and hit their limits long before a
size limit would help), NUL characters and unpaired surrogates (PostgreSQL refuses both in text
and jsonb; an unpaired surrogate cannot even be encoded as UTF-8). Each transport turns the
`EdgeProblem` into its own answer (422, 400, a 4400 close), naming the field.

`DB_UNAVAILABLE` is what the database driver raises when the server is down, restarting or
refusing connections; transports answer it "try again later" (503 with Retry-After, close code
1013) instead of as a bug.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from django.db import InterfaceError, OperationalError

MAX_JSON_DEPTH = 64
DB_UNAVAILABLE: tuple[type[Exception], ...] = (OperationalError, InterfaceError)

try:  # daphne's websocket protocol; another ASGI server raises its own kind
    from autobahn.exception import Disconnected as _Disconnected
except ImportError:  # pragma: no cover - daphne is a dependency
    CLIENT_GONE: tuple[type[Exception], ...] = (ConnectionError,)
else:
    CLIENT_GONE = (_Disconnected, ConnectionError)
RETRY_AFTER_SECONDS = 5


class EdgeProblem(ValueError):
    """Input refused at the edge; `field` is a printable path such as events[0].payload.text."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.reason = message
        super().__init__(f"{field}: {message}")


def printable(text: str, limit: int = 80) -> str:
    """`text` made safe to put in an answer: unpaired surrogates and NULs escaped, shortened."""
    safe = text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
    return safe if len(safe) <= limit else safe[: limit - 1] + "…"


def storable(text: str) -> bool:
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    key = printable(key, 40)
    return f"{path}.{key}" if path else key


def check_json(value: Any, *, root: str = "") -> None:
    """Raise EdgeProblem for the first place in a parsed JSON value that is nested too deeply
    or holds a string (or key) that cannot be stored. Iterative, so any depth is safe."""
    stack: list[tuple[Any, str, int]] = [(value, root, 1)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            if not storable(item):
                raise EdgeProblem(
                    path or "body", "must not contain NUL characters or unpaired surrogates"
                )
            continue
        if not isinstance(item, dict | list):
            continue
        if depth > MAX_JSON_DEPTH:
            raise EdgeProblem(path or "body", f"is nested more than {MAX_JSON_DEPTH} levels deep")
        children: Iterable[tuple[str | int, Any]]
        if isinstance(item, dict):
            for key in item:
                if not storable(key):
                    raise EdgeProblem(
                        _join(path, key),
                        "keys must not contain NUL characters or unpaired surrogates",
                    )
            children = item.items()
        else:
            children = enumerate(item)
        # Reversed, so the first offending place in document order is reported.
        stack.extend(
            (child, _join(path, key), depth + 1) for key, child in reversed(list(children))
        )


def loads(data: str | bytes, *, root: str = "") -> Any:
    """json.loads for input from outside: no NaN or Infinity, bounded depth, storable text."""
    try:
        value = json.loads(data, parse_constant=_reject_constant)
    except RecursionError:
        raise EdgeProblem(
            root or "body", f"is nested more than {MAX_JSON_DEPTH} levels deep"
        ) from None
    except UnicodeDecodeError:
        raise EdgeProblem(root or "body", "is not UTF-8") from None
    except ValueError as exc:
        raise EdgeProblem(root or "body", f"is not valid JSON: {printable(str(exc))}") from None
    check_json(value, root=root)
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# --- sockets ------------------------------------------------------------------------------------

CLOSE_TRY_AGAIN_LATER = 1013  # the htmx ws extension reconnects on 1006, 1012 and 1013 only
CLOSE_BAD_FRAME = 4400
CLOSE_INTERNAL_ERROR = 1011

_log = logging.getLogger(__name__)

ASGIApp = Callable[
    [dict[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


class SocketGuard:
    """ASGI wrapper for every websocket route: the one place that decides how a socket ends
    when its consumer raises. The database away closes with 1013 ("try again later"), so
    browsers and runtimes reconnect; a frame refused at the edge closes with 4400; only a real
    bug closes with 1011 (logged). A socket that had not been accepted yet is accepted first, so
    the client learns the code instead of seeing a failed handshake."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(
        self,
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        state = {"accepted": False, "closed": False, "gone": False}

        async def tracking_send(message: Any) -> None:
            kind = message.get("type")
            if kind == "websocket.accept":
                state["accepted"] = True
            elif kind == "websocket.close":
                state["closed"] = True
            if state["gone"]:
                return
            try:
                await send(message)
            except CLIENT_GONE:
                # The client left while a push was on its way (daphne learns it before the
                # consumer does): drop the frame; its disconnect follows and cleans up.
                state["gone"] = True

        try:
            await self.app(scope, receive, tracking_send)
        except DB_UNAVAILABLE as exc:
            _log.warning("socket %s closed, database unavailable: %s", scope.get("path"), exc)
            await self._close(send, state, CLOSE_TRY_AGAIN_LATER)
        except EdgeProblem:
            await self._close(send, state, CLOSE_BAD_FRAME)
        except Exception:
            _log.exception("socket %s failed", scope.get("path"))
            await self._close(send, state, CLOSE_INTERNAL_ERROR)

    @staticmethod
    async def _close(
        send: Callable[[Any], Awaitable[None]], state: dict[str, bool], code: int
    ) -> None:
        if state["closed"] or state["gone"]:
            return
        try:
            if not state["accepted"]:
                await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": code})
        except Exception:  # the connection is already gone; nothing left to tell
            _log.debug("could not close socket with %s", code, exc_info=True)


class GuardedConsumer:
    """Mixin (before AsyncWebsocketConsumer) for consumers: a handler that meets the database
    away closes the socket with 1013, a frame refused at the edge with 4400; the consumer then
    waits for its disconnect, so it leaves its groups as on any other close. SocketGuard stays
    the net for what happens before a consumer exists (the session lookup of the auth
    middleware)."""

    _accepted = False
    _closing = False

    async def accept(self, subprotocol: str | None = None, headers: Any = None) -> None:
        self._accepted = True
        await super().accept(subprotocol, headers)  # type: ignore[misc]

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        self._closing = True
        await super().close(code, reason)  # type: ignore[misc]

    async def dispatch(self, message: dict[str, Any]) -> None:
        await self.guarded(super().dispatch, message)  # type: ignore[misc]

    async def guarded(
        self, handler: Callable[[dict[str, Any]], Awaitable[None]], message: dict[str, Any]
    ) -> None:
        if self._closing and message.get("type") != "websocket.disconnect":
            return  # on its way out: only the disconnect (leaving groups) still matters
        try:
            await handler(message)
        except DB_UNAVAILABLE as exc:
            _log.warning("socket closed with 1013, database unavailable: %s", exc)
            await self.refuse(CLOSE_TRY_AGAIN_LATER)
        except EdgeProblem:
            await self.refuse(CLOSE_BAD_FRAME)

    async def refuse(self, code: int) -> None:
        """Close with `code`, accepting first so the client reads the code (a handshake refused
        before accept looks like 1006 to a browser)."""
        if self._closing:
            return
        if not self._accepted:
            await self.accept()
        await self.close(code=code)

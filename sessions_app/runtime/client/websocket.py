"""The command channel over the /ws/runtime/ websocket.

The `websockets` package is optional: it is imported only when a channel is opened, so the
client works (by long-poll) without it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

from .errors import Forbidden, Unauthorized

logger = logging.getLogger(__name__)

WS_CLOSE_UNAUTHORIZED = 4401
WS_CLOSE_FORBIDDEN = 4403


class WebsocketUnsupported(Exception):
    """The server has no websocket for us; long-poll instead."""


class WebsocketDropped(Exception):
    """The channel closed or could not open; reconnect."""


def websockets_available() -> bool:
    # The client is vendored by runtimes that may not install `websockets`: imported lazily,
    # and its absence only means long-polling.
    try:
        import websockets.sync.client  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


def websocket_commands(url: str, token: str, stop: threading.Event) -> Iterator[dict[str, Any]]:
    """Yield commands from one connection until `stop` is set or the connection ends."""
    from websockets.exceptions import InvalidHandshake, InvalidStatus  # noqa: PLC0415
    from websockets.sync.client import connect  # noqa: PLC0415

    try:
        with connect(
            url,
            additional_headers={"Authorization": f"Bearer {token}"},
            open_timeout=10,
        ) as ws:
            logger.info("command channel connected (websocket)")
            yield from _receive(ws, stop)
    except InvalidStatus as exc:
        status = exc.response.status_code
        if status in (403, 404, 405, 426):
            # No websocket route, or a proxy/origin check in the way: long-poll still works.
            raise WebsocketUnsupported(f"HTTP {status}") from exc
        raise WebsocketDropped(f"handshake refused: HTTP {status}") from exc
    except InvalidHandshake as exc:
        raise WebsocketDropped(str(exc)) from exc


def _receive(ws: Any, stop: threading.Event) -> Iterator[dict[str, Any]]:
    from websockets.exceptions import ConnectionClosed  # noqa: PLC0415

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
            raise WebsocketDropped(f"closed ({code})") from exc
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

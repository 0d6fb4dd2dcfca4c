"""Lets daphne send the close codes 1012 ("service restart") and 1013 ("try again later").

RFC 6455 and the IANA registry define both, and they are what browsers' clients reconnect on
(the htmx ws extension retries only 1006, 1012 and 1013), so the sockets close with 1013 while
the database is away (sessions_app/edge.py). Daphne sends a close through autobahn's
`sendClose`, which accepts only 1000 and 3000-4999 and raises for anything else: the consumer's
close then fails, and the socket stays open but deaf. This sends those two codes through
autobahn's lower-level `sendCloseFrame`, which writes the same close frame without the check.
"""

from __future__ import annotations

from typing import Any

from daphne.ws_protocol import WebSocketProtocol

REGISTERED_RETRY_CODES = frozenset({1012, 1013})
_server_close = WebSocketProtocol.serverClose


def _server_close_allowing_retry_codes(self: Any, code: int | None = None) -> None:
    if code in REGISTERED_RETRY_CODES:
        self.sendCloseFrame(code=code, isReply=False)
    else:
        _server_close(self, code)


def install() -> None:
    WebSocketProtocol.serverClose = _server_close_allowing_retry_codes

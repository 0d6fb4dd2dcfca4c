"""Socket helpers for the security tests: dashboard and runtime communicators."""

from __future__ import annotations

import json
from typing import Any

from channels.testing import WebsocketCommunicator

from config.asgi import application


async def dashboard(user: Any, query: str) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(
        application, f"/ws/command-center/?{query}", headers=[(b"origin", b"http://127.0.0.1")]
    )
    communicator.scope["user"] = user
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    return communicator


async def runtime(token: str | None) -> WebsocketCommunicator:
    headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
    communicator = WebsocketCommunicator(application, "/ws/runtime/", headers=headers)
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    return communicator


async def frames(communicator: WebsocketCommunicator, quiet: float = 1.0) -> list[Any]:
    """Everything that arrives until the socket has been quiet for `quiet` seconds (text frames
    as strings, a close as the close message)."""
    out: list[Any] = []
    while not await communicator.receive_nothing(timeout=quiet):
        message = await communicator.receive_output()
        if message["type"] == "websocket.close":
            out.append(message)
            break
        out.append(message.get("text", ""))
    return out


async def until_closed(communicator: WebsocketCommunicator, within: float) -> tuple[list[str], Any]:
    """Frames up to the close, and the close code; fails if the socket is not closed in time."""
    texts: list[str] = []
    while True:
        message = await communicator.receive_output(timeout=within)
        if message["type"] == "websocket.close":
            return texts, message.get("code")
        texts.append(message.get("text", ""))


def commands(texts: list[Any]) -> list[dict[str, Any]]:
    out = []
    for text in texts:
        if isinstance(text, str):
            message = json.loads(text)
            if message.get("type") == "command":
                out.append(message)
    return out


async def until(communicator: WebsocketCommunicator, needle: str, within: float) -> str:
    """The first text frame containing `needle`; pushes already under way may come first."""
    while True:
        message = await communicator.receive_output(timeout=within)
        assert message["type"] != "websocket.close", f"closed while waiting for {needle!r}"
        if needle in message.get("text", ""):
            return str(message["text"])

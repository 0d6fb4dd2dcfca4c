"""The channel layer decodes a group message once for all local subscribers (real Redis)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from django.conf import settings

from config.channel_layer import ChannelLayer


def _layer() -> ChannelLayer:
    config: Any = settings.CHANNEL_LAYERS["default"]["CONFIG"]
    return ChannelLayer(hosts=config["hosts"], prefix=f"{config['prefix']}-{uuid.uuid4().hex}")


def _counting(layer: ChannelLayer, monkeypatch: Any) -> list[bytes]:
    """The bytes the layer's serializer decodes, in order."""
    decoded: list[bytes] = []
    real = layer._serializer.deserialize

    def counting(message: bytes) -> Any:
        decoded.append(message)
        return real(message)

    monkeypatch.setattr(layer._serializer, "deserialize", counting)
    return decoded


def test_the_subscribers_of_a_group_share_one_decoded_message(monkeypatch: Any) -> None:
    layer = _layer()
    decoded = _counting(layer, monkeypatch)

    async def scenario() -> list[Any]:
        channels = [await layer.new_channel() for _ in range(5)]
        for channel in channels:
            await layer.group_add("g", channel)
        try:
            await layer.group_send("g", {"type": "session.changes", "sessions": [{"id": "a"}]})
            first = await asyncio.wait_for(asyncio.gather(*(layer.receive(c) for c in channels)), 5)
            await layer.group_send("g", {"type": "session.changes", "sessions": [{"id": "b"}]})
            second = await asyncio.wait_for(
                asyncio.gather(*(layer.receive(c) for c in channels)), 5
            )
            return [first, second]
        finally:
            await layer.flush()

    first, second = asyncio.run(scenario())
    assert all(m == {"type": "session.changes", "sessions": [{"id": "a"}]} for m in first)
    assert all(m == {"type": "session.changes", "sessions": [{"id": "b"}]} for m in second)
    # Five subscribers, two messages: two decodings (channels-redis alone makes ten).
    assert len(decoded) == 2
    assert all(m is first[0] for m in first)


def test_equal_messages_published_twice_are_decoded_twice(monkeypatch: Any) -> None:
    layer = _layer()
    decoded = _counting(layer, monkeypatch)

    async def scenario() -> list[Any]:
        channel = await layer.new_channel()
        await layer.group_add("g", channel)
        try:
            got = []
            for _ in range(2):
                await layer.group_send("g", {"type": "ping"})
                got.append(await asyncio.wait_for(layer.receive(channel), 5))
            return got
        finally:
            await layer.flush()

    one, two = asyncio.run(scenario())
    assert one == two == {"type": "ping"}
    # Each publication arrives as its own bytes: remembered by identity, never by content.
    assert len(decoded) == 2
    assert one is not two

"""The channel layer: Redis pub/sub, with each published message decoded once per process."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from channels_redis.pubsub import RedisPubSubChannelLayer


class ChannelLayer(RedisPubSubChannelLayer):  # type: ignore[misc]
    """channels-redis' pub/sub layer puts the same received bytes in the queue of every local
    subscriber of a group and decodes them in each subscriber's `receive()`: a flush that
    reaches 100 dashboards was decoded 100 times (every changed session with its fragments).
    Here the subscribers share one decoded message. Handlers only read what they receive (the
    consumers' handlers change nothing in it), so sharing it is safe.

    Remembered by the identity of the bytes object, which stays referenced while remembered, so
    an identity is never mistaken for another message's."""

    REMEMBERED = 16

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._decoded: OrderedDict[int, tuple[bytes, Any]] = OrderedDict()
        self._decoded_lock = threading.Lock()

    def deserialize(self, message: bytes) -> Any:
        key = id(message)
        with self._decoded_lock:
            found = self._decoded.get(key)
            if found is not None and found[0] is message:
                return found[1]
        decoded = super().deserialize(message)
        with self._decoded_lock:
            self._decoded[key] = (message, decoded)
            while len(self._decoded) > self.REMEMBERED:
                self._decoded.popitem(last=False)
        return decoded

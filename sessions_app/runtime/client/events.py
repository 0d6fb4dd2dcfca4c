"""Events as the server takes them: one helper per event type, text made storable, and
batches split to stay under the server's limits."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .errors import PayloadTooLarge

if TYPE_CHECKING:
    from .api import RuntimeClient

# The server's limits (see docs/api.md); batches are split to stay under them.
MAX_BATCH_EVENTS = 500
MAX_BATCH_BYTES = 1024 * 1024
MAX_EVENT_BYTES = 256 * 1024
# Room for the {"events": [...]} envelope and the separators between events.
_BATCH_BYTES_BUDGET = MAX_BATCH_BYTES - 4096

# A str holding a surrogate code point cannot be encoded as UTF-8 (a broken \ud800 escape).
_SURROGATE = re.compile("[\ud800-\udfff]")


def new_event_id() -> str:
    return uuid.uuid4().hex


def event(
    event_type: str, payload: Mapping[str, Any], *, event_id: str | None = None, actor: str = ""
) -> dict[str, Any]:
    """One event for post_events(). The id is fixed here, so every retry reuses it."""
    item: dict[str, Any] = {
        "event_id": event_id or new_event_id(),
        "type": event_type,
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

    def add(self, event_type: str, payload: Mapping[str, Any], *, actor: str = "") -> str:
        item = event(event_type, payload, actor=actor)
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

    def usage(self, *, tokens_in: int = 0, tokens_out: int = 0, cost: str = "0") -> str:
        """Additive: what this stretch of work consumed (the server sums them per session).
        `cost` is a decimal string, so no float rounding creeps into the totals."""
        return self.add("usage", {"tokens_in": tokens_in, "tokens_out": tokens_out, "cost": cost})

    def artifact(
        self, name: str, *, uri: str = "", mime_type: str = "", size_bytes: int | None = None
    ) -> str:
        payload: dict[str, Any] = {"name": name, "uri": uri, "mime_type": mime_type}
        if size_bytes is not None:
            payload["size_bytes"] = size_bytes
        return self.add("artifact", payload)

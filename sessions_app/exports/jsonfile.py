"""The JSON export: the full header and every event, one event per line.

One event per line keeps the file valid JSON for any reader, lets it be written and checked a
line at a time (bounded memory for any length), and lets `verify_export` name an altered event
even when the alteration broke the JSON of its line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sessions_app.exports.document import Snapshot, event_dict

EVENTS_OPEN = ' "events": ['
EVENTS_CLOSE = " ]"


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def json_lines(snapshot: Snapshot) -> Iterator[str]:
    """The file as text pieces; the header first, then the events as they are read."""
    header = snapshot.header()
    yield "{\n"
    yield f' "export": {dumps(header["export"])},\n'
    yield f' "session": {dumps(header["session"])},\n'
    yield EVENTS_OPEN + "\n"
    first = True
    for event in snapshot.events():
        if not first:
            yield ",\n"
        first = False
        yield "  " + dumps(event_dict(event))
    yield ("" if first else "\n") + EVENTS_CLOSE + "\n}\n"

"""The Markdown export: a readable transcript. A header table with every run parameter and
metadata field, then each event in order: messages by actor, thinking marked as such, tool
calls and results collapsed in <details>, file edits as fenced diff blocks.

Markdown is text, not a page: it is written here line by line (a template per event would
make a 100 000-event export take minutes). The only HTML in it, <details> and <summary>, is
built with `format_html`, which escapes what goes in."""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator
from typing import Any

from django.utils.html import format_html

from sessions_app.exports.document import Event, Snapshot, header_rows, redaction_text
from sessions_app.exports.text import diff_lines, fenced, pretty
from sessions_app.models import EventType


def _cell(value: str) -> str:
    # A table cell is one line; a pipe would end it early, and markup in a title stays text.
    return html.escape(" ".join(value.split()), quote=False).replace("|", "\\|")


def _details(summary: str, body: str, info: str = "text") -> str:
    opening = format_html("<details><summary>{}</summary>", summary)
    return f"{opening}\n\n{fenced(body, info)}\n</details>\n"


def _who(e: Event) -> str:
    p = e.payload if isinstance(e.payload, dict) else {}
    role = p.get("role")
    if role == "user":
        return str(p.get("author") or e.actor or "user")
    if role == "system":
        return "system"
    return str(e.actor or "agent")


def _message(e: Event, p: dict[str, Any]) -> str:
    role = p.get("role") or "agent"
    text = str(p.get("text") or "")
    return f"**{_cell(_who(e))}** ({role}):\n\n{text}\n"


def _thinking(e: Event, p: dict[str, Any]) -> str:
    return _details("Thinking", str(p.get("text") or ""))


def _tool_call(e: Event, p: dict[str, Any]) -> str:
    name = str(p.get("name") or "tool")
    call = f" · {p['call_id']}" if p.get("call_id") else ""
    return _details(f"Tool call: {name}{call}", pretty(p.get("arguments", {})), "json")


def _tool_result(e: Event, p: dict[str, Any]) -> str:
    name = str(p.get("name") or p.get("call_id") or "tool")
    error = " (error)" if p.get("is_error") else ""
    return _details(f"Tool result: {name}{error}", pretty(p.get("output", "")))


def _file_edit(e: Event, p: dict[str, Any]) -> str:
    lines = diff_lines(p, headers=True)
    body = "\n".join(line for _, line in lines) if lines else "(no textual change)"
    return f"Edited `{_cell(str(p.get('path') or ''))}`:\n\n{fenced(body, 'diff')}"


def _step(e: Event, p: dict[str, Any]) -> str:
    total = f" of {p['total']}" if p.get("total") else ""
    return f"Step {p.get('index', '')}{total} {p.get('state') or 'started'}: **{_cell(str(p.get('name') or ''))}**\n"


def _checkpoint(e: Event, p: dict[str, Any]) -> str:
    state = p.get("state") or ""
    by = f" by {e.actor}" if e.actor and state != "awaiting" else ""
    state_text = "awaiting approval" if state == "awaiting" else state
    note = f" — {p['note']}" if p.get("note") else ""
    return f"Checkpoint **{_cell(str(p.get('name') or ''))}**: {state_text}{by}{note}\n"


def _status_change(e: Event, p: dict[str, Any]) -> str:
    before = f"{p['from']} → " if p.get("from") else ""
    reason = f" ({p['reason']})" if p.get("reason") else ""
    stop = f" · stop reason {p['stop_reason']}" if p.get("stop_reason") else ""
    error = p.get("error")
    err = (
        f" · error {error.get('code', '')} {error.get('message', '')}"
        if isinstance(error, dict)
        else ""
    )
    return f"Status {before}**{p.get('to', '')}**{reason}{stop}{err}\n"


def _action(e: Event, p: dict[str, Any]) -> str:
    who = p.get("by") or e.actor
    extra = {k: v for k, v in p.items() if k not in ("action", "by")}
    details = "".join(f" · {k} {v}" for k, v in sorted(extra.items()))
    return f"**{_cell(str(who))}**: {p.get('action', '')}{details}\n"


def _error(e: Event, p: dict[str, Any]) -> str:
    return f"**Error** `{p.get('code') or 'error'}`: {p.get('message', '')}\n"


def _other(e: Event, p: dict[str, Any]) -> str:
    return f"{e.get_type_display()}: {_cell(pretty(p))}\n"


def _artifact(e: Event, p: dict[str, Any]) -> str:
    uri = f" · `{p['uri']}`" if p.get("uri") else ""
    return f"Artifact **{_cell(str(p.get('name') or 'output'))}**{uri}\n"


RENDER: dict[str, Callable[[Event, dict[str, Any]], str]] = {
    EventType.MESSAGE: _message,
    EventType.THINKING: _thinking,
    EventType.TOOL_CALL: _tool_call,
    EventType.TOOL_RESULT: _tool_result,
    EventType.FILE_EDIT: _file_edit,
    EventType.STEP: _step,
    EventType.CHECKPOINT: _checkpoint,
    EventType.STATUS_CHANGE: _status_change,
    EventType.ACTION: _action,
    EventType.ERROR: _error,
    EventType.ARTIFACT: _artifact,
}


def event_markdown(e: Event) -> str:
    payload = e.payload if isinstance(e.payload, dict) else {"value": e.payload}
    body = RENDER.get(e.type, _other)(e, payload)
    redacted = f" · {redaction_text(e.redactions)}" if e.redactions else ""
    stamp = format_html("<sub>#{} · {}{}</sub>", e.seq, e.created_at.isoformat(), redacted)
    return f"{body}\n{stamp}\n\n"


def markdown_lines(snapshot: Snapshot) -> Iterator[str]:
    header = snapshot.header()
    yield f"# {_cell(header['session']['title'])}\n\n"
    yield "| Field | Value |\n|---|---|\n"
    for label, value in header_rows(header):
        yield f"| {label} | {_cell(value)} |\n"
    yield "\n## Transcript\n\n"
    empty = True
    for event in snapshot.events():
        empty = False
        yield event_markdown(event)
    if empty:
        yield "No events.\n"

"""The verifiable bundle: a zip, written as it streams, holding the JSON, Markdown and PDF
exports, the redaction report, the action log and `manifest.json`, which chains the SHA-256 of
every event's canonical JSON in seq order and seals the whole with the server's key.
docs/exports.md describes the format; `verify.py` checks it."""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Iterable, Iterator
from typing import Any

from django.utils.crypto import salted_hmac

from sessions_app.exports.document import (
    CHAIN_START,
    Event,
    Snapshot,
    canonical,
    chain_next,
    event_dict,
    sha256_hex,
)
from sessions_app.exports.jsonfile import dumps, json_lines
from sessions_app.exports.markdown import markdown_lines
from sessions_app.exports.printed import pdf_bytes
from sessions_app.exports.stream import chunked
from sessions_app.models import EventType

BUNDLE_FORMAT = "scc-export-bundle"
BUNDLE_VERSION = 1
SEAL_SALT = "sessions_app.exports.bundle.seal"
JSON_NAME = "session.json"
MARKDOWN_NAME = "transcript.md"
PDF_NAME = "transcript.pdf"
REDACTIONS_NAME = "redaction-report.json"
ACTIONS_NAME = "action-log.json"
MANIFEST_NAME = "manifest.json"
SEALED_FILES = (JSON_NAME, MARKDOWN_NAME, PDF_NAME, REDACTIONS_NAME, ACTIONS_NAME)
# Who did what: operators' actions, every status change, checkpoint decisions.
ACTION_TYPES = (EventType.ACTION, EventType.STATUS_CHANGE, EventType.CHECKPOINT)


def seal_hmac(seal: dict[str, Any]) -> str:
    """HMAC-SHA256 of the seal's canonical JSON under a key derived from SECRET_KEY: a manifest
    rewritten to match altered files no longer carries this server's seal."""
    return salted_hmac(SEAL_SALT, canonical(seal), algorithm="sha256").hexdigest()


class _Sink(io.RawIOBase):
    """A write-only, unseekable file: zipfile then writes data descriptors after each member
    instead of seeking back, so the archive can leave as it is written."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def drain(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


def redaction_report_lines(snapshot: Snapshot) -> Iterator[str]:
    """Which rules fired, how often, in which events: names and counts, never values (the
    values were replaced before anything was stored)."""
    totals = dict(sorted((snapshot.session.redaction_counts or {}).items()))
    yield "{\n"
    yield f' "session_id": {dumps(str(snapshot.session.pk))},\n'
    yield ' "note": "Rule names and counts only: the redacted values were never stored.",\n'
    yield f' "totals": {dumps(totals)},\n'
    yield ' "events": [\n'
    first = True
    for e in snapshot.events(redacted_only=True):
        yield (
            ("" if first else ",\n")
            + "  "
            + dumps({"seq": e.seq, "event_id": e.event_id, "type": e.type, "counts": e.redactions})
        )
        first = False
    yield "\n ]\n}\n"


def _what(e: Event) -> str:
    p = e.payload if isinstance(e.payload, dict) else {}
    if e.type == EventType.STATUS_CHANGE:
        return f"status {p.get('from') or '?'} -> {p.get('to', '')}"
    if e.type == EventType.CHECKPOINT:
        return f"checkpoint {p.get('name', '')} {p.get('state', '')}".replace("  ", " ")
    return str(p.get("action", e.type))


def action_log_lines(snapshot: Snapshot) -> Iterator[str]:
    """Who did what, when: the session's audit events in seq order."""
    yield "[\n"
    first = True
    for e in snapshot.events(types=ACTION_TYPES):
        p = e.payload if isinstance(e.payload, dict) else {}
        entry = {
            "seq": e.seq,
            "event_id": e.event_id,
            "at": e.created_at.isoformat(),
            "who": p.get("by") or e.actor,
            "what": _what(e),
            "details": p,
        }
        yield ("" if first else ",\n") + "  " + dumps(entry)
        first = False
    yield "\n]\n"


def manifest_event_lines(snapshot: Snapshot, state: dict[str, Any]) -> Iterator[str]:
    """The manifest's event entries; leaves the chain head and count in `state`."""
    chain = CHAIN_START
    count = 0
    for e in snapshot.events():
        data = canonical(event_dict(e))
        chain = chain_next(chain, data)
        entry = {"seq": e.seq, "event_id": e.event_id, "sha256": sha256_hex(data), "chain": chain}
        yield ("" if count == 0 else ",\n") + "  " + dumps(entry)
        count += 1
    state["chain_head"], state["event_count"] = chain, count


def bundle_chunks(snapshot: Snapshot) -> Iterator[bytes]:
    """The zip as it is written. Each file is read from the database in its own pass over the
    same snapshot (events up to `up_to_seq`), so memory stays bounded however long the session."""
    sink = _Sink()
    stamp = snapshot.exported_at.timetuple()[:6]
    hashes: dict[str, str] = {}
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as zf:

        def member(name: str, pieces: Iterable[str | bytes]) -> Iterator[bytes]:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            digest = hashlib.sha256()
            with zf.open(info, "w", force_zip64=True) as out:
                for chunk in chunked(pieces):
                    digest.update(chunk)
                    out.write(chunk)
                    yield sink.drain()
            hashes[name] = digest.hexdigest()
            yield sink.drain()

        yield from member(JSON_NAME, json_lines(snapshot))
        yield from member(MARKDOWN_NAME, markdown_lines(snapshot))
        yield from member(PDF_NAME, [pdf_bytes(snapshot)])
        yield from member(REDACTIONS_NAME, redaction_report_lines(snapshot))
        yield from member(ACTIONS_NAME, action_log_lines(snapshot))
        yield from member(MANIFEST_NAME, _manifest_lines(snapshot, hashes))
    yield sink.drain()


def _manifest_lines(snapshot: Snapshot, hashes: dict[str, str]) -> Iterator[str]:
    header = snapshot.header()
    about = {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "session_id": str(snapshot.session.pk),
        "title": snapshot.session.title,
        "exported_at": snapshot.exported_at.isoformat(),
        "exported_by": snapshot.exported_by,
        "up_to_seq": snapshot.up_to_seq,
        "canonical_json": "json.dumps(event, sort_keys=True, separators=(',', ':'), "
        "ensure_ascii=False) encoded as UTF-8",
        "chain": "h_0 = 64 zeros; h_i = sha256(h_(i-1) as lowercase hex + canonical(event_i))",
    }
    yield "{\n"
    yield f' "bundle": {dumps(about)},\n'
    yield ' "events": [\n'
    state: dict[str, Any] = {}
    yield from manifest_event_lines(snapshot, state)
    seal: dict[str, Any] = {
        "session_id": str(snapshot.session.pk),
        "up_to_seq": snapshot.up_to_seq,
        "event_count": state["event_count"],
        "chain_head": state["chain_head"],
        "header_sha256": sha256_hex(canonical(header)),
        "files": {name: hashes[name] for name in SEALED_FILES},
    }
    seal["hmac_sha256"] = seal_hmac(seal)
    yield ("\n" if state["event_count"] else "") + " ],\n"
    yield f' "seal": {dumps(seal)}\n'
    yield "}\n"

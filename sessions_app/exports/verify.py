"""Check a bundle: every event of session.json against the manifest's chain (naming the
first that differs), then the header, every other file and the server's seal. Reads each file
a line at a time, so a bundle of any size is checked in bounded memory."""

from __future__ import annotations

import hashlib
import hmac
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from sessions_app.exports.bundle import (
    BUNDLE_FORMAT,
    JSON_NAME,
    MANIFEST_NAME,
    SEALED_FILES,
    seal_hmac,
)
from sessions_app.exports.document import CHAIN_START, canonical, chain_next, sha256_hex
from sessions_app.exports.jsonfile import EVENTS_CLOSE, EVENTS_OPEN


@dataclass(frozen=True)
class Verdict:
    intact: bool
    message: str
    seq: int | None = None
    event_id: str | None = None
    # 0 intact, 1 altered, 2 not a bundle at all (unreadable, or missing its manifest).
    exit_code: int = 0


class _Broken(Exception):
    def __init__(self, verdict: Verdict) -> None:
        self.verdict = verdict


def _altered(message: str, seq: int | None = None, event_id: str | None = None) -> _Broken:
    return _Broken(Verdict(False, message, seq, event_id, exit_code=1))


class _Lines:
    """A member's lines, hashing the raw bytes as they are read."""

    def __init__(self, zf: zipfile.ZipFile, name: str) -> None:
        self.name = name
        self._raw = zf.open(name)
        self.digest = hashlib.sha256()

    def __iter__(self) -> Iterator[str]:
        for raw in self._raw:
            self.digest.update(raw)
            yield raw.decode("utf-8", errors="replace").rstrip("\r\n")

    def drain(self) -> None:
        for _ in self:
            pass


def _value(line: str) -> Any:
    return json.loads(line.strip().rstrip(","))


def _section(lines: Iterator[str], closings: tuple[str, ...]) -> Iterator[str]:
    """The lines up to (not including) the first of `closings`, which is consumed."""
    for line in lines:
        if line in closings:
            return
        yield line


def _manifest(lines: Iterator[str]) -> tuple[dict[str, Any], Iterator[str]]:
    try:
        if next(lines) != "{":
            raise ValueError("no opening brace")
        key, about = next(iter(_value("{" + next(lines).rstrip(",") + "}").items()))
        if key != "bundle" or about.get("format") != BUNDLE_FORMAT:
            raise ValueError("not a bundle manifest")
        if next(lines) != EVENTS_OPEN:
            raise ValueError("no event list")
    except (StopIteration, ValueError, AttributeError) as exc:
        raise _altered(f"{MANIFEST_NAME} is damaged: {exc}") from None
    return about, _section(lines, (" ],", EVENTS_CLOSE))


def _name(seq: Any, event_id: Any) -> str:
    return f"event seq {seq} (event_id {event_id!r})"


def _check_events(entries: Iterator[str], events: Iterator[str]) -> tuple[str, int]:
    chain, count = CHAIN_START, 0
    while True:
        entry_line = next(entries, None)
        event_line = next(events, None)
        if entry_line is None and event_line is None:
            return chain, count
        try:
            entry = _value(entry_line) if entry_line is not None else None
        except ValueError:
            raise _altered(f"{MANIFEST_NAME} is damaged at its entry {count + 1}") from None
        if entry is None:
            raise _altered(
                f"{JSON_NAME} holds more events than the manifest lists (from position {count + 1})"
            )
        seq, event_id = entry.get("seq"), entry.get("event_id")
        if event_line is None:
            raise _altered(f"{_name(seq, event_id)} is missing from {JSON_NAME}", seq, event_id)
        try:
            event = _value(event_line)
        except ValueError:
            raise _altered(
                f"{_name(seq, event_id)} was altered: its line is no longer valid JSON",
                seq,
                event_id,
            ) from None
        data = canonical(event)
        chain = chain_next(chain, data)
        if (
            not isinstance(event, dict)
            or event.get("seq") != seq
            or event.get("event_id") != event_id
            or sha256_hex(data) != entry.get("sha256")
            or chain != entry.get("chain")
        ):
            raise _altered(f"{_name(seq, event_id)} was altered", seq, event_id)
        count += 1


def _check(zf: zipfile.ZipFile) -> Verdict:
    names = set(zf.namelist())
    if MANIFEST_NAME not in names:
        return Verdict(False, f"not a bundle: no {MANIFEST_NAME}", exit_code=2)
    missing = [n for n in SEALED_FILES if n not in names]
    if missing:
        raise _altered(f"files missing from the bundle: {', '.join(missing)}")
    manifest = _Lines(zf, MANIFEST_NAME)
    manifest_lines = iter(manifest)
    about, entries = _manifest(manifest_lines)
    session_file = _Lines(zf, JSON_NAME)
    lines = iter(session_file)
    head = list(_section(lines, (EVENTS_OPEN,)))
    try:
        header = json.loads("\n".join(head).rstrip().rstrip(",") + "}")
    except ValueError:
        raise _altered(f"the header of {JSON_NAME} was altered (it is no longer JSON)") from None
    chain, count = _check_events(entries, _section(lines, (EVENTS_CLOSE,)))
    session_file.drain()
    try:
        seal = _value(next(manifest_lines).split(":", 1)[1])
    except (StopIteration, IndexError, ValueError):
        raise _altered(f"{MANIFEST_NAME} is damaged: no seal") from None
    manifest.drain()
    if (chain, count) != (seal.get("chain_head"), seal.get("event_count")):
        raise _altered("the manifest's event chain does not match its seal")
    if sha256_hex(canonical(header)) != seal.get("header_sha256"):
        raise _altered(f"the header of {JSON_NAME} (session fields or export facts) was altered")
    files = seal.get("files") or {}
    for name in SEALED_FILES:
        digest = session_file.digest.hexdigest() if name == JSON_NAME else _file_sha(zf, name)
        if digest != files.get(name):
            raise _altered(f"{name} was altered")
    claimed = seal.pop("hmac_sha256", "")
    if not hmac.compare_digest(str(claimed), seal_hmac(seal)):
        raise _altered(
            "the manifest's seal does not match this server's key: the manifest was rewritten, "
            "or the bundle comes from another installation"
        )
    return Verdict(
        True,
        f"intact: {count} events of session {about.get('session_id')} up to seq "
        f"{about.get('up_to_seq')}, exported {about.get('exported_at')} by "
        f"{about.get('exported_by')}",
    )


def _file_sha(zf: zipfile.ZipFile, name: str) -> str:
    digest = hashlib.sha256()
    with zf.open(name) as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_bundle(file: str | IO[bytes]) -> Verdict:
    try:
        with zipfile.ZipFile(file) as zf:
            return _check(zf)
    except _Broken as broken:
        return broken.verdict
    except zipfile.BadZipFile as exc:
        return Verdict(False, f"the archive is damaged or not a zip file: {exc}", exit_code=2)
    except OSError as exc:
        return Verdict(False, f"cannot read the file: {exc}", exit_code=2)

"""The verifiable bundle: what it holds, `verify_export` on an intact bundle, and on bundles
altered in each place that matters."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from sessions_app import exports, services
from tests.sessions_app.exports.conftest import EXPORTED_AT, GITHUB_SECRET, Fixed

# Each builds a PDF (WeasyPrint: about a second apiece, most of it font subsetting).
pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def _bundle(fixed: Fixed, user: Any) -> bytes:
    export = exports.session_export(
        session=fixed.session, viewer=user, user=user, fmt="bundle", via="web", now=EXPORTED_AT
    )
    assert export.filename == "session-0f0e0d0c-bundle.zip"
    return b"".join(export.chunks)


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _rezip(members: dict[str, bytes], path: Path) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _verify(path: Path) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("verify_export", str(path), stdout=out)
    except CommandError as exc:
        return exc.returncode, str(exc)
    return 0, out.getvalue()


_BUILT: dict[str, bytes] = {}


@pytest.fixture
def bundle(request: pytest.FixtureRequest) -> bytes:
    """The fixed session's bundle, as the owner exports it. The session has fixed ids and
    times, so the bytes are the same in every test: built once (the PDF takes seconds)."""
    if "owner" not in _BUILT:
        world = request.getfixturevalue("world")
        _BUILT["owner"] = _bundle(request.getfixturevalue("fixed"), world.owner)
    return _BUILT["owner"]


def test_the_bundle_holds_the_three_exports_the_manifest_and_both_reports(bundle) -> None:
    members = _members(bundle)
    assert set(members) == {
        "session.json",
        "transcript.md",
        "transcript.pdf",
        "manifest.json",
        "redaction-report.json",
        "action-log.json",
    }
    assert members["transcript.pdf"].startswith(b"%PDF-")
    manifest = json.loads(members["manifest.json"])
    events = json.loads(members["session.json"])["events"]
    assert [(e["seq"], e["event_id"]) for e in manifest["events"]] == [
        (e["seq"], e["event_id"]) for e in events
    ]
    # The chain, recomputed here from its definition in docs/exports.md.
    chain = "0" * 64
    for entry, event in zip(manifest["events"], events, strict=True):
        data = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert entry["sha256"] == exports.document.sha256_hex(data.encode())
        chain = exports.document.sha256_hex(chain.encode() + data.encode())
        assert entry["chain"] == chain
    assert manifest["seal"]["chain_head"] == chain


def test_the_redaction_report_names_rules_and_counts_never_values(bundle) -> None:
    members = _members(bundle)
    report = json.loads(members["redaction-report.json"])
    assert report["totals"] == {"github_token": 1}
    assert report["events"] == [
        {"seq": 6, "event_id": "e06", "type": "tool_result", "counts": {"github_token": 1}}
    ]
    for data in members.values():
        assert GITHUB_SECRET.encode() not in data


def test_the_action_log_says_who_did_what_when(fixed, world, tmp_path) -> None:
    services.session_set_pinned(session=fixed.session, user=world.owner, pinned=True)
    log = json.loads(_members(_bundle(fixed, world.admin))["action-log.json"])
    whats = [(entry["who"], entry["what"]) for entry in log]
    assert ("runner", "status pending -> running") in whats
    assert ("runner", "checkpoint Promote to staging awaiting") in whats
    assert ("owner", "pin") in whats
    assert all(entry["at"].startswith("2026-") for entry in log)
    # Only audit events: no messages, tool calls or thinking.
    assert {entry["seq"] for entry in log}.isdisjoint({2, 4, 5, 6})


def test_an_intact_bundle_verifies(bundle, tmp_path) -> None:
    path = tmp_path / "b.zip"
    path.write_bytes(bundle)
    code, message = _verify(path)
    assert code == 0
    assert message.startswith("intact: 14 events of session 0f0e0d0c-0b0a-4908-8706-050403020100")


def _alter_event_byte(session_json: bytes, event_id: str) -> bytes:
    """Change one byte inside the line of one event (a letter of its payload)."""
    lines = session_json.split(b"\n")
    for i, line in enumerate(lines):
        if f'"event_id": "{event_id}"'.encode() in line:
            at = line.index(b'"payload": {') + len(b'"payload": {') + 2
            changed = bytearray(line)
            changed[at] = ord("X") if changed[at] != ord("X") else ord("Y")
            lines[i] = bytes(changed)
            return b"\n".join(lines)
    raise AssertionError(f"no line for {event_id}")


@pytest.mark.parametrize("event_id", ["e01", "e07", "e14"])
def test_altering_one_byte_of_one_event_names_that_event(bundle, tmp_path, event_id) -> None:
    members = _members(bundle)
    members["session.json"] = _alter_event_byte(members["session.json"], event_id)
    code, message = _verify(_rezip(members, tmp_path / "altered.zip"))
    seq = int(event_id[1:])
    assert code == 1
    assert f"event seq {seq} (event_id '{event_id}')" in message
    # Positive control: the same rezip without the change is intact.
    assert _verify(_rezip(_members(bundle), tmp_path / "same.zip"))[0] == 0


def test_a_byte_that_breaks_an_events_json_still_names_the_event(bundle, tmp_path) -> None:
    members = _members(bundle)
    members["session.json"] = members["session.json"].replace(
        b'"event_id": "e05", ', b'"event_id": "e05" ', 1
    )
    code, message = _verify(_rezip(members, tmp_path / "broken.zip"))
    assert code == 1
    assert "event seq 5 (event_id 'e05')" in message


def test_a_dropped_event_is_named(bundle, tmp_path) -> None:
    members = _members(bundle)
    lines = members["session.json"].split(b"\n")
    members["session.json"] = b"\n".join(line for line in lines if b'"event_id": "e09"' not in line)
    code, message = _verify(_rezip(members, tmp_path / "dropped.zip"))
    assert code == 1
    assert "event seq 9 (event_id 'e09')" in message


@pytest.mark.parametrize("name", ["transcript.md", "transcript.pdf", "action-log.json"])
def test_an_altered_file_is_named(bundle, tmp_path, name) -> None:
    members = _members(bundle)
    members[name] = members[name] + b" "
    code, message = _verify(_rezip(members, tmp_path / "file.zip"))
    assert (code, message) == (1, f"{name} was altered")


def test_an_altered_header_is_found(bundle, tmp_path) -> None:
    members = _members(bundle)
    members["session.json"] = members["session.json"].replace(
        b'"model": "gpt-4o"', b'"model": "gpt-4x"', 1
    )
    code, message = _verify(_rezip(members, tmp_path / "header.zip"))
    assert code == 1
    assert "header of session.json" in message


def test_a_manifest_rewritten_to_match_an_altered_event_fails_the_seal(bundle, tmp_path) -> None:
    members = _members(bundle)
    session_json = _alter_event_byte(members["session.json"], "e02")
    events = json.loads(session_json)["events"]
    manifest_lines = members["manifest.json"].decode().split("\n")
    chain = exports.document.CHAIN_START
    rewritten = []
    for line in manifest_lines:
        stripped = line.strip().rstrip(",")
        if stripped.startswith('{"seq"'):
            entry = json.loads(stripped)
            data = exports.canonical(next(e for e in events if e["seq"] == entry["seq"]))
            chain = exports.chain_next(chain, data)
            entry.update(sha256=exports.document.sha256_hex(data), chain=chain)
            line = "  " + json.dumps(entry) + ("," if line.endswith(",") else "")
        elif stripped.startswith('"seal"'):
            seal = json.loads(stripped.split(":", 1)[1])
            seal["chain_head"] = chain
            seal["files"]["session.json"] = exports.document.sha256_hex(session_json)
            line = ' "seal": ' + json.dumps(seal)
        rewritten.append(line)
    members["session.json"] = session_json
    members["manifest.json"] = "\n".join(rewritten).encode()
    code, message = _verify(_rezip(members, tmp_path / "forged.zip"))
    assert code == 1
    assert "seal does not match this server's key" in message


def test_a_file_that_is_not_a_bundle_exits_2(tmp_path) -> None:
    path = tmp_path / "notes.zip"
    path.write_bytes(b"not a zip")
    assert _verify(path)[0] == 2
    _rezip({"readme.txt": b"hello"}, path)
    code, message = _verify(path)
    assert (code, message) == (2, "not a bundle: no manifest.json")

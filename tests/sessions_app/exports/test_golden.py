"""The JSON and Markdown exports of a fixed session, byte for byte. A change to either format
shows up here as a diff to review; rewrite the files with UPDATE_GOLDEN=1 when it is meant."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sessions_app import exports, selectors
from tests.sessions_app.exports.conftest import EXPORTED_AT, GITHUB_SECRET, Fixed

GOLDEN = Path(__file__).parent / "golden"
pytestmark = pytest.mark.django_db


def _export(fixed: Fixed, fmt: str, viewer: object) -> str:
    export = exports.session_export(
        session=fixed.session, viewer=viewer, user=viewer, fmt=fmt, via="web", now=EXPORTED_AT
    )
    return b"".join(export.chunks).decode()


def _matches_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{name} changed; UPDATE_GOLDEN=1 rewrites it"


@pytest.mark.parametrize(("fmt", "name"), [("json", "session.json"), ("md", "session.md")])
def test_the_export_of_a_fixed_session_matches_its_golden_file(fixed, world, fmt, name) -> None:
    text = _export(fixed, fmt, world.owner)
    _matches_golden(name, text)
    assert GITHUB_SECRET not in text
    assert "[REDACTED:" in text


def test_the_json_export_has_the_full_header_and_every_event(fixed, world) -> None:
    data = json.loads(_export(fixed, "json", world.owner))
    s = data["session"]
    assert s["parameters"] == {"temperature": 0.2, "max_tokens": 2000, "timeout_seconds": 600}
    assert s["metadata"]["repo"] == "github.com/acme/payments"
    assert s["metadata"]["branch"] == "release/3.1"
    assert (s["status"], s["initiative"]) == ("failed", "Q3 push")
    assert s["error"] == {"code": "rollout_timeout", "message": "Rollout stuck."}
    assert s["redactions"] == {"github_token": 1}
    assert [e["event_id"] for e in data["events"]][-3:] == ["e12", "e13", "e14"]
    assert data["export"]["event_count"] == len(data["events"]) == 14
    # The export's own audit line comes after the events it covers.
    assert fixed.session.last_seq == 15


def test_the_parent_the_viewer_may_not_see_is_named_without_id_or_title(fixed, world) -> None:
    for fmt in ("json", "md"):
        text = _export(fixed, fmt, world.owner)
        assert selectors.HIDDEN_TITLE in text
        assert str(fixed.parent.pk) not in text
        assert "Private planning" not in text
    # Positive control: the agent owner may see the parent chat, and its export names it.
    text = _export(fixed, "md", world.agent_owner)
    assert "Private planning" in text
    assert str(fixed.parent.pk) in text

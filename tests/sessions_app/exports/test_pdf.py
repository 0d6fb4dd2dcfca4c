"""The PDF export: a real PDF made from the print view, with the title and the redaction
markers, and a clear note when a long session is cut to the page cap."""

from __future__ import annotations

import io
import re

import pytest
from pypdf import PdfReader

from sessions_app import exports
from tests.sessions_app.exports.conftest import EXPORTED_AT, GITHUB_SECRET, Fixed

# Each builds a PDF (WeasyPrint: about a second apiece, most of it font subsetting).
pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def _pdf_text(fixed: Fixed, user: object) -> tuple[PdfReader, str]:
    export = exports.session_export(
        session=fixed.session, viewer=user, user=user, fmt="pdf", via="web", now=EXPORTED_AT
    )
    assert (export.filename, export.content_type) == ("session-0f0e0d0c.pdf", "application/pdf")
    reader = PdfReader(io.BytesIO(b"".join(export.chunks)))
    text = "\n".join(page.extract_text() for page in reader.pages)
    return reader, re.sub(r"\s+", " ", text)


def test_the_pdf_opens_with_the_title_and_the_redacted_marker(fixed, world) -> None:
    reader, text = _pdf_text(fixed, world.owner)
    assert len(reader.pages) >= 1
    assert "Deploy the payments service" in text
    assert "[REDACTED:github_token]" in text
    assert GITHUB_SECRET not in text
    # The header table and collapsed blocks, printed open.
    for shown in (
        "Temperature 0.2",
        "release/3.1",
        "Thinking",
        "The build needs the registry token",
    ):
        assert shown in text
    assert "This document shows the first" not in text
    assert reader.metadata is not None
    assert reader.metadata.title == "Deploy the payments service · session #0f0e0d0c"


def test_a_pdf_past_the_cap_says_how_many_events_it_shows(fixed, world, settings) -> None:
    settings.SCC_EXPORT_PDF_MAX_EVENTS = 3
    _, text = _pdf_text(fixed, world.owner)
    assert "This document shows the first 3 of 14 events" in text
    assert "Ship 3.1 to staging." in text  # seq 2
    assert "rollout_timeout" not in text.split("Transcript", 1)[1]  # seq 13 is past the cap


def test_the_print_view_is_the_html_the_pdf_renders(fixed, world) -> None:
    snapshot = exports.snapshot_of(fixed.session, viewer=world.owner, user=world.owner)
    html = exports.print_html(snapshot)
    assert "<title>Deploy the payments service · session #0f0e0d0c</title>" in html
    # Blocks that collapse on the page print open.
    assert '<details class="block thinking" open>' in html
    assert "[REDACTED:github_token]" in html

"""The print view of a session and the PDF made from it. The session page links the print
view; the PDF is WeasyPrint's rendering of the very same HTML, so what a person prints from
the browser and what they download are one document.

A PDF of 100 000 events would be tens of thousands of pages and take WeasyPrint many minutes
and gigabytes, so both show the first `SCC_EXPORT_PDF_MAX_EVENTS` events and say so at the top;
the JSON, the Markdown and the bundle always hold every event."""

from __future__ import annotations

from itertools import islice
from typing import Any

from django.conf import settings
from django.template.loader import render_to_string
from weasyprint import HTML
from weasyprint.urls import URLFetcher

from sessions_app.exports.document import Snapshot, header_rows

TEMPLATE = "sessions_app/export/print.html"


def print_context(snapshot: Snapshot) -> dict[str, Any]:
    limit = settings.SCC_EXPORT_PDF_MAX_EVENTS
    header = snapshot.header()
    events = list(islice(snapshot.events(), limit))
    return {
        "s": snapshot.session,
        "header": header,
        "rows": header_rows(header),
        "events": events,
        "shown": len(events),
        "total": snapshot.event_count,
        "truncated": snapshot.event_count > len(events),
        # Collapsed blocks (thinking, tool calls, diffs) print open: paper cannot be clicked.
        "expand": True,
    }


def print_html(snapshot: Snapshot) -> str:
    return render_to_string(TEMPLATE, print_context(snapshot))


def pdf_bytes(snapshot: Snapshot) -> bytes:
    """The print view as PDF. The HTML carries its stylesheet inline and the fetcher allows no
    protocol at all, so rendering never reaches the network or the file system, whatever a
    transcript contains."""
    document = HTML(string=print_html(snapshot), url_fetcher=URLFetcher(allowed_protocols=()))
    pdf = document.write_pdf()
    if pdf is None:  # pragma: no cover - write_pdf returns bytes when given no target
        raise RuntimeError("WeasyPrint produced no PDF")
    return bytes(pdf)

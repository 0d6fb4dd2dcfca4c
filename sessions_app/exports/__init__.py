"""Exports of one session: JSON (full header, every event), Markdown (a readable transcript),
PDF (the print view rendered by WeasyPrint) and a verifiable bundle (a zip with a chained
SHA-256 manifest). Building files only; the transports (`command_center` pages,
`sessions_app/api/exports.py`) send them. Format and checks: docs/exports.md."""

from __future__ import annotations

from sessions_app.exports.build import (
    BY_EXTENSION,
    FORMATS,
    Export,
    Format,
    format_named,
    session_export,
    snapshot_of,
)
from sessions_app.exports.document import Snapshot, canonical, chain_next
from sessions_app.exports.printed import print_context, print_html
from sessions_app.exports.verify import Verdict, verify_bundle

__all__ = [
    "BY_EXTENSION",
    "FORMATS",
    "Export",
    "Format",
    "Snapshot",
    "Verdict",
    "canonical",
    "chain_next",
    "format_named",
    "print_context",
    "print_html",
    "session_export",
    "snapshot_of",
    "verify_bundle",
]

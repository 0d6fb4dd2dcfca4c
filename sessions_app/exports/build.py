"""One call per export: check the viewer may see the session, fix the snapshot, write the
audit line, and hand back the file as a stream of byte chunks for a transport to send."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone

from sessions_app import selectors, services
from sessions_app.errors import InvalidInput, NotFound
from sessions_app.exports.bundle import bundle_chunks
from sessions_app.exports.document import Snapshot
from sessions_app.exports.jsonfile import json_lines
from sessions_app.exports.markdown import markdown_lines
from sessions_app.exports.printed import pdf_bytes
from sessions_app.exports.stream import chunked
from sessions_app.models import AgentSession


@dataclass(frozen=True)
class Format:
    key: str  # the API's `format`
    extension: str  # the page URL's `export.<extension>` and the file name
    content_type: str
    label: str


FORMATS: dict[str, Format] = {
    f.key: f
    for f in (
        Format("json", "json", "application/json", "JSON"),
        Format("md", "md", "text/markdown; charset=utf-8", "Markdown"),
        Format("pdf", "pdf", "application/pdf", "PDF"),
        Format("bundle", "zip", "application/zip", "Verifiable bundle (zip)"),
    )
}
BY_EXTENSION = {f.extension: f for f in FORMATS.values()}


def format_named(key: str) -> Format:
    try:
        return FORMATS[key]
    except KeyError:
        raise InvalidInput("format", f"must be one of {', '.join(FORMATS)}") from None


@dataclass(frozen=True)
class Export:
    filename: str
    content_type: str
    chunks: Iterator[bytes]


def snapshot_of(
    session: AgentSession, *, viewer: Any, user: Any, now: datetime | None = None
) -> Snapshot:
    """The events there are now; later ones belong to the next export."""
    up_to = selectors.last_seq_now(session)
    return Snapshot(
        session=session,
        viewer=viewer,
        exported_by=user.get_username(),
        exported_at=now or timezone.now(),
        up_to_seq=up_to,
        event_count=selectors.event_count(session, up_to_seq=up_to),
    )


def session_export(
    *,
    session: AgentSession,
    viewer: Any,
    user: Any,
    fmt: str,
    via: str,
    now: datetime | None = None,
) -> Export:
    """`viewer` is whom related sessions are shown to (the user, or their API token), `user`
    the person audited as exporting. Same rights as the session page: 404 when they may not
    see it. The audit line is written before the file streams, so a download cut short is
    still on record."""
    export_format = format_named(fmt)
    if not selectors.can_view(user, session):
        raise NotFound(str(session.pk))
    snapshot = snapshot_of(session, viewer=viewer, user=user, now=now)
    services.session_export_audit(
        session=session, user=user, fmt=export_format.key, up_to_seq=snapshot.up_to_seq, via=via
    )
    if export_format.key == "json":
        chunks = chunked(json_lines(snapshot))
    elif export_format.key == "md":
        chunks = chunked(markdown_lines(snapshot))
    elif export_format.key == "pdf":
        # Rendered now (its size is bounded by the event cap), so a failure is an error
        # answer rather than a download that stops halfway.
        chunks = iter([pdf_bytes(snapshot)])
    else:
        chunks = bundle_chunks(snapshot)
    suffix = "-bundle" if export_format.key == "bundle" else ""
    return Export(
        filename=f"session-{session.short_id}{suffix}.{export_format.extension}",
        content_type=export_format.content_type,
        chunks=chunks,
    )

"""Exports stream: 100 000 events go out in chunks, read from the database in batches, and
the peak of Python allocations stays a small fraction of the file's size."""

from __future__ import annotations

import io
import tracemalloc
import zipfile
from collections.abc import Iterator

import pytest
from pypdf import PdfReader

from sessions_app import exports
from sessions_app.models import AgentSession, SessionEvent
from sessions_app.states import Kind
from tests import factories as f

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

EVENTS = 100_000
# Far below what holding the export would take (the JSON alone is ~20 MB here, and 100 000
# model instances several times that).
PEAK_LIMIT = 12 * 1024 * 1024


def _huge_session(world) -> AgentSession:
    s = f.make_session(world.agent, world.owner, Kind.BACKGROUND_TASK, title="Long haul")
    first = s.last_seq + 1
    SessionEvent.objects.bulk_create(
        (
            SessionEvent(
                session=s,
                seq=seq,
                event_id=f"ev-{seq}",
                type="message" if seq % 3 else "tool_result",
                actor="runner",
                payload={"role": "agent", "text": f"line {seq} " + "x" * 80}
                if seq % 3
                else {"call_id": f"c{seq}", "output": "ok " * 20},
                redactions={"github_token": 1} if seq % 1000 == 0 else {},
            )
            for seq in range(first, first + EVENTS)
        ),
        batch_size=5000,
    )
    AgentSession.objects.filter(pk=s.pk).update(last_seq=first + EVENTS - 1)
    s.refresh_from_db()
    return s


def _drain(chunks: Iterator[bytes]) -> tuple[int, int, bytes]:
    """Consume an export as a client would: (bytes sent, Python peak while sending, tail)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        total, tail = 0, b""
        for chunk in chunks:
            total += len(chunk)
            tail = (tail + chunk)[-1000:]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return total, peak, tail


def test_an_export_of_100000_events_streams_in_bounded_memory(world, settings, tmp_path) -> None:
    """The bundle: the JSON and Markdown exports (each a full pass over the 100 000 events), the
    PDF (capped), both reports and the manifest (another full pass), measured as one."""
    settings.SCC_EXPORT_PDF_MAX_EVENTS = 50
    s = _huge_session(world)
    last = s.last_seq
    export = exports.session_export(
        session=s, viewer=world.owner, user=world.owner, fmt="bundle", via="web"
    )
    path = tmp_path / "big.zip"
    with path.open("wb") as out:

        def written() -> Iterator[bytes]:
            for chunk in export.chunks:
                out.write(chunk)
                yield chunk

        total, peak, _ = _drain(written())
    assert peak < PEAK_LIMIT, f"peak {peak / 2**20:.1f} MiB for {total / 2**20:.1f} MiB out"
    with zipfile.ZipFile(path) as zf:
        sizes = {name: zf.getinfo(name).file_size for name in ("session.json", "transcript.md")}
        first_page = PdfReader(io.BytesIO(zf.read("transcript.pdf"))).pages[0].extract_text()
    # What was streamed is ~40 times what the peak allows.
    assert min(sizes.values()) > 15 * 1024 * 1024, sizes
    assert f"first 50 of {last} events" in " ".join(first_page.split())
    verdict = exports.verify_bundle(str(path))
    assert verdict.intact, verdict.message
    assert f"intact: {last} events" in verdict.message

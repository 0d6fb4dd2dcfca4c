"""Exports stream: 100 000 events go out in chunks, read from the database in batches, and the
peak of Python allocations while the whole bundle goes out stays a small fraction of what goes
out (holding the transcript, or the zip, would take several times the limit)."""

from __future__ import annotations

import io
import tracemalloc
import zipfile
from collections.abc import Iterator
from itertools import islice

import pytest
from pypdf import PdfReader

from sessions_app import exports
from sessions_app.models import AgentSession, SessionEvent
from sessions_app.states import Kind
from tests import factories as f

# Minutes, not seconds: tracemalloc slows every allocation several times over.
pytestmark = [pytest.mark.django_db, pytest.mark.slow]

EVENTS = 100_000
# Measured here: about 5.5 MiB, most of it WeasyPrint laying out the (capped) PDF.
PEAK_LIMIT = 8 * 1024 * 1024


def _huge_session(world) -> AgentSession:
    s = f.make_session(world.agent, world.owner, Kind.BACKGROUND_TASK, title="Long haul")
    first = s.last_seq + 1
    rows = (
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
    )
    # In slices: bulk_create lists what it is given, and 100 000 instances at once would be
    # the biggest thing this test ever held.
    while batch := list(islice(rows, 10_000)):
        SessionEvent.objects.bulk_create(batch)
    AgentSession.objects.filter(pk=s.pk).update(last_seq=first + EVENTS - 1)
    s.refresh_from_db()
    return s


def _drain(chunks: Iterator[bytes]) -> tuple[int, int]:
    """Consume an export as a client would: (bytes sent, Python peak while sending)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        total = sum(len(chunk) for chunk in chunks)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return total, peak


def test_an_export_of_100000_events_streams_in_bounded_memory(world, settings, tmp_path) -> None:
    """The bundle: the JSON and Markdown exports and the manifest (each a full pass over the
    100 000 events), both reports and a (capped) PDF, measured as one download."""
    settings.SCC_EXPORT_PDF_MAX_EVENTS = 5
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

        total, peak = _drain(written())
    print(f"bundle of {last} events: {total / 2**20:.1f} MiB out, peak {peak / 2**20:.2f} MiB")
    assert peak < PEAK_LIMIT, f"peak {peak / 2**20:.1f} MiB for {total / 2**20:.1f} MiB out"
    assert total > PEAK_LIMIT  # so even a zip kept whole in memory would not fit under it
    with zipfile.ZipFile(path) as zf:
        sizes = {name: zf.getinfo(name).file_size for name in zf.namelist()}
        first_page = PdfReader(io.BytesIO(zf.read("transcript.pdf"))).pages[0].extract_text()
    print({name: f"{size / 2**20:.1f} MiB" for name, size in sizes.items()})
    # Holding any one of the big files would have broken the bound.
    for name in ("session.json", "transcript.md", "manifest.json"):
        assert sizes[name] > 2 * PEAK_LIMIT, sizes
    assert f"first 5 of {last} events" in " ".join(first_page.split())
    verdict = exports.verify_bundle(str(path))
    assert verdict.intact, verdict.message
    assert f"intact: {last} events" in verdict.message

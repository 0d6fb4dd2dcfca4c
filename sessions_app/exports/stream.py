"""Turn many small text or byte pieces into a few large byte chunks, so a transport sends
~64 KiB at a time instead of one write per event."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

CHUNK_BYTES = 64 * 1024


def chunked(pieces: Iterable[str | bytes], size: int = CHUNK_BYTES) -> Iterator[bytes]:
    buffer: list[bytes] = []
    held = 0
    for piece in pieces:
        data = piece.encode() if isinstance(piece, str) else piece
        buffer.append(data)
        held += len(data)
        if held >= size:
            yield b"".join(buffer)
            buffer, held = [], 0
    if buffer:
        yield b"".join(buffer)

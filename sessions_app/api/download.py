"""An export as an HTTP download, streamed under either server.

Django's StreamingHttpResponse drains a *sync* iterator into a list before sending it when it
runs under ASGI (daphne), which would hold a 100 000-event export in memory. Under ASGI the
chunks are therefore pulled one at a time through `sync_to_async`: thread-sensitive, so every
pull runs in the request's own thread and reuses its database connection (and, on PostgreSQL,
its server-side cursor)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, StreamingHttpResponse

from sessions_app.exports import Export


def _next(chunks: Iterator[bytes]) -> bytes | None:
    return next(chunks, None)


class _Pull:
    """The chunks as an async iterator. `close()` is what Django calls when the response ends
    (finished or the client went away), in the request's thread under ASGI: it closes the
    export's generator there, and with it the database cursor it holds."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pull = sync_to_async(_next, thread_sensitive=True)

    def __aiter__(self) -> _Pull:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self._pull(self._chunks)
        if chunk is None:
            raise StopAsyncIteration
        return chunk

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()


def download(request: HttpRequest, export: Export) -> StreamingHttpResponse:
    content: Any = _Pull(export.chunks) if isinstance(request, ASGIRequest) else export.chunks
    response = StreamingHttpResponse(content, content_type=export.content_type)
    response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
    # The file is a snapshot of a transcript that keeps changing: never serve it from a cache.
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response

"""An export as an HTTP download, streamed under either server.

Django's StreamingHttpResponse drains a *sync* iterator into a list before sending it when it
runs under ASGI (daphne), which would hold a 100 000-event export in memory. Under ASGI the
chunks are therefore pulled one at a time through `sync_to_async`: thread-sensitive, so every
pull runs in the request's own thread and reuses its database connection (and, on PostgreSQL,
its server-side cursor)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, StreamingHttpResponse

from sessions_app.exports import Export


def _next(chunks: Iterator[bytes]) -> bytes | None:
    return next(chunks, None)


def _close(chunks: Iterator[bytes]) -> None:
    close = getattr(chunks, "close", None)
    if close is not None:
        close()


async def _pull(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    pull = sync_to_async(_next, thread_sensitive=True)
    try:
        while (chunk := await pull(chunks)) is not None:
            yield chunk
    finally:
        # A client that went away leaves the generator (and its cursor) open: close it in the
        # thread that opened it.
        await sync_to_async(_close, thread_sensitive=True)(chunks)


def download(request: HttpRequest, export: Export) -> StreamingHttpResponse:
    content = _pull(export.chunks) if isinstance(request, ASGIRequest) else export.chunks
    response = StreamingHttpResponse(content, content_type=export.content_type)
    response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
    # The file is a snapshot of a transcript that keeps changing: never serve it from a cache.
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response

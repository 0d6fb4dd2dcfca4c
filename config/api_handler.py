"""The HTTP API's own request handler: the middleware an API request needs, run with the view
in one thread.

Under daphne every Django middleware that is not async-native costs the request a round trip
between the event loop and a worker thread, before and after the view, and the browser
pages need nine of them (sessions, CSRF, messages, static files, htmx, ...). The API
authenticates each request with its bearer token and answers JSON, so it needs none of
those; its hot path is a runtime posting events many times a second. Measured in process
(`/api/v1/sessions/{id}/events`, one event): 26.6 -> 22.8 ms per request with the trimmed
chain alone.
"""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.db import close_old_connections
from django.http import HttpResponseBase
from django.test.utils import override_settings
from django.urls import set_script_prefix

# A fixed set of threads for API views instead of one new thread per request: under a burst
# (a runtime fleet posting 100 events/s) a thread per request had dozens of views in flight,
# each waiting for the interpreter lock and a pooled connection; queued requests wait in the
# event loop instead, which costs nothing. Sized to keep the database pool (DB_POOL_SIZE)
# busy without more threads than connections.
_workers = ThreadPoolExecutor(
    max_workers=max(2, min(settings.DB_POOL_SIZE or 8, 8)), thread_name_prefix="scc-api"
)

# Timing by route, and the security headers every response carries.
API_MIDDLEWARE = [
    "config.metrics.ApiMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
]

Receive = Any
Send = Any
Scope = dict[str, Any]


class ApiHandler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        # Django builds the chain from settings.MIDDLEWARE; this process-wide handler is built
        # once, at start-up, with the API's list instead. Synchronous: the whole chain and the
        # view run in the request's one worker thread (_respond).
        with override_settings(MIDDLEWARE=API_MIDDLEWARE):
            super().load_middleware(is_async=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Django wraps each request in a ThreadSensitiveContext, which gives the request a new
        # thread of its own for the request_started and request_finished signals; here they run
        # in the worker thread that runs the view.
        await self.handle(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Django's `handle` with one trip to a worker thread per request instead of four:
        request_started, the middleware and the view, and request_finished (which hands the
        database connection back to the pool) run there together."""
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        response = await sync_to_async(self._respond, thread_sensitive=False, executor=_workers)(
            scope, body_file
        )
        if not response.streaming:
            await self._send(response, send)
            return
        # A download is produced while it is sent, one chunk at a time through thread-sensitive
        # calls (sessions_app/api/download.py): they, and the close that ends the request, run
        # in one thread of this request's own, as under Django's handler.
        async with ThreadSensitiveContext():
            try:
                await self._send(response, send)
            finally:
                await sync_to_async(self._finish)(response, body_file)

    async def _send(self, response: HttpResponseBase, send: Send) -> None:
        # The client may leave while the answer is being sent.
        with contextlib.suppress(asyncio.CancelledError):
            await self.send_response(response, send)

    def _respond(self, scope: Scope, body_file: Any) -> HttpResponseBase:
        try:
            signals.request_started.send(sender=self.__class__, scope=scope)
            request, error = self.create_request(scope, body_file)
            if request is None:
                # A request Django cannot read (undecodable, too large): its own answer.
                response = cast(HttpResponseBase, error)
            else:
                response = self.get_response(request)
                response._handler_class = self.__class__  # type: ignore[attr-defined]
        except BaseException:
            body_file.close()
            close_old_connections()
            raise
        if response.streaming:
            # This thread is done with the database; the download has a thread of its own.
            close_old_connections()
        else:
            self._finish(response, body_file)
        return response

    @staticmethod
    def _finish(response: HttpResponseBase, body_file: Any) -> None:
        # close() sends request_finished, whose receiver gives the connection back to the pool.
        try:
            response.close()
        finally:
            body_file.close()


def by_path(prefix: str, matching: Any, other: Any) -> Any:
    """An ASGI app sending HTTP requests whose path starts with `prefix` to `matching`."""
    script = settings.FORCE_SCRIPT_NAME or ""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if path.removeprefix(scope.get("root_path", "") or script).startswith(prefix):
            await matching(scope, receive, send)
        else:
            await other(scope, receive, send)

    return app

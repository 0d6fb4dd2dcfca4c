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

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponseBase
from django.test.utils import override_settings

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
        # view run in the request's one worker thread (run_get_response).
        with override_settings(MIDDLEWARE=API_MIDDLEWARE):
            super().load_middleware(is_async=False)

    async def run_get_response(self, request: HttpRequest) -> HttpResponseBase:
        response: HttpResponseBase = await sync_to_async(
            self._respond, thread_sensitive=False, executor=_workers
        )(request)
        response._handler_class = self.__class__  # type: ignore[attr-defined]
        return response

    def _respond(self, request: HttpRequest) -> HttpResponseBase:
        # A worker thread serves request after request: hand its database connection back
        # (to the pool) after each, as Django's request signals do for the threads they run in.
        try:
            return self.get_response(request)
        finally:
            close_old_connections()


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

"""The pages' edge: form and query input no view could store is refused before any view runs,
and a failure below a page (the database away) is answered as "temporarily unavailable"."""

from __future__ import annotations

import sys
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.views import defaults

from sessions_app import edge
from sessions_app.api.errors import error_body
from sessions_app.errors import NotFound

API_PREFIX = "/api/"


class FormInputMiddleware:
    """400 for a query or form field (name or value) holding a NUL character or an unpaired
    surrogate: PostgreSQL refuses both, so they must never reach a query or a service. The API
    checks its own input (sessions_app/api/parser.py and its schemas)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(API_PREFIX):
            problem = form_problem(request)
            if problem is not None:
                return HttpResponse(problem, status=400, content_type="text/plain; charset=utf-8")
        return self.get_response(request)


def form_problem(request: HttpRequest) -> str | None:
    sources = [request.GET]
    if request.method == "POST":
        sources.append(request.POST)
    for params in sources:
        for name, values in params.lists():
            if not edge.storable(name):
                return f"The field name {edge.printable(name)!r} holds characters we cannot store."
            for value in values:
                if not edge.storable(value):
                    return (
                        f"{edge.printable(name)}: must not contain NUL characters or unpaired "
                        "surrogates."
                    )
    return None


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404: a path no route matches. Under the API that is the JSON error shape like
    every other API answer (a client reads `code`), elsewhere the styled page."""
    if request.path.startswith(API_PREFIX):
        status, body = error_body(NotFound(request.path))
        return JsonResponse(body, status=status)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: whatever escaped a view or a middleware. The database being away is not a
    bug but a wait: 503 with Retry-After, as JSON on the API and as a page elsewhere."""
    exc = sys.exc_info()[1]
    unavailable = isinstance(exc, edge.DB_UNAVAILABLE)
    response: HttpResponse
    if request.path.startswith(API_PREFIX):
        status, body = error_body(exc if isinstance(exc, Exception) else RuntimeError())
        response = JsonResponse(body, status=status)
    elif unavailable:
        response = HttpResponse(
            render_to_string("503.html", {"retry_after": edge.RETRY_AFTER_SECONDS}), status=503
        )
    else:
        return defaults.server_error(request)
    if unavailable:
        response["Retry-After"] = str(edge.RETRY_AFTER_SECONDS)
    return response

"""One place that turns domain and transport errors into API answers (all shaped as ErrorOut)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from sessions_app import edge
from sessions_app.api.schemas import EVENT_TYPES, PayloadTooLarge
from sessions_app.errors import DomainError, InvalidInput

log = logging.getLogger(__name__)

# Exception last: whatever else escapes an operation still answers in the error shape (500),
# never with Django's HTML page.
HANDLED: tuple[type[Exception], ...] = (
    ValidationError,
    PayloadTooLarge,
    AuthenticationError,
    HttpError,
    Http404,
    DomainError,
    *edge.DB_UNAVAILABLE,
    Exception,
)


def install(api: NinjaAPI) -> None:
    for exc_class in HANDLED:
        api.add_exception_handler(exc_class, _handler(api))


def _handler(api: NinjaAPI) -> Callable[[HttpRequest, Any], HttpResponse]:
    def handle(request: HttpRequest, exc: Any) -> HttpResponse:
        status, body = error_body(exc)
        response = api.create_response(request, body, status=status)
        if status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="api"'
        if status == 503:
            response["Retry-After"] = str(edge.RETRY_AFTER_SECONDS)
        return response

    return handle


def _error(
    code: str,
    message: str,
    *,
    field: str | None = None,
    errors: list[dict[str, str]] | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    if errors is not None:
        body["errors"] = errors
    if details is not None:
        body["details"] = details
    return body


def error_body(exc: Exception) -> tuple[int, dict[str, Any]]:
    if isinstance(exc, ValidationError):
        errors = [_field_error(e) for e in exc.errors]
        first = errors[0] if errors else {"field": "", "message": "invalid input"}
        message = "; ".join(
            f"{e['field']}: {e['message']}" if e["field"] else e["message"] for e in errors[:5]
        )
        return 422, _error("invalid_input", message, field=first["field"], errors=errors)
    if isinstance(exc, PayloadTooLarge):
        return 413, _error(
            "payload_too_large", str(exc), details={"limit": exc.limit, "actual": exc.actual}
        )
    if isinstance(exc, AuthenticationError):
        return 401, _error(
            "unauthorized",
            "Send a valid, unrevoked API token as 'Authorization: Bearer <token>'.",
        )
    if isinstance(exc, HttpError):
        return _http_error(exc)
    if isinstance(exc, Http404):
        return 404, _error("not_found", "No such session, or you may not see it.")
    if isinstance(exc, InvalidInput):
        return exc.status, _error(
            exc.code,
            str(exc),
            field=exc.field,
            errors=[{"field": exc.field, "message": str(exc), "type": exc.code}],
        )
    if isinstance(exc, DomainError):
        return exc.status, _error(exc.code, str(exc), details=exc.details)
    if isinstance(exc, edge.EdgeProblem):
        return 422, _field_problem(exc)
    if isinstance(exc, edge.DB_UNAVAILABLE):
        log.warning("database unavailable: %s", exc)
        return 503, unavailable_body()
    log.error("unhandled error in an API operation", exc_info=exc)
    return 500, _error("internal_error", "Something went wrong on our side; it has been logged.")


def unavailable_body() -> dict[str, Any]:
    return _error(
        "unavailable",
        "The service is temporarily unavailable (its database cannot be reached). Retry after "
        f"{edge.RETRY_AFTER_SECONDS} seconds with the same event ids or Idempotency-Key.",
    )


def _field_problem(exc: edge.EdgeProblem) -> dict[str, Any]:
    message = f"{exc.field}: {exc.reason}"
    return _error(
        "invalid_input",
        message,
        field=exc.field,
        errors=[{"field": exc.field, "message": message, "type": "invalid_input"}],
    )


def _http_error(exc: HttpError) -> tuple[int, dict[str, Any]]:
    cause = exc.__cause__
    if isinstance(cause, RequestDataTooBig):
        return 413, _error("payload_too_large", "The request body is too large.")
    if isinstance(cause, edge.EdgeProblem):
        return 422, _field_problem(cause)
    if exc.status_code == 400 and cause is not None:
        # ninja wraps every body parse failure in one generic message; say what was wrong.
        if isinstance(cause, UnicodeDecodeError):
            reason = "it is not UTF-8"
        elif isinstance(cause, json.JSONDecodeError | ValueError):
            reason = edge.printable(str(cause), 200)
        else:
            reason = type(cause).__name__
        return 400, _error(
            "malformed_json", f"The request body is not valid JSON: {reason}", field="body"
        )
    code = {403: "forbidden", 404: "not_found", 405: "method_not_allowed"}.get(
        exc.status_code, "error"
    )
    return exc.status_code, _error(code, str(exc))


def _field_error(error: dict[str, Any]) -> dict[str, str]:
    # printable: a message may quote the input, and an unpaired surrogate in it could not be
    # encoded in the answer.
    return {
        "field": edge.printable(field_path(error.get("loc", ())), 300),
        "message": edge.printable(str(error.get("msg", "invalid")), 500),
        "type": str(error.get("type", "")),
    }


def field_path(loc: Sequence[Any]) -> str:
    """('body', 'data', 'events', 3, 'message', 'payload', 'text') -> 'events[3].payload.text'.

    Drops the parameter source and the body parameter's name (every body parameter of this API
    is called `data`), and the event type that a discriminated union adds after the index.
    """
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        source = parts.pop(0)
        if source == "body" and parts and parts[0] == "data":
            parts.pop(0)
    out = ""
    previous: Any = None
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(previous, int) and part in EVENT_TYPES:
            pass
        else:
            out += f".{part}" if out else str(part)
        previous = part
    return out or "body"

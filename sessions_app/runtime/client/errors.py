"""The errors the client raises: one class per refusal the server can answer with, and
Unavailable when it cannot be reached at all."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ApiError(Exception):
    """The server refused a request; `status`, `code`, `message`, `field` come from its answer."""

    def __init__(self, status: int, body: Mapping[str, Any] | None) -> None:
        body = body or {}
        self.status = status
        self.code = str(body.get("code", ""))
        self.message = str(body.get("message", "")) or f"HTTP {status}"
        self.field = body.get("field")
        self.details = body.get("details") or {}
        self.body = dict(body)
        super().__init__(f"{status} {self.code}: {self.message}")


class InvalidInput(ApiError):
    """400 or 422: a field is wrong (`field` says which)."""


class Unauthorized(ApiError):
    """401: the token is unknown or revoked."""


class Forbidden(ApiError):
    """403: the token may not do this."""


class NotFound(ApiError):
    """404: no such session (or not visible to this token)."""


class Conflict(ApiError):
    """409: an illegal status change, the concurrency cap, or a session in the wrong state."""


class PayloadTooLarge(ApiError):
    """413: a batch or an event over the server's limits."""


class Unavailable(Exception):
    """The server could not be reached (or kept failing) through every retry."""


_ERRORS: dict[int, type[ApiError]] = {
    400: InvalidInput,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: InvalidInput,
}


def error_for(status: int, body: Mapping[str, Any] | None) -> ApiError:
    return _ERRORS.get(status, ApiError)(status, body)

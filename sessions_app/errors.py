"""The one error tree of the domain.

Every error a service or selector raises for a person to read is a `DomainError`; each class
carries its HTTP status and a stable code, so the API, the page views and the websocket
consumers read `exc.status` and `exc.code` instead of each keeping a mapping.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sessions_app.states import Kind


class DomainError(Exception):
    """An error a person can act on. `details` is extra structured data for the API."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.default_message())

    @property
    def message(self) -> str:
        return str(self)

    def default_message(self) -> str:
        return "The request cannot be carried out."

    @property
    def details(self) -> dict[str, Any] | None:
        return None


class NotFound(DomainError):
    """The object does not exist or the viewer may not see it: both look the same."""

    status = 404
    code = "not_found"

    def __init__(self, what: str = "") -> None:
        # `what` is for logs and tests; the message never confirms that the object exists.
        self.what = what
        super().__init__()

    def default_message(self) -> str:
        return "No such session, or you may not see it."


class NotAllowed(DomainError):
    """The viewer may see the object but not do this to it."""

    status = 403
    code = "forbidden"

    def default_message(self) -> str:
        return "You may not do this."


class InvalidInput(DomainError):
    """Bad input for one field."""

    status = 422
    code = "invalid_input"

    def __init__(self, field: str, message: str) -> None:
        self.field, self.reason = field, message
        super().__init__(f"{field}: {message}")


class PolicyInvalid(InvalidInput):
    """A session policy that breaks the rules of `policies.policy_errors`."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        field, message = next(iter(self.errors.items()))
        super().__init__(field, message)


class InvalidCursor(InvalidInput):
    def __init__(self) -> None:
        super().__init__("cursor", "The cursor is not valid; start again from the first page.")


class Conflict(DomainError):
    """The request is valid but the object's current state does not allow it."""

    status = 409
    code = "lifecycle_error"


class IllegalTransition(Conflict):
    code = "illegal_transition"

    def __init__(self, kind: str, from_status: str, to_status: str) -> None:
        self.kind, self.from_status, self.to_status = kind, from_status, to_status
        super().__init__(
            f"A {Kind(kind).label.lower()} cannot go from {from_status} to {to_status}."
        )

    @property
    def details(self) -> dict[str, Any]:
        return {"kind": self.kind, "from": self.from_status, "to": self.to_status}


class ConcurrencyLimit(Conflict):
    code = "concurrency_limit"

    def __init__(self, *, limit: int, current: int, agent: str) -> None:
        self.limit, self.current = limit, current
        super().__init__(
            f"The agent {agent!r} allows at most {limit} concurrent session"
            f"{'s' if limit != 1 else ''} per user; this user already has {current} open."
        )

    @property
    def details(self) -> dict[str, Any]:
        return {"limit": self.limit, "current": self.current}


class BadIdempotencyKey(DomainError):
    code = "invalid_idempotency_key"

    def default_message(self) -> str:
        return "Idempotency-Key must be 1 to 255 printable ASCII characters."


class IdempotencyKeyReused(DomainError):
    """The key was used before for a different request (IETF httpapi idempotency draft)."""

    status = 422
    code = "idempotency_key_reused"

    def default_message(self) -> str:
        return (
            "This Idempotency-Key was used for a different request (method, path or body); "
            "use a new key for a new request."
        )


class IdempotencyInFlight(Conflict):
    """The first request with this key has not finished; retry later for its answer."""

    code = "idempotency_in_flight"

    def default_message(self) -> str:
        return "A request with this Idempotency-Key is still being processed; retry shortly."

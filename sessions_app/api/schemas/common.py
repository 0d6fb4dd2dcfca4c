"""What every schema module shares: the transport limits, the storable-text check, the bounded
field types, the error body and the small references to other objects.

Input models reject what could not be stored faithfully (NUL characters and unpaired
surrogates: PostgreSQL refuses both in text and jsonb) so bad input is a 422, never a 500.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field

MAX_BATCH_EVENTS = 500
MAX_BATCH_BYTES = 1024 * 1024
MAX_EVENT_BYTES = 256 * 1024
# Ids and counters are bounded so a huge number is a 422, not a database overflow.
MAX_ID = 2**53
MAX_COUNT = 1_000_000


class PayloadTooLarge(Exception):
    """A transport limit was exceeded (413). Raised from validators on purpose: pydantic only
    turns ValueError into a 422, anything else propagates to the API's error handler."""

    def __init__(self, message: str, *, limit: int, actual: int) -> None:
        self.limit, self.actual = limit, actual
        super().__init__(message)


def unstorable_text(value: Any, path: str = "") -> str | None:
    """The path of the first string (or key) in a JSON value that the database cannot store."""
    if isinstance(value, str):
        return None if _storable(value) else path or "value"
    if isinstance(value, dict):
        for key, item in value.items():
            sub = f"{path}.{key}" if path else str(key)
            if not _storable(str(key)):
                return sub
            found = unstorable_text(item, sub)
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = unstorable_text(item, f"{path}[{i}]")
            if found:
                return found
    return None


def _storable(text: str) -> bool:
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # an unpaired surrogate from a \ud800-style JSON escape
        return False
    return True


def _storable_text(value: str) -> str:
    if not _storable(value):
        raise ValueError("must not contain NUL characters or unpaired surrogates")
    return value


Text = Annotated[str, AfterValidator(_storable_text)]
DbId = Annotated[int, Field(ge=1, le=MAX_ID)]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]


# --- errors -----------------------------------------------------------------------------------


class FieldError(BaseModel):
    field: str = Field(
        description="Dotted path of the offending input, e.g. events[3].payload.text"
    )
    message: str
    type: str = ""


class ErrorOut(BaseModel):
    """Every error the API answers with."""

    code: str = Field(description="Machine-readable: not_found, illegal_transition, ...")
    message: str = Field(description="What went wrong, for a person")
    field: str | None = Field(None, description="The first offending field, when one is to blame")
    errors: list[FieldError] | None = None
    details: dict[str, Any] | None = None


# --- references -----------------------------------------------------------------------------


class Ref(BaseModel):
    id: int
    name: str


class UserRef(BaseModel):
    id: int
    username: str

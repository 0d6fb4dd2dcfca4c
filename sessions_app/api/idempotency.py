"""The Idempotency-Key header on the API's creating and acting operations."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.db import DatabaseError, InterfaceError, OperationalError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse

from sessions_app import edge, services
from sessions_app.api.auth import access_for_raw_token
from sessions_app.api.errors import error_body
from sessions_app.errors import BadIdempotencyKey, DomainError

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"


def openapi_extra() -> dict[str, Any]:
    """The header as the OpenAPI document declares it on every operation `idempotent` wraps
    (the wrapper reads it before ninja parses anything, so ninja does not see a parameter).
    A fresh dict per operation: ninja merges it into the operation's own parameter list."""
    return {
        "parameters": [
            {
                "in": "header",
                "name": HEADER,
                "required": False,
                "description": "Any printable ASCII string up to 255 characters, new for each "
                "logical request and reused on its retries: the same key and body replay the first "
                "answer (with `Idempotent-Replayed: true`), the same key with another body is 422, "
                "a retry while the first is still running is 409. Kept at least 24 hours.",
                "schema": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 255,
                    "pattern": "^[ -~]+$",
                },
            }
        ]
    }


def fingerprint(request: HttpRequest) -> str:
    digest = hashlib.sha256()
    for part in (request.method or "", request.get_full_path()):
        digest.update(part.encode("utf-8", "backslashreplace") + b"\n")
    digest.update(request.body)
    return digest.hexdigest()


def _valid(key: str) -> bool:
    return 1 <= len(key) <= 255 and key.isascii() and key.isprintable()


def _answer(exc: Exception) -> HttpResponse:
    status, body = error_body(exc)
    response = JsonResponse(body, status=status)
    if status == 503:
        response["Retry-After"] = str(edge.RETRY_AFTER_SECONDS)
    return response


def idempotent(run: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Wraps a whole operation (ninja's parsing and error answers included): with the header,
    the first answer to a key (2xx or 4xx) is recorded in the same transaction as the
    operation's work and replayed to every retry; a 5xx records nothing and frees the key."""

    @wraps(run)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        key = request.headers.get(HEADER)
        if key is None:
            return run(request, *args, **kwargs)
        scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
        try:
            access = access_for_raw_token(raw) if scheme.lower() == "bearer" else None
            if access is None:
                return run(request, *args, **kwargs)  # ninja answers 401
            if not _valid(key):
                raise BadIdempotencyKey()
            claim = services.idempotency_begin(
                token=access.token, key=key, fingerprint=fingerprint(request)
            )
        except (DomainError, OperationalError, InterfaceError) as exc:
            return _answer(exc)
        if isinstance(claim, services.Replay):
            replay = JsonResponse(claim.body, status=claim.status, safe=False)
            replay[REPLAYED_HEADER] = "true"
            return replay
        try:
            with transaction.atomic():
                # Locked until the work commits or rolls back: a retry meanwhile is a 409,
                # a retry after this process or its connection died takes the key over.
                services.idempotency_hold(claim=claim)
                response = run(request, *args, **kwargs)
                if response.status_code < 500:
                    services.idempotency_finish(
                        claim=claim, status=response.status_code, body=json.loads(response.content)
                    )
                else:
                    transaction.set_rollback(True)
        except DomainError as exc:  # a retry took the key over: this request did nothing
            return _answer(exc)
        if response.status_code >= 500:
            # If the database is still unreachable, the claim is taken over once abandoned.
            with contextlib.suppress(DatabaseError):
                services.idempotency_release(claim=claim)
        return response

    return wrapper

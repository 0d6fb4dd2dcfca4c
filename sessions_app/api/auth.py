"""Bearer-token authentication for the API and the runtime websocket."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja.security import HttpBearer

from sessions_app import errors, selectors, services
from sessions_app.selectors import TokenAccess

# Our tokens are "scc_" + 43 characters; anything far longer is not one of ours, so it is
# refused before it is hashed.
_MAX_TOKEN_LENGTH = 200


def access_for_raw_token(raw: str) -> TokenAccess | None:
    raw = raw.strip()
    if not raw or len(raw) > _MAX_TOKEN_LENGTH:
        return None
    access = selectors.token_access_by_hash(services.hash_token(raw))
    if access is not None:
        services.token_touch(token=access.token)
        if access.is_runtime:
            services.runtime_heard(agent_ids=access.agent_ids)
    return access


class TokenAuth(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> TokenAccess | None:
        return access_for_raw_token(token)


def caller(request: HttpRequest) -> TokenAccess:
    access: Any = getattr(request, "auth", None)
    if not isinstance(access, TokenAccess):
        raise TypeError("the operation must require TokenAuth")
    return access


def require_runtime(request: HttpRequest) -> TokenAccess:
    access = caller(request)
    if not access.is_runtime:
        raise errors.NotAllowed(
            "Only runtime tokens report sessions and receive commands; this is a personal token."
        )
    return access


def require_personal(request: HttpRequest) -> TokenAccess:
    access = caller(request)
    if access.is_runtime:
        raise errors.NotAllowed(
            "Operator actions need a personal token; runtime tokens report through events."
        )
    return access

"""API tokens: made, used, revoked. Only the SHA-256 of a token is stored."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from sessions_app.errors import InvalidInput
from sessions_app.models import Agent, ApiToken, Tenant, TokenKind

TOKEN_PREFIX = "scc_"  # noqa: S105 - a public prefix that makes our tokens recognisable


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def token_create(
    *, tenant: Tenant, kind: str, name: str, user: Any, agents: Iterable[Agent] = ()
) -> tuple[ApiToken, str]:
    """Make a token; the raw value is returned once and never stored."""
    if kind not in TokenKind.values:
        raise InvalidInput("kind", f"must be one of {', '.join(TokenKind.values)}")
    agents = list(agents)
    if any(a.tenant_id != tenant.pk for a in agents):
        raise InvalidInput("agents", "every agent must belong to the token's workspace")
    if kind == TokenKind.RUNTIME and not agents:
        raise InvalidInput("agents", "a runtime token needs at least one agent")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        token = ApiToken.objects.create(
            tenant=tenant,
            kind=kind,
            name=name,
            user=user,
            prefix=raw[:12],
            token_hash=hash_token(raw),
        )
        token.agents.set(agents)
    return token, raw


def token_revoke(*, token: ApiToken) -> None:
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


def token_touch(*, token: ApiToken) -> None:
    """Record use, at most once a minute per token so busy runtimes do not write on every call."""
    now = timezone.now()
    if token.last_used_at is not None and now - token.last_used_at < timedelta(minutes=1):
        return
    ApiToken.objects.filter(pk=token.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - timedelta(minutes=1))
    ).update(last_used_at=now)
    token.last_used_at = now

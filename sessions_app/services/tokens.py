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

from sessions_app import hooks, selectors
from sessions_app.errors import InvalidInput, NotAllowed, NotFound
from sessions_app.models import AccessChange, Agent, ApiToken, Tenant, TenantMembership, TokenKind
from sessions_app.services.access import access_audit

TOKEN_PREFIX = "scc_"  # noqa: S105 - a public prefix that makes our tokens recognisable


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def token_create(
    *,
    tenant: Tenant,
    kind: str,
    name: str,
    user: Any,
    agents: Iterable[Agent] = (),
    created_by: Any = None,
) -> tuple[ApiToken, str]:
    """Make a token; the raw value is returned once and never stored.

    A personal token acts as its user, so only that user may mint it (`created_by`, when a
    person asks; None for set-up commands) and only while they belong to the workspace.
    Runtime tokens are made by tenant admins (the admin checks who may)."""
    if kind not in TokenKind.values:
        raise InvalidInput("kind", f"must be one of {', '.join(TokenKind.values)}")
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInput("name", "must be 1 to 200 characters")
    agents = list(agents)
    if any(a.tenant_id != tenant.pk for a in agents):
        raise InvalidInput("agents", "every agent must belong to the token's workspace")
    if kind == TokenKind.RUNTIME and not agents:
        raise InvalidInput("agents", "a runtime token needs at least one agent")
    if kind == TokenKind.PERSONAL:
        if agents:
            raise InvalidInput("agents", "a personal token acts as its user, not for agents")
        if created_by is not None and created_by.pk != user.pk:
            raise NotAllowed("A personal token can only be made by the person it acts as.")
        if not TenantMembership.objects.filter(tenant=tenant, user=user).exists():
            raise InvalidInput("tenant", f"{user} is not a member of this workspace")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        token = ApiToken.objects.create(
            tenant=tenant,
            kind=kind,
            name=name,
            user=user,
            created_by=created_by,
            prefix=raw[:12],
            token_hash=hash_token(raw),
        )
        token.agents.set(agents)
        access_audit(
            tenant_id=tenant.pk,
            action=AccessChange.Action.TOKEN_CREATED,
            subject=user,
            by=created_by,
            token=str(token),
            kind=kind,
        )
    return token, raw


def may_manage_token(user: Any, token: ApiToken) -> bool:
    """A person manages their own personal tokens; tenant admins every token of their
    workspace (list and revoke, never see a secret: none is stored)."""
    if token.kind == TokenKind.PERSONAL and token.user_id == user.pk:
        return True
    return selectors.is_tenant_admin(user, token.tenant_id)


def token_revoke(*, token: ApiToken, by: Any = None) -> bool:
    """Revoke a token for good; sockets holding it are closed within seconds. `by` is the
    person asking (checked), None for set-up commands. True when this call revoked it."""
    if by is not None and not may_manage_token(by, token):
        raise NotFound(f"token {token.pk}")
    with transaction.atomic():
        revoked = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        if revoked:
            access_audit(
                tenant_id=token.tenant_id,
                action=AccessChange.Action.TOKEN_REVOKED,
                subject=token.user_id,
                by=by,
                token=str(token),
                kind=token.kind,
            )
            hooks.tokens_changed([token.pk])
    return bool(revoked)


def token_agents_set(*, token: ApiToken, agents: Iterable[Agent], by: Any) -> None:
    """Re-scope a runtime token; its open sockets follow within seconds."""
    agents = list(agents)
    if any(a.tenant_id != token.tenant_id for a in agents):
        raise InvalidInput("agents", "every agent must belong to the token's workspace")
    if token.kind == TokenKind.RUNTIME and not agents:
        raise InvalidInput("agents", "a runtime token needs at least one agent")
    with transaction.atomic():
        before = set(token.agents.values_list("pk", flat=True))
        token.agents.set(agents)
        after = {a.pk for a in agents}
        if before != after:
            access_audit(
                tenant_id=token.tenant_id,
                action=AccessChange.Action.TOKEN_CHANGED,
                subject=token.user_id,
                by=by,
                token=str(token),
                agents=[sorted(before), sorted(after)],
            )
            hooks.tokens_changed([token.pk])


def token_delete(*, token: ApiToken, by: Any) -> None:
    """Delete a token (the admin's delete); audited like a revocation."""
    if not may_manage_token(by, token):
        raise NotFound(f"token {token.pk}")
    with transaction.atomic():
        access_audit(
            tenant_id=token.tenant_id,
            action=AccessChange.Action.TOKEN_DELETED,
            subject=token.user_id,
            by=by,
            token=str(token),
            kind=token.kind,
        )
        pk = token.pk
        ApiToken.objects.filter(pk=pk).delete()
        hooks.tokens_changed([pk])


def token_touch(*, token: ApiToken) -> None:
    """Record use, at most once a minute per token so busy runtimes do not write on every call."""
    now = timezone.now()
    if token.last_used_at is not None and now - token.last_used_at < timedelta(minutes=1):
        return
    ApiToken.objects.filter(pk=token.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - timedelta(minutes=1))
    ).update(last_used_at=now)
    token.last_used_at = now

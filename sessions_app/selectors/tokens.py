"""What an API token reaches: its workspace, its agents, their sessions and commands."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet

from sessions_app.errors import NotFound
from sessions_app.models import (
    Agent,
    AgentSession,
    ApiToken,
    CommandStatus,
    Initiative,
    Role,
    RuntimeCommand,
    Tenant,
    TenantMembership,
    TokenKind,
)
from sessions_app.selectors import keyset
from sessions_app.selectors.access import access_for, sessions_visible_to


@dataclass(frozen=True)
class TokenAccess:
    """What an API token may reach: a runtime token its agents, a personal token what its user
    sees; both only inside the token's workspace."""

    token: ApiToken
    agent_ids: frozenset[int]

    @property
    def is_runtime(self) -> bool:
        return self.token.kind == TokenKind.RUNTIME

    @property
    def tenant_id(self) -> int:
        return self.token.tenant_id

    @property
    def user(self) -> Any:
        return self.token.user


# Runtimes authenticate every request. Remembering a live token's answer for a second saves
# two queries per request on the ingest path, while a revocation, a deactivation or a removed
# membership still takes effect everywhere within that second (docs/security.md promises 2 s).
# This process forgets at once on any such change (hooks.forget_access, model signals); only
# live tokens are kept, so unknown tokens cannot fill the memory.
_cache: dict[str, tuple[float, TokenAccess]] = {}
_cache_lock = threading.Lock()
_CACHE_MAX = 4096


def forget_token_accesses() -> None:
    with _cache_lock:
        _cache.clear()


def token_access_by_hash(token_hash: str) -> TokenAccess | None:
    """The live token with this hash; None when unknown, revoked, or a personal token whose user
    was deactivated or is no longer a member of the token's workspace."""
    ttl = settings.SCC_TOKEN_CACHE_SECONDS
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(token_hash)
    if hit is not None and now - hit[0] < ttl:
        return hit[1]
    access = _live(ApiToken.objects.filter(token_hash=token_hash))
    if access is not None and ttl > 0:
        with _cache_lock:
            if len(_cache) >= _CACHE_MAX:
                _cache.clear()
            _cache[token_hash] = (now, access)
    return access


def token_access_by_id(token_id: int) -> TokenAccess | None:
    """The same check by id, for what outlives a request (a runtime socket, a long-poll):
    re-asked whenever the token or its agents may have changed."""
    return _live(ApiToken.objects.filter(pk=token_id))


def _live(tokens: QuerySet[ApiToken]) -> TokenAccess | None:
    token = tokens.select_related("user", "tenant").filter(revoked_at__isnull=True).first()
    if token is None:
        return None
    if token.kind == TokenKind.PERSONAL:
        # Tenant membership is the root of access, for a person's tokens too.
        if (
            not token.user.is_active
            or not TenantMembership.objects.filter(
                tenant_id=token.tenant_id, user_id=token.user_id
            ).exists()
        ):
            return None
        return TokenAccess(token, frozenset())
    agent_ids = frozenset(
        token.agents.filter(tenant_id=token.tenant_id).values_list("id", flat=True)
    )
    return TokenAccess(token, agent_ids)


def sessions_visible_to_token(access: TokenAccess) -> QuerySet[AgentSession]:
    if access.is_runtime:
        return AgentSession.objects.filter(
            tenant_id=access.tenant_id, agent_id__in=sorted(access.agent_ids)
        )
    return sessions_visible_to(access.user).filter(tenant_id=access.tenant_id)


def token_audience(access: TokenAccess) -> list[Q]:
    """`sessions_visible_to_token` as index-served branches (selectors/keyset.py)."""
    if access.is_runtime:
        # The token's agents are those of its workspace (token_access_by_*).
        return [Q(agent_id=a) for a in sorted(access.agent_ids)]
    person = access_for(access.user)
    return keyset.audience(person, person.developer_project_ids, tenant_id=access.tenant_id)


SESSION_RELATED = ("agent", "owner", "project", "initiative", "tenant")


def session_get_for_token(
    access: TokenAccess, session_id: Any, *, related: tuple[str, ...] = SESSION_RELATED
) -> AgentSession:
    """`related`: the relations to join (ingestion needs only agent and owner)."""
    try:
        pk = uuid.UUID(str(session_id))
    except ValueError:
        raise NotFound(str(session_id)) from None
    session = sessions_visible_to_token(access).select_related(*related).filter(pk=pk).first()
    if session is None:
        raise NotFound(str(session_id))
    return session


def agents_for_token(access: TokenAccess) -> QuerySet[Agent]:
    """Runtime tokens: their agents. Personal tokens: the agents their user may start sessions
    with (agent owner, tenant admin, or at least reporter on the agent's project)."""
    qs = Agent.objects.filter(tenant_id=access.tenant_id).select_related("owner", "project")
    if access.is_runtime:
        return qs.filter(pk__in=sorted(access.agent_ids))
    a = access_for(access.user)
    if a.superuser or access.tenant_id in a.admin_tenant_ids:
        return qs
    return qs.filter(
        Q(owner_id=a.user_id)
        | Q(
            project__memberships__user_id=a.user_id,
            project__memberships__role__gte=Role.REPORTER,
        )
    ).distinct()


def commands_for_session(session: AgentSession, *, limit: int = 100) -> list[RuntimeCommand]:
    return list(RuntimeCommand.objects.filter(session=session).order_by("-created_at")[:limit])


PENDING_COMMAND_STATUSES = (CommandStatus.QUEUED, CommandStatus.DELIVERED)


def agent_in_tenant(*, tenant_id: int, agent_id: int) -> Agent | None:
    return Agent.objects.filter(pk=agent_id, tenant_id=tenant_id).select_related("project").first()


def member_by_username(*, tenant_id: int, username: str) -> Any:
    """A member of the workspace by username; None for strangers (who look like unknowns)."""
    return (
        get_user_model()
        .objects.filter(username=username, is_active=True, tenant_memberships__tenant_id=tenant_id)
        .first()
    )


def initiative_in_tenant(*, tenant_id: int, initiative_id: int) -> Initiative | None:
    return Initiative.objects.filter(pk=initiative_id, tenant_id=tenant_id).first()


def tokens_of_user(user: Any) -> QuerySet[ApiToken]:
    """A person's own personal tokens, newest first (revoked ones too, marked as such)."""
    return (
        ApiToken.objects.filter(user=user, kind=TokenKind.PERSONAL)
        .select_related("tenant")
        .order_by("-created_at")
    )


def token_tenants_for(user: Any) -> QuerySet[Tenant]:
    """The workspaces a person may mint a personal token in: those they belong to."""
    return Tenant.objects.filter(memberships__user=user).order_by("name")

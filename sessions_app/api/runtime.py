"""What runtimes need besides sessions: their agents, their token, and the command long-poll."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any
from uuid import UUID

from asgiref.sync import sync_to_async
from django.http import HttpRequest
from ninja import Router
from ninja.errors import AuthenticationError
from ninja.params.functions import Query

from sessions_app import selectors, services
from sessions_app.api import serializers as out
from sessions_app.api.auth import caller, require_runtime
from sessions_app.api.schemas import (
    AckIn,
    AgentListOut,
    CommandListOut,
    CommandOut,
    ErrorOut,
    TokenOut,
)

router = Router(tags=["runtime"])

ERRORS: dict[int, Any] = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 422: ErrorOut}
MAX_WAIT_SECONDS = 30
# A polling runtime sees a delivered command again only if it has not acknowledged it this long
# after receiving it (it probably lost it); a websocket reconnect gets them all at once.
REDELIVER_AFTER = timedelta(seconds=60)
# The long-poll re-reads the outbox this often. A cheap indexed query (partial index on
# pending commands); polling keeps the fallback independent of Redis and of process count.
POLL_INTERVAL_SECONDS = 0.5


@router.get("/token", response={200: TokenOut, **ERRORS}, summary="Who this token is")
def token_info(request: HttpRequest) -> dict[str, Any]:
    access = caller(request)
    token = access.token
    return {
        "kind": token.kind,
        "name": token.name,
        "prefix": token.prefix,
        "tenant": token.tenant.slug,
        "user": {"id": token.user_id, "username": token.user.get_username()},
        "agents": sorted(access.agent_ids),
    }


@router.get(
    "/agents",
    response={200: AgentListOut, **ERRORS},
    summary="Agents this token may create sessions for",
)
def agent_list(request: HttpRequest) -> dict[str, Any]:
    return {"items": [out.agent_out(a) for a in selectors.agents_for_token(caller(request))]}


@router.get(
    "/runtime/commands",
    response={200: CommandListOut, **ERRORS},
    summary="Receive commands (long-poll)",
    description="For runtimes that cannot hold the /ws/runtime/ websocket. Answers at once with "
    "the commands queued for the token's agents (oldest first, now marked delivered), or waits "
    "up to `wait` seconds for one. A delivered command not acknowledged within 60 seconds is "
    "handed out again, so deduplicate by id.",
)
async def commands_poll(
    request: HttpRequest, wait: int = Query(0, ge=0, le=MAX_WAIT_SECONDS)
) -> dict[str, Any]:
    token_id = require_runtime(request).token.pk
    claim = sync_to_async(_claim_if_live)
    deadline = time.monotonic() + wait
    while True:
        commands = await claim(token_id)
        if commands is None:
            # Revoked, deleted or re-scoped away while waiting: nothing more for this token.
            raise AuthenticationError(401, "This token was revoked.")
        remaining = deadline - time.monotonic()
        if commands or remaining <= 0:
            return {"items": [out.command_out(c) for c in commands]}
        # An async view, so a waiting runtime holds no worker thread.
        await asyncio.sleep(min(POLL_INTERVAL_SECONDS, remaining))


def _claim_if_live(token_id: int) -> list[Any] | None:
    """Read the token again on every round of the long-poll, then claim for its agents now."""
    access = selectors.token_access_by_id(token_id)
    if access is None or not access.is_runtime:
        return None
    # A runtime waiting on the long-poll is alive (its heartbeat).
    services.runtime_heard(agent_ids=access.agent_ids)
    return services.commands_claim(agent_ids=access.agent_ids, redeliver_after=REDELIVER_AFTER)


@router.post(
    "/runtime/commands/{command_id}/ack",
    response={200: CommandOut, **ERRORS},
    summary="Acknowledge a command",
    description="`delivered`, then `applied` or `rejected` (with a `result` saying why). "
    "Repeating an acknowledgement changes nothing.",
)
def command_ack(request: HttpRequest, command_id: UUID, data: AckIn) -> dict[str, Any]:
    access = require_runtime(request)
    command = services.command_ack(
        command_id=command_id, agent_ids=access.agent_ids, status=data.status, result=data.result
    )
    return out.command_out(command)

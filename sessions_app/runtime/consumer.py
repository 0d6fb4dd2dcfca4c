"""The runtime command channel: /ws/runtime/.

A runtime connects with its token and receives the commands operators queue for its agents'
sessions. On connect it gets everything not yet acknowledged (so a runtime that was away misses
nothing), then each new command as it is queued: the `command_queued` hook publishes the command
id to one channel-layer group per agent after commit, and every consumer of that agent loads the
command and sends it. The database stays the source of truth; the group message is only a nudge.

Protocol (JSON text frames):
  server -> runtime  {"type": "command", "id", "kind", "session_id", "payload", ...}
  runtime -> server  {"type": "ack", "id": "<command id>", "status": "delivered"|"applied"|"rejected",
                      "result": "..."}
  server -> runtime  {"type": "ack_ok", "id", "status"} or {"type": "error", "message"}
  runtime -> server  {"type": "ping"}  ->  {"type": "pong"}
Close codes: 4401 bad, missing, revoked or deleted token, 4403 not a runtime token, 1013 the
database is away (reconnect later); a frame that is not a storable JSON object gets an "error"
reply.

The token is re-checked while the socket is open: revoking, deleting or re-scoping it sends
`token.changed` to the token's group after commit (the socket closes with 4401 or follows the
new agent set), and every command is claimed only after the token is read again, so a revoked
token receives nothing even when it was revoked around the services.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any
from urllib.parse import parse_qs
from uuid import UUID

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings

from sessions_app import edge, errors, metrics, selectors, services
from sessions_app.api.auth import access_for_raw_token
from sessions_app.api.serializers import command_json
from sessions_app.models import CommandStatus, RuntimeCommand
from sessions_app.selectors import TokenAccess

logger = logging.getLogger(__name__)

CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
ACK_STATUSES = (CommandStatus.DELIVERED, CommandStatus.APPLIED, CommandStatus.REJECTED)


def agent_group(agent_id: int) -> str:
    return f"runtime.agent.{agent_id}"


def notify_command_queued(command_id: UUID) -> None:
    """`command_queued` listener (runs after commit): nudge the agent's runtime consumers.

    Failing to publish loses nothing, the command waits in the outbox for the runtime's next
    connect or poll, so an unreachable Redis is logged, not raised into the operator's request.
    """
    agent_id = (
        RuntimeCommand.objects.filter(pk=command_id).values_list("agent_id", flat=True).first()
    )
    if agent_id is None:
        return
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(
            agent_group(agent_id), {"type": "runtime.command", "id": str(command_id)}
        )
    except Exception:
        logger.warning(
            "could not publish command %s to the runtime channel", command_id, exc_info=True
        )


def token_group(token_id: int) -> str:
    return f"runtime.token.{token_id}"


def notify_tokens_changed(token_ids: list[int]) -> None:
    """`tokens_changed` listener (runs after commit): sockets holding these tokens re-check."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        for token_id in token_ids:
            async_to_sync(layer.group_send)(token_group(token_id), {"type": "token.changed"})
    except Exception:
        logger.warning("could not announce token changes %s", token_ids, exc_info=True)


def _claim_if_live(token_id: int, command_id: str) -> tuple[TokenAccess | None, Any]:
    """Read the token again, then claim the command for its current agents."""
    access = selectors.token_access_by_id(token_id)
    if access is None or not access.is_runtime:
        return None, None
    return access, services.command_claim(command_id=command_id, agent_ids=access.agent_ids)


def _token_from_scope(scope: dict[str, Any]) -> str:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin1").partition(" ")
            if scheme.lower() == "bearer":
                return str(token).strip()
    query = parse_qs(scope.get("query_string", b"").decode("latin1"))
    return str((query.get("token") or [""])[0])


class RuntimeConsumer(edge.GuardedConsumer, AsyncWebsocketConsumer):
    agent_ids: frozenset[int] = frozenset()
    token_id: int = 0

    async def connect(self) -> None:
        self.sent: set[str] = set()
        self.groups_joined: list[str] = []
        access = await database_sync_to_async(access_for_raw_token)(_token_from_scope(self.scope))
        # Accept before closing: a close before accept is an HTTP 403 to the client, and only an
        # accepted socket can tell it *why* (4xxx codes, which clients should not retry blindly).
        await self.accept()
        if access is None:
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        if not access.is_runtime:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.token_id = access.token.pk
        self._counted = True
        metrics.OPEN_SOCKETS.labels("runtime").inc()
        self._heartbeat = asyncio.ensure_future(self._beat())
        # Join before reading the outbox, so a command queued in between is not missed (it may
        # arrive twice; `sent` drops the repeat).
        await self._follow(access)
        commands = await database_sync_to_async(services.commands_claim)(
            agent_ids=self.agent_ids, limit=1000
        )
        for command in commands:
            await self._send_command(command)

    async def _follow(self, access: TokenAccess) -> None:
        """Listen on the token's group and on one group per agent it is scoped to now."""
        self.agent_ids = access.agent_ids
        wanted = [token_group(access.token.pk), *(agent_group(a) for a in sorted(self.agent_ids))]
        for group in set(self.groups_joined) - set(wanted):
            await self.channel_layer.group_discard(group, self.channel_name)
        for group in set(wanted) - set(self.groups_joined):
            await self.channel_layer.group_add(group, self.channel_name)
        self.groups_joined = wanted

    async def _revoked(self) -> None:
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)
        self.groups_joined, self.agent_ids = [], frozenset()
        await self.close(code=CLOSE_UNAUTHORIZED)

    async def disconnect(self, code: int) -> None:
        heartbeat = getattr(self, "_heartbeat", None)
        if heartbeat is not None:
            heartbeat.cancel()
        if getattr(self, "_counted", False):
            self._counted = False
            metrics.OPEN_SOCKETS.labels("runtime").dec()
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def _beat(self) -> None:
        """An open runtime socket is a runtime alive: say so while it lasts. A killed runtime's
        socket closes (or stops being served), and the silence is what the sweep notices."""
        heard = database_sync_to_async(services.runtime_heard)
        while True:
            await asyncio.sleep(settings.SCC_RUNTIME_HEARTBEAT_SECONDS)
            if self.agent_ids:
                await heard(agent_ids=self.agent_ids)

    async def token_changed(self, event: dict[str, Any]) -> None:
        access = await database_sync_to_async(selectors.token_access_by_id)(self.token_id)
        if access is None or not access.is_runtime:
            await self._revoked()
            return
        await self._follow(access)

    async def runtime_command(self, event: dict[str, Any]) -> None:
        if event.get("id") in self.sent or not self.groups_joined:
            return
        access, command = await database_sync_to_async(_claim_if_live)(self.token_id, event["id"])
        if access is None:
            await self._revoked()
            return
        self.agent_ids = access.agent_ids
        if command is not None:
            await self._send_command(command)

    async def _send_command(self, command: RuntimeCommand) -> None:
        if str(command.pk) in self.sent:
            return
        self.sent.add(str(command.pk))
        await self.send(text_data=json.dumps({"type": "command", **command_json(command)}))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            message = edge.loads(text_data or bytes_data or b"", root="message")
        except edge.EdgeProblem as exc:
            # Too deep, not JSON, not UTF-8 or unstorable text: say so and keep the socket.
            await self._error(f"Messages must be JSON objects: {exc}")
            return
        if not isinstance(message, dict):
            await self._error("Messages must be JSON objects.")
            return
        kind = message.get("type")
        if kind == "ping":
            await self.send(text_data=json.dumps({"type": "pong"}))
        elif kind == "ack":
            await self._ack(message)
        else:
            await self._error(
                f"Unknown message type {edge.printable(str(kind))!r}; expected 'ack' or 'ping'."
            )

    async def _ack(self, message: dict[str, Any]) -> None:
        status = message.get("status")
        result = message.get("result", "")
        try:
            command_id = UUID(str(message.get("id")))
        except ValueError:
            await self._error("ack: id must be a command id (UUID).")
            return
        if status not in ACK_STATUSES:
            await self._error("ack: status must be delivered, applied or rejected.")
            return
        if not isinstance(result, str):
            await self._error("ack: result must be text.")
            return
        try:
            command = await database_sync_to_async(services.command_ack)(
                command_id=command_id, agent_ids=self.agent_ids, status=status, result=result
            )
        except errors.NotFound:
            await self._error(f"ack: no command {command_id} for this runtime.", id=str(command_id))
            return
        await self.send(
            text_data=json.dumps(
                {"type": "ack_ok", "id": str(command.pk), "status": command.status}
            )
        )

    async def _error(self, message: str, **extra: Any) -> None:
        await self.send(text_data=json.dumps({"type": "error", "message": message, **extra}))

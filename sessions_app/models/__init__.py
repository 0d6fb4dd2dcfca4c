"""The session domain.

Every row belongs to exactly one tenant. Cross-tenant references are refused by services and,
on PostgreSQL, by composite foreign keys (see migration 0002)."""

from __future__ import annotations

from sessions_app.models.bulk import BulkAction, BulkItem, BulkRun, BulkStatus
from sessions_app.models.commands import CommandKind, CommandStatus, RuntimeCommand
from sessions_app.models.idempotency import IdempotencyKey
from sessions_app.models.sessions import (
    AgentSession,
    AgentStatus,
    CheckpointState,
    EventType,
    Origin,
    SessionEvent,
    StopReason,
)
from sessions_app.models.tokens import ApiToken, TokenKind
from sessions_app.models.workspace import (
    AccessChange,
    Agent,
    Initiative,
    Membership,
    PolicyChange,
    Project,
    Role,
    Tenant,
    TenantMembership,
)

__all__ = [
    "AccessChange",
    "Agent",
    "AgentSession",
    "AgentStatus",
    "ApiToken",
    "BulkAction",
    "BulkItem",
    "BulkRun",
    "BulkStatus",
    "CheckpointState",
    "CommandKind",
    "CommandStatus",
    "EventType",
    "IdempotencyKey",
    "Initiative",
    "Membership",
    "Origin",
    "PolicyChange",
    "Project",
    "Role",
    "RuntimeCommand",
    "SessionEvent",
    "StopReason",
    "Tenant",
    "TenantMembership",
    "TokenKind",
]

"""Writes. Views, API endpoints, tasks and management commands call these; nothing else
changes sessions, events, commands, tokens or policies. One module per concern, re-exported
here so call sites read `services.session_cancel(...)` wherever the function lives."""

from __future__ import annotations

from sessions_app.services.access import (
    access_audit,
    agent_owner_changed,
    membership_remove,
    project_member_remove,
    project_member_set,
    tenant_member_set,
)
from sessions_app.services.actions import (
    checkpoint_decide,
    message_send,
    session_cancel,
    session_end,
    session_pause,
    session_resume,
    session_stop,
)
from sessions_app.services.agents import agent_policy_update
from sessions_app.services.bulk import BulkPass, bulk_abort, bulk_execute, bulk_start
from sessions_app.services.commands import (
    command_ack,
    command_claim,
    command_mark,
    command_queue,
    commands_claim,
)
from sessions_app.services.exports import session_export_audit
from sessions_app.services.handover import (
    session_clone,
    session_hand_over,
    session_transfer,
    session_transfer_to_agent,
)
from sessions_app.services.idempotency import (
    Replay,
    idempotency_begin,
    idempotency_finish,
    idempotency_purge,
    idempotency_release,
)
from sessions_app.services.ingest import EventIn, EventsRecorded, events_record, events_record_in
from sessions_app.services.runtimes import (
    RUNTIME_LOST,
    forget_throttle,
    runtime_heard,
    runtime_lost_agents,
)
from sessions_app.services.sessions import (
    METADATA_FIELDS,
    deleted_facts,
    may_override_model,
    session_archive,
    session_create,
    session_create_for_token,
    session_delete,
    session_new,
    session_set_pinned,
    start_request,
    user_may_use_agent,
)
from sessions_app.services.starts import (
    TRANSFER_TRANSCRIPT_BYTES,
    TRANSFER_TRANSCRIPT_EVENTS,
    WAITING_FOR_RUNTIME,
    start_fail,
)
from sessions_app.services.tokens import (
    TOKEN_PREFIX,
    hash_token,
    may_manage_token,
    token_agents_set,
    token_create,
    token_delete,
    token_revoke,
    token_touch,
)

__all__ = [
    "METADATA_FIELDS",
    "RUNTIME_LOST",
    "TOKEN_PREFIX",
    "TRANSFER_TRANSCRIPT_BYTES",
    "TRANSFER_TRANSCRIPT_EVENTS",
    "WAITING_FOR_RUNTIME",
    "BulkPass",
    "EventIn",
    "EventsRecorded",
    "Replay",
    "access_audit",
    "agent_owner_changed",
    "agent_policy_update",
    "bulk_abort",
    "bulk_execute",
    "bulk_start",
    "checkpoint_decide",
    "command_ack",
    "command_claim",
    "command_mark",
    "command_queue",
    "commands_claim",
    "deleted_facts",
    "events_record",
    "events_record_in",
    "forget_throttle",
    "hash_token",
    "idempotency_begin",
    "idempotency_finish",
    "idempotency_purge",
    "idempotency_release",
    "may_manage_token",
    "may_override_model",
    "membership_remove",
    "message_send",
    "project_member_remove",
    "project_member_set",
    "runtime_heard",
    "runtime_lost_agents",
    "session_archive",
    "session_cancel",
    "session_clone",
    "session_create",
    "session_create_for_token",
    "session_delete",
    "session_end",
    "session_export_audit",
    "session_hand_over",
    "session_new",
    "session_pause",
    "session_resume",
    "session_set_pinned",
    "session_stop",
    "session_transfer",
    "session_transfer_to_agent",
    "start_fail",
    "start_request",
    "tenant_member_set",
    "token_agents_set",
    "token_create",
    "token_delete",
    "token_revoke",
    "token_touch",
    "user_may_use_agent",
]

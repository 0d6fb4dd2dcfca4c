"""Event bodies: one payload model per event type, the batch a runtime posts (checked against
the transport limits before the per-event validation) and the events read back."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from sessions_app.api.schemas.common import (
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    MAX_COUNT,
    MAX_EVENT_BYTES,
    Count,
    PayloadTooLarge,
    unstorable_text,
)
from sessions_app.models import AgentStatus
from sessions_app.states import Status


class _Payload(BaseModel):
    # Runtimes may attach more than the fields below (token usage, timings); those are kept.
    model_config = ConfigDict(extra="allow")


class MessagePayload(_Payload):
    role: Literal["user", "agent", "system"]
    text: str


class ThinkingPayload(_Payload):
    text: str


class ToolCallPayload(_Payload):
    call_id: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=200)
    arguments: dict[str, Any] = Field(default_factory=dict)


class ToolResultPayload(_Payload):
    call_id: str = Field(min_length=1, max_length=200)
    name: str = Field("", max_length=200)
    output: str = ""
    is_error: bool = False


class FileEditPayload(_Payload):
    path: str = Field(min_length=1, max_length=1000)
    before: str | None = Field(None, description="null when the edit creates the file")
    after: str | None = Field(None, description="null when the edit deletes the file")

    @model_validator(mode="after")
    def _changes_something(self) -> FileEditPayload:
        if self.before is None and self.after is None:
            raise ValueError("before and after cannot both be null")
        return self


class StepPayload(_Payload):
    state: Literal["started", "completed"]
    name: str = Field(min_length=1, max_length=200)
    index: int = Field(ge=1, le=MAX_COUNT, description="1-based")
    total: int | None = Field(None, ge=1, le=MAX_COUNT)

    @model_validator(mode="after")
    def _index_within_total(self) -> StepPayload:
        if self.total is not None and self.index > self.total:
            raise ValueError(f"index {self.index} is past total {self.total}")
        return self


class CheckpointPayload(_Payload):
    state: Literal["awaiting", "approved", "rejected"]
    name: str = Field("", max_length=200)
    note: str = ""


class ErrorInfo(BaseModel):
    code: str = Field("", max_length=100)
    message: str = Field(min_length=1)


class StatusChangePayload(_Payload):
    to: Status
    reason: str = Field("", max_length=500)
    error: ErrorInfo | None = None


class ProgressPayload(_Payload):
    current_step: Count | None = None
    total_steps: Count | None = None
    turns: Count | None = None
    message_count: Count | None = None


class ErrorPayload(_Payload):
    code: str = Field("", max_length=100)
    message: str = Field(min_length=1)


class AgentStatusPayload(_Payload):
    status: AgentStatus


class ArtifactPayload(_Payload):
    name: str = Field(min_length=1, max_length=300)
    uri: str = Field("", max_length=2000)
    mime_type: str = Field("", max_length=200)
    size_bytes: int | None = Field(None, ge=0, le=2**62)


MAX_USAGE_TOKENS = 10**12
MAX_USAGE_COST = Decimal(10**6)


class UsagePayload(_Payload):
    """Additive: each event adds to the session's totals once (a retried event adds nothing)."""

    tokens_in: int = Field(0, ge=0, le=MAX_USAGE_TOKENS)
    tokens_out: int = Field(0, ge=0, le=MAX_USAGE_TOKENS)
    cost: Decimal = Field(
        Decimal(0),
        ge=0,
        le=MAX_USAGE_COST,
        decimal_places=6,
        description="In the workspace's currency, at most 6 decimal places; stored as a string",
    )


class _EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(
        min_length=1,
        max_length=100,
        description="Client-chosen, unique per session; retries reuse it",
    )
    actor: str = Field(
        "", max_length=200, description="Defaults to the agent (the owner for user messages)"
    )


class MessageEvent(_EventIn):
    type: Literal["message"]
    payload: MessagePayload


class ThinkingEvent(_EventIn):
    type: Literal["thinking"]
    payload: ThinkingPayload


class ToolCallEvent(_EventIn):
    type: Literal["tool_call"]
    payload: ToolCallPayload


class ToolResultEvent(_EventIn):
    type: Literal["tool_result"]
    payload: ToolResultPayload


class FileEditEvent(_EventIn):
    type: Literal["file_edit"]
    payload: FileEditPayload


class StepEvent(_EventIn):
    type: Literal["step"]
    payload: StepPayload


class CheckpointEvent(_EventIn):
    type: Literal["checkpoint"]
    payload: CheckpointPayload


class StatusChangeEvent(_EventIn):
    type: Literal["status_change"]
    payload: StatusChangePayload


class ProgressEvent(_EventIn):
    type: Literal["progress"]
    payload: ProgressPayload


class ErrorEvent(_EventIn):
    type: Literal["error"]
    payload: ErrorPayload


class AgentStatusEvent(_EventIn):
    type: Literal["agent_status"]
    payload: AgentStatusPayload


class ArtifactEvent(_EventIn):
    type: Literal["artifact"]
    payload: ArtifactPayload


class UsageEvent(_EventIn):
    type: Literal["usage"]
    payload: UsagePayload


EventIn = Annotated[
    MessageEvent
    | ThinkingEvent
    | ToolCallEvent
    | ToolResultEvent
    | FileEditEvent
    | StepEvent
    | CheckpointEvent
    | StatusChangeEvent
    | ProgressEvent
    | ErrorEvent
    | AgentStatusEvent
    | ArtifactEvent
    | UsageEvent,
    Field(discriminator="type"),
]
EVENT_TYPES = (
    "message",
    "thinking",
    "tool_call",
    "tool_result",
    "file_edit",
    "step",
    "checkpoint",
    "status_change",
    "progress",
    "error",
    "agent_status",
    "artifact",
    "usage",
)


class EventBatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[EventIn] = Field(
        min_length=1,
        description=f"At most {MAX_BATCH_EVENTS} events and {MAX_BATCH_BYTES} bytes per batch, "
        f"{MAX_EVENT_BYTES} bytes per event",
    )

    @model_validator(mode="before")
    @classmethod
    def _within_limits(cls, data: Any, info: ValidationInfo) -> Any:
        events = data.get("events") if isinstance(data, dict) else None
        if not isinstance(events, list):
            return data  # the field validation says what is wrong
        if len(events) > MAX_BATCH_EVENTS:
            raise PayloadTooLarge(
                f"A batch holds at most {MAX_BATCH_EVENTS} events; this one has {len(events)}. "
                "Split it.",
                limit=MAX_BATCH_EVENTS,
                actual=len(events),
            )
        request = (info.context or {}).get("request")
        # Only a body bigger than one event's limit can hold an event over it; skip the
        # re-serialisation otherwise (the common case on the ingest hot path).
        check_size = request is None or len(request.body) > MAX_EVENT_BYTES
        seen: dict[Any, int] = {}
        for i, event in enumerate(events):
            if check_size:
                size = len(json.dumps(event, ensure_ascii=False).encode("utf-8", "replace"))
                if size > MAX_EVENT_BYTES:
                    raise PayloadTooLarge(
                        f"events[{i}] is {size} bytes; an event may be at most "
                        f"{MAX_EVENT_BYTES} bytes (256 KiB).",
                        limit=MAX_EVENT_BYTES,
                        actual=size,
                    )
            bad = unstorable_text(event)
            if bad:
                raise ValueError(
                    f"events[{i}].{bad} must not contain NUL characters or unpaired surrogates"
                )
            event_id = event.get("event_id") if isinstance(event, dict) else None
            if isinstance(event_id, str):
                if event_id in seen:
                    raise ValueError(
                        f"events[{i}].event_id repeats events[{seen[event_id]}].event_id "
                        f"({event_id!r}); event ids must be unique"
                    )
                seen[event_id] = i
        return data


class EventResult(BaseModel):
    event_id: str
    seq: int | None = Field(description="The event's seq; null when it was refused")
    status: Literal["stored", "conflict", "session_ended"] = Field(
        description="stored (now, or before with the same content: a retry gets the same "
        "answer); conflict (this id was stored before with other content, which stays; seq is "
        "the stored event's); session_ended (refused and not stored: the session has ended)"
    )


class SessionState(BaseModel):
    id: UUID
    status: str
    status_group: str
    last_seq: int
    version: int


class EventBatchOut(BaseModel):
    results: list[EventResult] = Field(
        description="One per posted event, in request order; a retry gets the same"
    )
    created: int
    duplicates: int
    conflicts: int = Field(description="Event ids resent with content other than the stored")
    refused: int = Field(description="Events refused because the session has ended")
    session: SessionState


class EventOut(BaseModel):
    seq: int
    event_id: str
    type: str
    actor: str
    payload: dict[str, Any]
    redactions: dict[str, int]
    created_at: datetime


class EventListOut(BaseModel):
    items: list[EventOut]
    last_seq: int = Field(description="The session's latest seq")
    next_after: int | None = Field(description="Pass as ?after= for more; null when caught up")

"""Request and response bodies of the runtime API.

Input models reject what could not be stored faithfully (NUL characters and unpaired
surrogates: PostgreSQL refuses both in text and jsonb) so bad input is a 422, never a 500.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    model_validator,
)

from sessions_app.models import AgentStatus, CommandKind, CommandStatus, Origin, TokenKind
from sessions_app.states import Kind, Status

MAX_BATCH_EVENTS = 500
MAX_BATCH_BYTES = 1024 * 1024
MAX_EVENT_BYTES = 256 * 1024
# Ids and counters are bounded so a huge number is a 422, not a database overflow.
MAX_ID = 2**53
MAX_COUNT = 1_000_000


class PayloadTooLarge(Exception):
    """A transport limit was exceeded (413). Raised from validators on purpose: pydantic only
    turns ValueError into a 422, anything else propagates to the API's error handler."""

    def __init__(self, message: str, *, limit: int, actual: int) -> None:
        self.limit, self.actual = limit, actual
        super().__init__(message)


def unstorable_text(value: Any, path: str = "") -> str | None:
    """The path of the first string (or key) in a JSON value that the database cannot store."""
    if isinstance(value, str):
        return None if _storable(value) else path or "value"
    if isinstance(value, dict):
        for key, item in value.items():
            sub = f"{path}.{key}" if path else str(key)
            if not _storable(str(key)):
                return sub
            found = unstorable_text(item, sub)
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = unstorable_text(item, f"{path}[{i}]")
            if found:
                return found
    return None


def _storable(text: str) -> bool:
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # an unpaired surrogate from a \ud800-style JSON escape
        return False
    return True


def _storable_text(value: str) -> str:
    if not _storable(value):
        raise ValueError("must not contain NUL characters or unpaired surrogates")
    return value


Text = Annotated[str, AfterValidator(_storable_text)]
DbId = Annotated[int, Field(ge=1, le=MAX_ID)]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]


# --- errors -----------------------------------------------------------------------------------


class FieldError(BaseModel):
    field: str = Field(
        description="Dotted path of the offending input, e.g. events[3].payload.text"
    )
    message: str
    type: str = ""


class ErrorOut(BaseModel):
    """Every error the API answers with."""

    code: str = Field(description="Machine-readable: not_found, illegal_transition, ...")
    message: str = Field(description="What went wrong, for a person")
    field: str | None = Field(None, description="The first offending field, when one is to blame")
    errors: list[FieldError] | None = None
    details: dict[str, Any] | None = None


# --- sessions ---------------------------------------------------------------------------------


class RunMetadata(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sandbox: Annotated[Text, Field(max_length=200)] = ""
    profile: Annotated[Text, Field(max_length=200)] = ""
    runtime: Annotated[Text, Field(max_length=200)] = ""
    repo: Annotated[Text, Field(max_length=300)] = ""
    branch: Annotated[Text, Field(max_length=200)] = ""
    origin: Origin = Origin.API


class SessionCreateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Kind
    agent: DbId = Field(description="Agent id")
    owner: Annotated[Text, Field(min_length=1, max_length=150)] | None = Field(
        None,
        description="Username the session runs for; required with a runtime token, must be "
        "the token's user (or left out) with a personal token",
    )
    title: Annotated[Text, Field(max_length=300)] = ""
    model: Annotated[Text, Field(max_length=100)] = Field(
        "", description="Leave empty for the agent's default model"
    )
    temperature: float = Field(0.7, ge=0, le=2, allow_inf_nan=False)
    max_tokens: int = Field(4000, ge=100, le=8000)
    timeout_seconds: int = Field(
        300, ge=60, le=1800, description="Also bounded by the agent's max duration"
    )
    initiative: DbId | None = None
    parent: UUID | None = Field(None, description="The chat or flow this session was spawned from")
    metadata: RunMetadata = Field(default_factory=RunMetadata)


class Ref(BaseModel):
    id: int
    name: str


class UserRef(BaseModel):
    id: int
    username: str


class Progress(BaseModel):
    text: str
    percent: int | None
    current_step: int
    total_steps: int
    current_step_name: str
    turns: int
    message_count: int


class Checkpoint(BaseModel):
    state: str
    name: str


class SessionError(BaseModel):
    code: str
    message: str


class SessionOut(BaseModel):
    id: UUID
    short_id: str
    kind: str
    status: str
    status_group: str
    agent_status: str
    live: bool
    title: str
    agent: Ref
    owner: UserRef
    project: Ref
    initiative_id: int | None
    parent_id: UUID | None
    model: str
    temperature: float
    max_tokens: int
    timeout_seconds: int
    progress: Progress
    checkpoint: Checkpoint
    error: SessionError | None
    stop_reason: str
    metadata: dict[str, str]
    pinned: bool
    last_seq: int
    version: int
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    last_activity_at: datetime
    archived_at: datetime | None


class SessionListOut(BaseModel):
    items: list[SessionOut]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next page; null at the end"
    )


# --- events -----------------------------------------------------------------------------------


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
    | ArtifactEvent,
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
    seq: int


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


# --- actions and commands -----------------------------------------------------------------------


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: Annotated[Text, Field(min_length=1, max_length=20_000)]


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: Annotated[Text, Field(max_length=2000)] = ""


class CommandOut(BaseModel):
    id: UUID
    kind: CommandKind
    session_id: UUID
    agent_id: int
    payload: dict[str, Any]
    status: CommandStatus
    correlation_id: UUID
    result: str
    created_at: datetime
    delivered_at: datetime | None
    acked_at: datetime | None


class MessageOut(BaseModel):
    command: CommandOut
    session: SessionOut


class CommandListOut(BaseModel):
    items: list[CommandOut]


class AckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["delivered", "applied", "rejected"]
    result: Annotated[Text, Field(max_length=2000)] = ""


# --- agents and tokens --------------------------------------------------------------------------


class AgentPolicy(BaseModel):
    idle_timeout_seconds: int
    max_duration_seconds: int
    max_concurrent_sessions_per_user: int | None
    allow_model_override: bool


class AgentOut(BaseModel):
    id: int
    name: str
    project: Ref
    owner: UserRef
    default_model: str
    allowed_models: list[str]
    policy: AgentPolicy


class AgentListOut(BaseModel):
    items: list[AgentOut]


class TokenOut(BaseModel):
    kind: TokenKind
    name: str
    prefix: str
    tenant: str = Field(description="Workspace slug")
    user: UserRef
    agents: list[int] = Field(description="A runtime token's agents; empty for personal tokens")

"""Session bodies: what creating a session takes and what a session looks like."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from sessions_app.api.schemas.common import DbId, Ref, Text, UserRef
from sessions_app.models import Origin
from sessions_app.states import Kind


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
    input: Annotated[Text, Field(max_length=20_000)] = Field(
        "",
        description="The first message (chat) or the goal (flow run, background task); stored "
        "in the transcript and, for a personal token's session, sent with its `start` command",
    )


class TransferIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to_user: Annotated[Text, Field(min_length=1, max_length=150)] | None = Field(
        None, description="Username of the workspace member who takes the session over"
    )
    to_agent: DbId | None = Field(
        None, description="Id of the agent that continues the session (same owner)"
    )


class DeletedOut(BaseModel):
    id: UUID
    deleted: bool


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


class Usage(BaseModel):
    tokens_in: int
    tokens_out: int
    cost: Decimal = Field(description="The sum of the session's usage events (a string)")


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
    parent_id: UUID | None = Field(
        description="The session this one was spawned from; null when none or not visible to you"
    )
    cloned_from_id: UUID | None = Field(description="Null when none or not visible to you")
    transferred_from_id: UUID | None = Field(description="Null when none or not visible to you")
    hidden_related: list[str] = Field(
        description="Links (parent, cloned_from, transferred_from) to a session you cannot see"
    )
    redactions: dict[str, int] = Field(
        description="Credentials removed from this session's stored data, per rule (counts only)"
    )
    model: str
    temperature: float
    max_tokens: int
    timeout_seconds: int
    progress: Progress
    usage: Usage
    checkpoint: Checkpoint
    error: SessionError | None
    stop_reason: str
    metadata: dict[str, str]
    pinned: bool
    awaiting_runtime_since: datetime | None = Field(
        description="Set while a session the server created waits for a runtime to accept it"
    )
    waiting_reason: str = Field(description="'waiting for a runtime' while it waits, else ''")
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

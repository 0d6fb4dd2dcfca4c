"""Actions people take on a session and the commands they become for the runtime."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from sessions_app.api.schemas.common import Text
from sessions_app.api.schemas.sessions import SessionOut
from sessions_app.models import CommandKind, CommandStatus


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

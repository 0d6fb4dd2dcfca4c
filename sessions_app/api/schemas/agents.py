"""What a runtime learns about itself: its agents (with their policies) and its token."""

from __future__ import annotations

from pydantic import BaseModel, Field

from sessions_app.api.schemas.common import Ref, UserRef
from sessions_app.models import TokenKind


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

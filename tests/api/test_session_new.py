"""POST /api/v1/sessions with a personal token: a session the person starts, which waits for a
runtime of its agent (`start` command) like one made on the page."""

from __future__ import annotations

from typing import Any

import pytest

from sessions_app.models import AgentSession, EventType, RuntimeCommand, SessionEvent
from tests.api.conftest import Api, error

pytestmark = pytest.mark.django_db


def new(world: Any, **overrides: Any) -> dict[str, Any]:
    return {"kind": "flow_run", "agent": world.agent.pk, **overrides}


def test_defaults_and_the_start_command(world: Any, personal: Any) -> None:
    response = personal(world.owner).post("/sessions", new(world, input="Ship the release notes"))
    assert response.status_code == 201, response.content
    data = response.json()
    assert (data["temperature"], data["max_tokens"], data["timeout_seconds"]) == (0.7, 4000, 300)
    assert data["model"] == world.agent.default_model
    assert data["owner"]["username"] == "owner"
    assert data["title"].startswith("builder · flow run ")  # auto-generated when blank
    assert data["status"] == "pending"
    assert data["waiting_reason"] == "waiting for a runtime"
    assert data["awaiting_runtime_since"] is not None
    [start] = RuntimeCommand.objects.filter(session_id=data["id"])
    assert (start.kind, start.status, start.agent_id) == ("start", "queued", world.agent.pk)
    assert start.payload["origin"] == "new"
    assert start.payload["input"] == "Ship the release notes"
    config = start.payload["session"]
    assert config["id"] == data["id"]
    assert config["kind"] == "flow_run"
    assert (config["temperature"], config["max_tokens"], config["timeout_seconds"]) == (
        0.7,
        4000,
        300,
    )
    assert config["owner"] == "owner"
    assert config["agent"] == {"id": world.agent.pk, "name": "builder"}
    first = SessionEvent.objects.filter(session_id=data["id"], type=EventType.MESSAGE).get()
    assert first.payload["text"] == "Ship the release notes"


def test_a_runtime_token_creates_without_a_start(world: Any, runtime: Api) -> None:
    response = runtime.post("/sessions", new(world, owner="owner"))
    assert response.status_code == 201
    assert response.json()["waiting_reason"] == ""
    assert not RuntimeCommand.objects.filter(session_id=response.json()["id"]).exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", -0.1),
        ("temperature", 2.01),
        ("max_tokens", 99),
        ("max_tokens", 8001),
        ("timeout_seconds", 59),
        ("timeout_seconds", 1801),
    ],
)
def test_every_range_error_names_its_field(
    world: Any, personal: Any, field: str, value: Any
) -> None:
    response = personal(world.owner).post("/sessions", new(world, **{field: value}))
    assert response.status_code == 422
    assert field in error(response)["message"]
    assert not AgentSession.objects.exists()


def test_the_timeout_is_bounded_by_the_policy_max_duration(world: Any, personal: Any) -> None:
    world.agent.idle_timeout_seconds = 300
    world.agent.max_duration_seconds = 600
    world.agent.save()
    response = personal(world.owner).post("/sessions", new(world, timeout_seconds=601))
    assert response.status_code == 422
    assert "timeout_seconds" in error(response)["message"]
    assert "600" in error(response)["message"]
    ok = personal(world.owner).post("/sessions", new(world, timeout_seconds=600))
    assert ok.status_code == 201


def test_the_model_gate(world: Any, personal: Any) -> None:
    # The policy forbids overrides: nobody may pick another model.
    refused = personal(world.agent_owner).post("/sessions", new(world, model="gpt-4o-mini"))
    assert refused.status_code == 422
    assert "model" in error(refused)["message"]
    world.agent.allow_model_override = True
    world.agent.allowed_models = ["gpt-4o", "gpt-4o-mini"]
    world.agent.save()
    # Allowed by the policy, but a project developer may not override.
    member = personal(world.owner).post("/sessions", new(world, model="gpt-4o-mini"))
    assert member.status_code == 422
    assert "model" in error(member)["message"]
    # Not among the agent's allowed models.
    other = personal(world.agent_owner).post("/sessions", new(world, model="claude-x"))
    assert other.status_code == 422
    assert "gpt-4o-mini" in error(other)["message"]
    # The agent's owner (and a tenant admin) may.
    for user in (world.agent_owner, world.admin):
        ok = personal(user).post("/sessions", new(world, model="gpt-4o-mini"))
        assert ok.status_code == 201, ok.content
        assert ok.json()["model"] == "gpt-4o-mini"


def test_the_cap_answers_with_the_limit_and_the_current_count(world: Any, personal: Any) -> None:
    world.agent.max_concurrent_sessions_per_user = 2
    world.agent.save()
    api = personal(world.owner)
    for _ in range(2):
        assert api.post("/sessions", new(world)).status_code == 201
    response = api.post("/sessions", new(world))
    assert response.status_code == 409
    body = error(response)
    assert body["code"] == "concurrency_limit"
    assert body["details"] == {"limit": 2, "current": 2}
    assert "at most 2" in body["message"]
    assert AgentSession.objects.count() == 2


def test_an_agent_the_person_may_not_use_is_refused(world: Any, personal: Any) -> None:
    response = personal(world.outsider).post("/sessions", new(world))
    assert response.status_code == 422
    assert "owner" in error(response)["message"]
    assert personal(world.owner).post("/sessions", new(world)).status_code == 201  # control

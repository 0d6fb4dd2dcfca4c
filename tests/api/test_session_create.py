from __future__ import annotations

from typing import Any

import pytest

from sessions_app.models import AgentSession, EventType, SessionEvent
from tests import factories as f
from tests.api.conftest import Api, error

pytestmark = pytest.mark.django_db


def body(world: Any, **overrides: Any) -> dict[str, Any]:
    return {"kind": "flow_run", "agent": world.agent.pk, "owner": "owner", **overrides}


@pytest.mark.parametrize(
    ("kind", "status"),
    [("flow_run", "pending"), ("background_task", "queued"), ("chat", "running")],
)
def test_it_creates_each_kind_in_its_initial_status(
    world: Any, runtime: Api, kind: str, status: str
) -> None:
    response = runtime.post("/sessions", body(world, kind=kind, title="Nightly"))
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["status"] == status
    assert data["title"] == "Nightly"
    assert data["owner"] == {"id": world.owner.pk, "username": "owner"}
    assert data["agent"] == {"id": world.agent.pk, "name": "builder"}
    session = AgentSession.objects.get(pk=data["id"])
    assert session.kind == kind
    assert SessionEvent.objects.filter(session=session, type=EventType.STATUS_CHANGE).count() == 1


def test_it_stores_every_setting_and_the_run_metadata(world: Any, runtime: Api) -> None:
    initiative = f.make_initiative(world.tenant, "Q3 launch")
    parent = f.make_session(world.agent, world.owner, "chat")
    metadata = {
        "sandbox": "sbx-1",
        "profile": "large",
        "runtime": "rt",
        "repo": "acme/x",
        "branch": "main",
        "origin": "vscode",
    }
    response = runtime.post(
        "/sessions",
        body(
            world,
            kind="background_task",
            temperature=1.5,
            max_tokens=100,
            timeout_seconds=1800,
            initiative=initiative.pk,
            parent=str(parent.pk),
            metadata=metadata,
        ),
    )
    assert response.status_code == 201, response.content
    data = response.json()
    assert (data["temperature"], data["max_tokens"], data["timeout_seconds"]) == (1.5, 100, 1800)
    assert data["initiative_id"] == initiative.pk
    assert data["parent_id"] == str(parent.pk)
    assert data["metadata"] == metadata


def test_a_blank_title_is_generated(world: Any, runtime: Api) -> None:
    data = runtime.post("/sessions", body(world)).json()
    assert data["title"].startswith("builder · flow run")


def test_a_credential_in_the_title_is_redacted(world: Any, runtime: Api) -> None:
    data = runtime.post(
        "/sessions", body(world, title="deploy with password=hunter2hunter2")
    ).json()
    assert "hunter2" not in data["title"]
    assert "hunter2" not in AgentSession.objects.get(pk=data["id"]).title


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"temperature": 2.01}, "temperature"),
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"max_tokens": 99}, "max_tokens"),
        ({"max_tokens": 8001}, "max_tokens"),
        ({"max_tokens": 10**30}, "max_tokens"),
        ({"timeout_seconds": 59}, "timeout_seconds"),
        ({"timeout_seconds": 1801}, "timeout_seconds"),
        ({"kind": "meeting"}, "kind"),
        ({"agent": "builder"}, "agent"),
        ({"agent": 2**60}, "agent"),
        ({"title": "x" * 301}, "title"),
        ({"title": "nul\x00byte"}, "title"),
        ({"parent": "not-a-uuid"}, "parent"),
        ({"metadata": {"origin": "carrier-pigeon"}}, "metadata.origin"),
        ({"metadata": {"colour": "blue"}}, "metadata.colour"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_it_answers_422_naming_the_field(
    world: Any, runtime: Api, overrides: dict[str, Any], field: str
) -> None:
    response = runtime.post("/sessions", body(world, **overrides))
    assert response.status_code == 422, response.content
    assert error(response)["field"] == field
    assert not AgentSession.objects.exists()


def test_the_timeout_must_fit_the_policys_max_duration(world: Any, runtime: Api) -> None:
    world.agent.idle_timeout_seconds = 60
    world.agent.max_duration_seconds = 600
    world.agent.save()
    response = runtime.post("/sessions", body(world, timeout_seconds=900))
    assert response.status_code == 422
    assert error(response)["field"] == "timeout_seconds"
    assert "600" in error(response)["message"]


def test_a_model_override_needs_the_policy(world: Any, runtime: Api) -> None:
    response = runtime.post("/sessions", body(world, owner="agent_owner", model="gpt-5"))
    assert response.status_code == 422
    assert error(response)["field"] == "model"
    assert "does not allow" in error(response)["message"]


def test_a_model_override_needs_an_owner_who_may_override(world: Any, runtime: Api) -> None:
    world.agent.allow_model_override = True
    world.agent.save()
    response = runtime.post("/sessions", body(world, owner="owner", model="gpt-5"))
    assert response.status_code == 422
    assert error(response)["field"] == "model"
    for owner in ("agent_owner", "admin"):
        response = runtime.post("/sessions", body(world, owner=owner, model="gpt-5"))
        assert response.status_code == 201, response.content
        assert response.json()["model"] == "gpt-5"


def test_a_model_override_must_be_an_allowed_model(world: Any, runtime: Api) -> None:
    world.agent.allow_model_override = True
    world.agent.allowed_models = ["gpt-4o", "claude-sonnet"]
    world.agent.save()
    assert runtime.post("/sessions", body(world, owner="admin", model="gpt-5")).status_code == 422
    assert (
        runtime.post("/sessions", body(world, owner="admin", model="claude-sonnet")).status_code
        == 201
    )


def test_the_concurrency_cap_answers_409_naming_the_limit(world: Any, runtime: Api) -> None:
    world.agent.max_concurrent_sessions_per_user = 2
    world.agent.save()
    for _ in range(2):
        assert runtime.post("/sessions", body(world)).status_code == 201
    response = runtime.post("/sessions", body(world))
    assert response.status_code == 409
    data = error(response)
    assert data["code"] == "concurrency_limit"
    assert "at most 2 concurrent sessions" in data["message"]
    assert data["details"] == {"limit": 2, "current": 2}
    # Other owners are not affected.
    assert runtime.post("/sessions", body(world, owner="developer")).status_code == 201


def test_a_runtime_token_must_name_an_owner_who_may_use_the_agent(world: Any, runtime: Api) -> None:
    response = runtime.post("/sessions", {"kind": "chat", "agent": world.agent.pk})
    assert (response.status_code, error(response)["field"]) == (422, "owner")
    response = runtime.post("/sessions", body(world, owner="nobody"))
    assert (response.status_code, error(response)["field"]) == (422, "owner")
    # A member of the workspace without a role on the agent's project.
    response = runtime.post("/sessions", body(world, owner="outsider"))
    assert (response.status_code, error(response)["field"]) == (422, "owner")
    # A user of another workspace looks like an unknown one.
    response = runtime.post("/sessions", body(world, owner="other_admin"))
    assert (response.status_code, error(response)["field"]) == (422, "owner")


def test_a_runtime_token_may_not_create_for_an_agent_outside_its_scope(
    world: Any, runtime: Api
) -> None:
    other = f.make_agent(world.project, world.agent_owner, name="other")
    response = runtime.post("/sessions", body(world, agent=other.pk))
    assert response.status_code == 403
    response = runtime.post("/sessions", body(world, agent=world.other_agent.pk))
    assert (response.status_code, error(response)["field"]) == (422, "agent")


def test_a_personal_token_creates_sessions_for_its_own_user(world: Any, personal: Any) -> None:
    api = personal(world.owner)
    response = api.post("/sessions", {"kind": "chat", "agent": world.agent.pk})
    assert response.status_code == 201
    assert response.json()["owner"]["username"] == "owner"
    response = api.post(
        "/sessions", {"kind": "chat", "agent": world.agent.pk, "owner": "developer"}
    )
    assert (response.status_code, error(response)["field"]) == (422, "owner")
    response = personal(world.outsider).post("/sessions", {"kind": "chat", "agent": world.agent.pk})
    assert (response.status_code, error(response)["field"]) == (422, "owner")


def test_parent_and_initiative_must_be_in_the_workspace(world: Any, runtime: Api) -> None:
    foreign_parent = f.make_session(world.other_agent, world.other_admin)
    foreign_initiative = f.make_initiative(world.other_tenant)
    response = runtime.post("/sessions", body(world, parent=str(foreign_parent.pk)))
    assert (response.status_code, error(response)["field"]) == (422, "parent")
    response = runtime.post("/sessions", body(world, initiative=foreign_initiative.pk))
    assert (response.status_code, error(response)["field"]) == (422, "initiative")


@pytest.mark.parametrize(
    "raw",
    [
        "{not json",
        "",
        "[1, 2]",
        '"text"',
        "null",
        '{"kind": "chat", "temperature": NaN}',
        b"\xff\xfe",
    ],
)
def test_a_malformed_body_is_a_4xx_not_a_500(world: Any, runtime: Api, raw: str | bytes) -> None:
    response = runtime.post("/sessions", raw=raw)
    assert response.status_code in (400, 422), response.content
    assert error(response)["field"]

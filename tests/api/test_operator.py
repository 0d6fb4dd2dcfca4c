"""The operator API (sessions_app/api/operator.py): pin, unpin, clone, transfer, delete, with the
page's permissions, errors and audit lines, and Idempotency-Key replays."""

from __future__ import annotations

from typing import Any

import pytest

from sessions_app.models import (
    AgentSession,
    EventType,
    RuntimeCommand,
    SessionEvent,
    TokenKind,
)
from tests import factories as f
from tests.api.conftest import Api, error, make_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def running(world: Any) -> AgentSession:
    return f.make_session(world.agent, world.owner, "flow_run", status="running")


def actions(session: AgentSession) -> list[str]:
    return [
        e.payload["action"]
        for e in SessionEvent.objects.filter(session=session, type=EventType.ACTION)
    ]


def test_pin_and_unpin(world: Any, personal: Any, running: AgentSession) -> None:
    api = personal(world.owner)
    pinned = api.post(f"/sessions/{running.pk}/pin")
    assert pinned.status_code == 200
    assert pinned.json()["pinned"] is True
    unpinned = api.post(f"/sessions/{running.pk}/unpin")
    assert unpinned.json()["pinned"] is False
    assert actions(running) == ["pin", "unpin"]


def test_clone_answers_with_the_clone_waiting_for_a_runtime(
    world: Any, personal: Any, running: AgentSession
) -> None:
    response = personal(world.developer).post(f"/sessions/{running.pk}/clone")
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["cloned_from_id"] == str(running.pk)
    assert data["owner"]["username"] == "developer"
    assert data["waiting_reason"] == "waiting for a runtime"
    start = RuntimeCommand.objects.get(session_id=data["id"])
    assert (start.kind, start.payload["origin"]) == ("start", "clone")
    assert start.payload["cloned_from"] == str(running.pk)


def test_transfer_to_a_person(world: Any, personal: Any, running: AgentSession) -> None:
    response = personal(world.owner).post(
        f"/sessions/{running.pk}/transfer", {"to_user": "developer"}
    )
    assert response.status_code == 201, response.content
    successor = response.json()
    assert successor["owner"]["username"] == "developer"
    assert successor["transferred_from_id"] == str(running.pk)
    running.refresh_from_db()
    assert (running.status, running.stop_reason) == ("stopped", "transfer")
    assert "transfer" in actions(running)


def test_transfer_to_an_agent(world: Any, personal: Any, running: AgentSession) -> None:
    target = f.make_agent(world.project, world.agent_owner, name="reviewer")
    response = personal(world.owner).post(
        f"/sessions/{running.pk}/transfer", {"to_agent": target.pk}
    )
    assert response.status_code == 201, response.content
    successor = response.json()
    assert successor["agent"] == {"id": target.pk, "name": "reviewer"}
    assert successor["owner"]["username"] == "owner"
    start = RuntimeCommand.objects.get(session_id=successor["id"])
    assert start.agent_id == target.pk
    assert start.payload["transfer"]["from_session"] == str(running.pk)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "to_user"),
        ({"to_user": "developer", "to_agent": 1}, "to_user"),
        ({"to_user": "nobody"}, "to_user"),
        ({"to_agent": 999_999}, "to_agent"),
    ],
)
def test_transfer_input_errors_name_the_field(
    world: Any, personal: Any, running: AgentSession, body: dict[str, Any], field: str
) -> None:
    response = personal(world.owner).post(f"/sessions/{running.pk}/transfer", body)
    assert response.status_code == 422
    assert field in error(response)["message"]
    running.refresh_from_db()
    assert running.status == "running"


def test_transfer_to_the_same_agent_or_an_unusable_one_is_refused(
    world: Any, personal: Any, running: AgentSession
) -> None:
    api = personal(world.owner)
    same = api.post(f"/sessions/{running.pk}/transfer", {"to_agent": world.agent.pk})
    assert same.status_code == 422
    elsewhere = f.make_agent(world.other_project, world.admin, name="search-bot")
    refused = api.post(f"/sessions/{running.pk}/transfer", {"to_agent": elsewhere.pk})
    assert refused.status_code == 422
    assert "search-bot" in error(refused)["message"]
    other_tenant = api.post(f"/sessions/{running.pk}/transfer", {"to_agent": world.other_agent.pk})
    assert other_tenant.status_code == 422
    running.refresh_from_db()
    assert running.status == "running"


def test_transfer_to_an_agent_meets_its_cap(
    world: Any, personal: Any, running: AgentSession
) -> None:
    target = f.make_agent(
        world.project, world.agent_owner, name="reviewer", max_concurrent_sessions_per_user=1
    )
    f.make_session(target, world.owner, "chat")
    response = personal(world.owner).post(
        f"/sessions/{running.pk}/transfer", {"to_agent": target.pk}
    )
    assert response.status_code == 409
    assert error(response)["details"] == {"limit": 1, "current": 1}
    running.refresh_from_db()
    assert running.status == "running"


def test_a_finished_session_cannot_be_transferred(world: Any, personal: Any) -> None:
    done = f.make_session(world.agent, world.owner, "flow_run", status="completed")
    response = personal(world.owner).post(f"/sessions/{done.pk}/transfer", {"to_user": "admin"})
    assert response.status_code == 409


def test_delete(world: Any, personal: Any, running: AgentSession) -> None:
    response = personal(world.owner).client.delete(
        f"/api/v1/sessions/{running.pk}", content_type="application/json"
    )
    assert response.status_code == 200
    assert response.json() == {"id": str(running.pk), "deleted": True}
    assert not AgentSession.objects.filter(pk=running.pk).exists()


# --- permissions: the page's rules ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("verb", "body"),
    [
        ("pin", None),
        ("unpin", None),
        ("transfer", {"to_user": "developer"}),
    ],
)
def test_acting_needs_the_right_to_act(
    world: Any, personal: Any, running: AgentSession, verb: str, body: Any
) -> None:
    # A project developer sees the run but may not act on it: 403; an outsider: 404.
    assert personal(world.developer).post(f"/sessions/{running.pk}/{verb}", body).status_code == 403
    assert personal(world.outsider).post(f"/sessions/{running.pk}/{verb}", body).status_code == 404
    ok = personal(world.maintainer).post(f"/sessions/{running.pk}/{verb}", body)
    assert ok.status_code in (200, 201), ok.content


def test_delete_needs_the_right_to_act(world: Any, personal: Any, running: AgentSession) -> None:
    path = f"/api/v1/sessions/{running.pk}"
    developer = personal(world.developer).client.delete(path)
    outsider = personal(world.outsider).client.delete(path)
    assert (developer.status_code, outsider.status_code) == (403, 404)
    assert AgentSession.objects.filter(pk=running.pk).exists()
    assert personal(world.maintainer).client.delete(path).status_code == 200


def test_clone_needs_only_the_right_to_see(
    world: Any, personal: Any, running: AgentSession
) -> None:
    assert personal(world.outsider).post(f"/sessions/{running.pk}/clone").status_code == 404
    assert personal(world.developer).post(f"/sessions/{running.pk}/clone").status_code == 201


def test_runtime_tokens_may_not_use_operator_actions(
    world: Any, runtime: Api, running: AgentSession
) -> None:
    for verb in ("pin", "clone"):
        response = runtime.post(f"/sessions/{running.pk}/{verb}")
        assert response.status_code == 403
        assert "personal token" in error(response)["message"]
    assert runtime.client.delete(f"/api/v1/sessions/{running.pk}").status_code == 403
    assert AgentSession.objects.filter(pk=running.pk).exists()


def test_an_idempotency_key_replays_a_clone(world: Any, running: AgentSession) -> None:
    token = make_token(world, TokenKind.PERSONAL, world.owner)
    api = Api(token)
    headers = {"Idempotency-Key": "clone-1"}
    first = api.client.post(
        f"/api/v1/sessions/{running.pk}/clone", content_type="application/json", headers=headers
    )
    again = api.client.post(
        f"/api/v1/sessions/{running.pk}/clone", content_type="application/json", headers=headers
    )
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert AgentSession.objects.filter(cloned_from=running).count() == 1


def test_a_start_names_its_source_only_to_those_who_may_see_it(world: Any, personal: Any) -> None:
    # Chats are their owner's: the developer who takes one over may not see the original.
    chat = f.make_session(world.agent, world.owner, "chat")
    moved = personal(world.owner).post(f"/sessions/{chat.pk}/transfer", {"to_user": "developer"})
    successor = moved.json()["id"]
    seen_by_developer = personal(world.developer).get(f"/sessions/{successor}").json()
    assert seen_by_developer["transferred_from_id"] is None
    assert seen_by_developer["hidden_related"] == ["transferred_from"]

    def start_payload(user: Any) -> dict[str, Any]:
        items = personal(user).get(f"/sessions/{successor}/commands").json()["items"]
        [start] = [c for c in items if c["kind"] == "start"]
        return dict(start["payload"])

    assert start_payload(world.developer)["transfer"] is None
    assert start_payload(world.developer)["session"]["id"] == successor
    assert start_payload(world.admin)["transfer"]["from_session"] == str(chat.pk)  # control


def test_a_transfer_to_an_agent_follows_its_model_policy(world: Any, personal: Any) -> None:
    world.agent.allow_model_override = True
    world.agent.save()
    source = f.make_session(
        world.agent, world.owner, "flow_run", model="o3", requested_by=world.admin
    )
    strict = f.make_agent(world.project, world.agent_owner, name="strict", default_model="gpt-4o")
    lenient = f.make_agent(world.project, world.admin, name="lenient", allow_model_override=True)
    moved = personal(world.admin).post(f"/sessions/{source.pk}/transfer", {"to_agent": strict.pk})
    assert moved.json()["model"] == "gpt-4o"  # its policy allows no override: its default
    again = f.make_session(
        world.agent, world.owner, "flow_run", model="o3", requested_by=world.admin
    )
    kept = personal(world.admin).post(f"/sessions/{again.pk}/transfer", {"to_agent": lenient.pk})
    assert kept.json()["model"] == "o3"  # control: allowed there, and the admin may override

"""The New session dialog's form: defaults, the model gate, errors on the fields they name, the
cap, and the created session waiting for a runtime; the transfer dialog's agent choice."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from sessions_app.models import AgentSession, RuntimeCommand
from tests import factories as f

pytestmark = pytest.mark.django_db


def form_data(world: Any, **overrides: Any) -> dict[str, Any]:
    return {
        "kind": "background_task",
        "agent": world.agent.pk,
        "title": "",
        "temperature": "0.7",
        "max_tokens": "4000",
        "timeout_seconds": "300",
        "initiative": "",
        "repo": "acme/payments",
        "branch": "main",
        "input": "Upgrade the dependencies",
        **overrides,
    }


def test_the_form_shows_the_defaults_and_the_agents_default_model_read_only(
    client: Any, world: Any
) -> None:
    client.force_login(world.owner)
    html = client.get(reverse("session_new")).content.decode()
    for value in ('value="0.7"', 'value="4000"', 'value="300"', "Auto-generated when blank"):
        assert value in html
    assert 'name="model-shown" value="gpt-4o" readonly' in html
    assert 'name="model"' not in html
    assert "builder" in html


def test_the_agents_owner_may_pick_a_model_where_the_policy_allows(client: Any, world: Any) -> None:
    world.agent.allow_model_override = True
    world.agent.allowed_models = ["gpt-4o", "gpt-4o-mini"]
    world.agent.save()
    client.force_login(world.agent_owner)
    html = client.get(reverse("session_new")).content.decode()
    assert '<select name="model">' in html
    assert "gpt-4o-mini" in html
    client.force_login(world.owner)  # a developer may not: read-only
    assert 'name="model-shown"' in client.get(reverse("session_new")).content.decode()


def test_the_timeout_field_is_bounded_by_the_policy(client: Any, world: Any) -> None:
    world.agent.idle_timeout_seconds = 300
    world.agent.max_duration_seconds = 900
    world.agent.save()
    client.force_login(world.owner)
    assert 'max="900"' in client.get(reverse("session_new")).content.decode()


def test_submitting_creates_a_session_waiting_for_a_runtime(client: Any, world: Any) -> None:
    client.force_login(world.owner)
    response = client.post(reverse("session_new"), form_data(world), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    session = AgentSession.objects.get()
    assert response["HX-Redirect"] == reverse("session_detail", args=[session.pk])
    assert (session.owner, session.kind, session.origin, session.repo) == (
        world.owner,
        "background_task",
        "web",
        "acme/payments",
    )
    assert session.awaiting_runtime_since is not None
    start = RuntimeCommand.objects.get(session=session)
    assert start.payload["input"] == "Upgrade the dependencies"
    page = client.get(reverse("session_detail", args=[session.pk])).content.decode()
    assert "Waiting for a runtime" in page


@pytest.mark.parametrize(
    ("field", "value"),
    [("temperature", "2.5"), ("max_tokens", "50"), ("timeout_seconds", "5000")],
)
def test_a_range_error_shows_on_its_field(client: Any, world: Any, field: str, value: str) -> None:
    client.force_login(world.owner)
    response = client.post(
        reverse("session_new"), form_data(world, **{field: value}), HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 422
    assert f'data-field="{field}"' in response.content.decode()
    assert not AgentSession.objects.exists()


def test_the_cap_shows_the_limit_and_the_count(client: Any, world: Any) -> None:
    world.agent.max_concurrent_sessions_per_user = 1
    world.agent.save()
    f.make_session(world.agent, world.owner, "chat")
    client.force_login(world.owner)
    response = client.post(reverse("session_new"), form_data(world), HTTP_HX_REQUEST="true")
    assert response.status_code == 409
    html = response.content.decode()
    assert "at most 1 concurrent session" in html
    assert "already has 1 open" in html


def test_the_transfer_dialog_offers_other_agents_and_hands_over(client: Any, world: Any) -> None:
    reviewer = f.make_agent(world.project, world.agent_owner, name="reviewer")
    s = f.make_session(world.agent, world.owner, "chat")
    client.force_login(world.owner)
    page = client.get(reverse("session_detail", args=[s.pk])).content.decode()
    assert f'<option value="{reviewer.pk}">reviewer</option>' in page
    response = client.post(
        reverse("session_transfer", args=[s.pk]), {"to": "", "to_agent": reviewer.pk}
    )
    successor = AgentSession.objects.get(transferred_from=s)
    assert response.status_code == 302
    assert (successor.agent, successor.owner) == (reviewer, world.owner)
    s.refresh_from_db()
    assert (s.status, s.stop_reason) == ("ended", "transfer")


def test_picking_another_agent_reshapes_the_form_and_keeps_what_was_typed(
    client: Any, world: Any
) -> None:
    other = f.make_agent(
        world.project,
        world.owner,
        name="drafter",
        default_model="gpt-4o-mini",
        allow_model_override=True,
        allowed_models=["gpt-4o-mini", "o3"],
    )
    client.force_login(world.owner)
    html = client.get(
        reverse("session_new"), {"agent": other.pk, "title": "Half typed", "kind": "chat"}
    ).content.decode()
    assert 'value="Half typed"' in html
    assert '<option value="chat" selected>' in html
    assert '<select name="model">' in html  # the owner of `drafter` may override its model
    assert '<option value="o3"' in html
    assert "data-field" not in html  # re-shaping is not submitting: no errors yet

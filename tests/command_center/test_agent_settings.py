"""The agent settings page: the session policy form for tenant admins and the agent's owner."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from sessions_app import policies
from sessions_app.models import Agent, PolicyChange

pytestmark = pytest.mark.django_db


def url(agent: Agent) -> str:
    return reverse("agent_settings", args=[agent.pk])


def form_data(agent: Agent, **changes: Any) -> dict[str, Any]:
    data = {f: getattr(agent, f) for f in policies.POLICY_FIELDS} | changes
    if data["max_concurrent_sessions_per_user"] is None:
        data["max_concurrent_sessions_per_user"] = ""
    if data.pop("allow_model_override"):
        data["allow_model_override"] = "on"
    return data


@pytest.mark.parametrize("who", ["admin", "agent_owner"])
def test_tenant_admins_and_the_agent_owner_see_the_policy_form(client, world, who) -> None:
    client.force_login(getattr(world, who))
    resp = client.get(url(world.agent))
    assert resp.status_code == 200
    body = resp.content.decode()
    assert "builder" in body
    for field in policies.POLICY_FIELDS:
        assert f'name="{field}"' in body
    assert 'value="1800"' in body  # the current idle timeout


@pytest.mark.parametrize(("who", "status"), [("developer", 403), ("maintainer", 403)])
def test_project_members_who_may_not_edit_get_403(client, world, who, status) -> None:
    client.force_login(getattr(world, who))
    assert client.get(url(world.agent)).status_code == status
    assert client.post(url(world.agent), form_data(world.agent, retention_days=1)).status_code == (
        status
    )
    assert Agent.objects.get(pk=world.agent.pk).retention_days == 30


@pytest.mark.parametrize("who", ["outsider", "other_admin"])
def test_everyone_else_gets_404(client, world, who) -> None:
    client.force_login(getattr(world, who))
    assert client.get(url(world.agent)).status_code == 404
    assert client.post(url(world.agent), form_data(world.agent, retention_days=1)).status_code == (
        404
    )
    assert Agent.objects.get(pk=world.agent.pk).retention_days == 30


def test_an_unknown_agent_is_404(client, world) -> None:
    client.force_login(world.admin)
    assert client.get(reverse("agent_settings", args=[999_999])).status_code == 404


def test_anonymous_users_are_sent_to_log_in(client, world) -> None:
    resp = client.get(url(world.agent))
    assert resp.status_code == 302
    assert reverse("login") in resp["Location"]


def test_saving_changes_the_policy_and_records_who_changed_what(client, world) -> None:
    client.force_login(world.agent_owner)
    resp = client.post(
        url(world.agent),
        form_data(world.agent, idle_timeout_seconds=900, max_concurrent_sessions_per_user=3),
    )
    assert resp.status_code == 302
    assert resp["Location"] == url(world.agent)
    agent = Agent.objects.get(pk=world.agent.pk)
    assert (agent.idle_timeout_seconds, agent.max_concurrent_sessions_per_user) == (900, 3)
    change = PolicyChange.objects.get()
    assert change.changed_by == world.agent_owner
    assert change.changes == {
        "idle_timeout_seconds": [1800, 900],
        "max_concurrent_sessions_per_user": [None, 3],
    }
    page = client.get(url(world.agent)).content.decode()
    assert "Session policy of builder saved." in page
    assert "unlimited → 3" in page


def test_a_blank_cap_means_unlimited(client, world) -> None:
    Agent.objects.filter(pk=world.agent.pk).update(max_concurrent_sessions_per_user=2)
    world.agent.refresh_from_db()
    client.force_login(world.admin)
    client.post(url(world.agent), form_data(world.agent, max_concurrent_sessions_per_user=""))
    assert Agent.objects.get(pk=world.agent.pk).max_concurrent_sessions_per_user is None


def test_an_invalid_policy_is_shown_with_its_errors_and_not_saved(client, world) -> None:
    client.force_login(world.admin)
    resp = client.post(
        url(world.agent), form_data(world.agent, idle_timeout_seconds=0, retention_days=0)
    )
    assert resp.status_code == 200
    assert resp.context["form"].errors == {
        "idle_timeout_seconds": ["Must be positive."],
        "retention_days": ["Must be positive."],
    }
    body = resp.content.decode()
    assert "Must be positive." in body
    agent = Agent.objects.get(pk=world.agent.pk)
    assert (agent.idle_timeout_seconds, agent.retention_days) == (1800, 30)
    assert not PolicyChange.objects.exists()


def test_saving_without_changes_records_nothing(client, world) -> None:
    client.force_login(world.admin)
    assert client.post(url(world.agent), form_data(world.agent)).status_code == 302
    assert not PolicyChange.objects.exists()

"""Editing a session policy: one service validates, saves and audits; the Django admin uses it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.urls import reverse

from sessions_app import errors, policies, services
from sessions_app.forms import AgentPolicyForm
from sessions_app.models import Agent, PolicyChange

pytestmark = pytest.mark.django_db

VALID = {
    "idle_timeout_seconds": 1800,
    "max_duration_seconds": 14400,
    "max_concurrent_sessions_per_user": None,
    "auto_archive_days": 30,
    "retention_days": 30,
    "allow_model_override": False,
}


# --- the rules --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"idle_timeout_seconds": 0}, "idle_timeout_seconds", "Must be positive."),
        ({"max_duration_seconds": 0}, "max_duration_seconds", "Must be positive."),
        (
            {"max_duration_seconds": 1800},
            "max_duration_seconds",
            "Must be longer than the idle timeout (30 min).",
        ),
        ({"retention_days": 0}, "retention_days", "Must be positive."),
        ({"auto_archive_days": 0}, "auto_archive_days", "Must be positive."),
        (
            {"max_concurrent_sessions_per_user": 0},
            "max_concurrent_sessions_per_user",
            "Must be positive.",
        ),
        ({"retention_days": 3651}, "retention_days", "Must be at most 3650."),
        ({"idle_timeout_seconds": None}, "idle_timeout_seconds", "This field is required."),
    ],
)
def test_policy_rules(changes: dict[str, Any], field: str, message: str) -> None:
    assert policies.policy_errors({**VALID, **changes}) == {field: message}


def test_the_defaults_and_an_unlimited_cap_are_valid() -> None:
    assert policies.policy_errors(VALID) == {}


def test_the_form_puts_each_message_on_its_field(world) -> None:
    data = {**VALID, "max_concurrent_sessions_per_user": "", "idle_timeout_seconds": "600"}
    data["max_duration_seconds"] = "600"
    data["retention_days"] = "0"
    form = AgentPolicyForm(data, instance=world.agent)
    assert not form.is_valid()
    assert form.errors == {
        "max_duration_seconds": ["Must be longer than the idle timeout (10 min)."],
        "retention_days": ["Must be positive."],
    }


# --- the service ------------------------------------------------------------------------------


def test_a_change_is_saved_and_audited_with_old_and_new_values(world) -> None:
    services.agent_policy_update(
        agent=world.agent,
        user=world.admin,
        changes={**VALID, "idle_timeout_seconds": 900, "retention_days": 60},
    )
    agent = Agent.objects.get(pk=world.agent.pk)
    assert (agent.idle_timeout_seconds, agent.retention_days) == (900, 60)
    change = PolicyChange.objects.get()
    assert change.changes == {"idle_timeout_seconds": [1800, 900], "retention_days": [30, 60]}
    assert (change.agent, change.tenant, change.changed_by) == (
        world.agent,
        world.tenant,
        world.admin,
    )


def test_an_unchanged_policy_records_nothing(world) -> None:
    services.agent_policy_update(agent=world.agent, user=world.admin, changes=VALID)
    assert not PolicyChange.objects.exists()


def test_the_agents_owner_may_change_its_policy(world) -> None:
    services.agent_policy_update(
        agent=world.agent, user=world.agent_owner, changes={"max_concurrent_sessions_per_user": 2}
    )
    assert PolicyChange.objects.get().changed_by == world.agent_owner


@pytest.mark.parametrize("who", ["developer", "maintainer", "owner", "outsider", "other_admin"])
def test_nobody_else_may_change_a_policy(world, who) -> None:
    with pytest.raises(errors.NotAllowed):
        services.agent_policy_update(
            agent=world.agent, user=getattr(world, who), changes={"retention_days": 1}
        )
    assert Agent.objects.get(pk=world.agent.pk).retention_days == 30
    assert not PolicyChange.objects.exists()


def test_an_invalid_policy_is_refused_and_nothing_saved(world) -> None:
    with pytest.raises(errors.PolicyInvalid) as err:
        services.agent_policy_update(
            agent=world.agent,
            user=world.admin,
            changes={"idle_timeout_seconds": 600, "max_duration_seconds": 300},
        )
    assert err.value.errors == {
        "max_duration_seconds": "Must be longer than the idle timeout (10 min)."
    }
    assert Agent.objects.get(pk=world.agent.pk).idle_timeout_seconds == 1800
    assert not PolicyChange.objects.exists()


def test_only_policy_fields_can_be_changed(world) -> None:
    with pytest.raises(errors.InvalidInput, match="not policy fields: name"):
        services.agent_policy_update(agent=world.agent, user=world.admin, changes={"name": "x"})


# --- the admin ----------------------------------------------------------------------------------


@pytest.fixture
def admin_client(client, world):
    client.force_login(world.admin)
    return client


def admin_form(agent: Agent, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "tenant": agent.tenant_id,
        "project": agent.project_id,
        "owner": agent.owner_id,
        "name": agent.name,
        "default_model": agent.default_model,
        "allowed_models": json.dumps(agent.allowed_models),
        **{f: getattr(agent, f) for f in policies.POLICY_FIELDS},
        **changes,
    }
    if data["max_concurrent_sessions_per_user"] is None:
        data["max_concurrent_sessions_per_user"] = ""
    if data.pop("allow_model_override"):  # an unchecked checkbox is absent
        data["allow_model_override"] = "on"
    return data


def test_a_tenant_admin_changes_a_policy_in_the_admin_and_it_is_audited(
    admin_client, world
) -> None:
    url = reverse("admin:sessions_app_agent_change", args=[world.agent.pk])
    assert admin_client.get(url).status_code == 200
    resp = admin_client.post(
        url, admin_form(world.agent, idle_timeout_seconds=900, allow_model_override=True)
    )
    assert resp.status_code == 302, resp.content.decode()[:2000]
    agent = Agent.objects.get(pk=world.agent.pk)
    assert (agent.idle_timeout_seconds, agent.allow_model_override) == (900, True)
    change = PolicyChange.objects.get()
    assert change.changes == {
        "idle_timeout_seconds": [1800, 900],
        "allow_model_override": [False, True],
    }
    assert change.changed_by == world.admin


def test_renaming_an_agent_in_the_admin_is_not_a_policy_change(admin_client, world) -> None:
    url = reverse("admin:sessions_app_agent_change", args=[world.agent.pk])
    assert admin_client.post(url, admin_form(world.agent, name="renamed")).status_code == 302
    assert Agent.objects.get(pk=world.agent.pk).name == "renamed"
    assert not PolicyChange.objects.exists()


def test_the_admin_shows_policy_errors_on_their_fields(admin_client, world) -> None:
    url = reverse("admin:sessions_app_agent_change", args=[world.agent.pk])
    resp = admin_client.post(
        url, admin_form(world.agent, max_duration_seconds=1800, auto_archive_days=0)
    )
    assert resp.status_code == 200
    errors = resp.context["adminform"].form.errors
    assert errors["max_duration_seconds"] == ["Must be longer than the idle timeout (30 min)."]
    assert errors["auto_archive_days"] == ["Must be positive."]
    assert Agent.objects.get(pk=world.agent.pk).max_duration_seconds == 14400
    assert not PolicyChange.objects.exists()


def test_another_tenants_admin_cannot_change_the_policy(client, world) -> None:
    client.force_login(world.other_admin)
    url = reverse("admin:sessions_app_agent_change", args=[world.agent.pk])
    resp = client.post(url, admin_form(world.agent, idle_timeout_seconds=60))
    assert resp.status_code in (302, 404)
    assert Agent.objects.get(pk=world.agent.pk).idle_timeout_seconds == 1800
    assert not PolicyChange.objects.exists()


def test_the_policy_audit_trail_is_read_only_and_scoped(admin_client, world) -> None:
    services.agent_policy_update(agent=world.agent, user=world.admin, changes={"retention_days": 9})
    services.agent_policy_update(
        agent=world.other_agent, user=world.other_admin, changes={"retention_days": 7}
    )
    resp = admin_client.get(reverse("admin:sessions_app_policychange_changelist"))
    assert resp.status_code == 200
    assert [c.agent for c in resp.context["cl"].result_list] == [world.agent]
    assert "rival" not in resp.content.decode()
    assert admin_client.get(reverse("admin:sessions_app_policychange_add")).status_code == 403
    own = PolicyChange.objects.get(agent=world.agent)
    delete = admin_client.post(
        reverse("admin:sessions_app_policychange_delete", args=[own.pk]), {"post": "yes"}
    )
    assert delete.status_code == 403
    assert PolicyChange.objects.filter(pk=own.pk).exists()


def test_a_value_that_does_not_parse_is_not_judged_against_other_fields(world) -> None:
    data = {**VALID, "max_concurrent_sessions_per_user": "", "idle_timeout_seconds": "soon"}
    data["max_duration_seconds"] = "600"  # shorter than the saved idle timeout (30 min)
    form = AgentPolicyForm(data, instance=world.agent)
    assert not form.is_valid()
    assert form.errors == {"idle_timeout_seconds": ["Enter a whole number."]}

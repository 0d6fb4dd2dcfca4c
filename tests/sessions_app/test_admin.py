"""A tenant admin sees and edits only their tenant's rows, by list and by URL."""

from __future__ import annotations

import pytest
from django.urls import reverse

from sessions_app.models import Agent, ApiToken
from sessions_app.states import Kind
from tests import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, world):
    client.force_login(world.admin)
    return client


def test_changelists_show_only_the_admins_tenant(admin_client, world) -> None:
    f.make_session(world.agent, world.owner, Kind.FLOW_RUN, title="ours")
    f.make_session(world.other_agent, world.other_admin, Kind.FLOW_RUN, title="theirs")
    for model in ("agent", "project", "agentsession", "tenant", "initiative", "apitoken"):
        resp = admin_client.get(reverse(f"admin:sessions_app_{model}_changelist"))
        assert resp.status_code == 200, model
    body = admin_client.get(reverse("admin:sessions_app_agentsession_changelist")).content.decode()
    assert "ours" in body
    assert "theirs" not in body
    agents = admin_client.get(reverse("admin:sessions_app_agent_changelist")).content.decode()
    assert "builder" in agents
    assert "rival" not in agents


@pytest.mark.parametrize("view", ["change", "delete", "history"])
def test_another_tenants_row_is_unreachable_by_url(admin_client, world, view) -> None:
    url = reverse(f"admin:sessions_app_agent_{view}", args=[world.other_agent.pk])
    resp = admin_client.get(url)
    # Django admin answers a row outside the queryset with a redirect to the index + message.
    assert resp.status_code in (302, 404)
    assert Agent.objects.filter(pk=world.other_agent.pk).exists()
    post = admin_client.post(
        reverse("admin:sessions_app_agent_change", args=[world.other_agent.pk]),
        {"name": "hijacked"},
    )
    assert post.status_code in (302, 404)
    world.other_agent.refresh_from_db()
    assert world.other_agent.name == "rival"


def test_foreign_key_choices_are_scoped(admin_client, world) -> None:
    body = admin_client.get(reverse("admin:sessions_app_agent_add")).content.decode()
    assert "Acme" in body
    assert "Globex" not in body
    assert "other_admin" not in body


def test_adding_a_row_in_another_tenant_is_refused(admin_client, world) -> None:
    resp = admin_client.post(
        reverse("admin:sessions_app_initiative_add"),
        {"tenant": world.other_tenant.pk, "name": "sneaky"},
    )
    assert resp.status_code == 200  # the form re-renders with a choice error
    assert "Select a valid choice" in resp.content.decode()


def test_sessions_are_read_only_with_their_transcript(admin_client, world) -> None:
    s = f.make_session(world.agent, world.owner, Kind.FLOW_RUN, status="running")
    resp = admin_client.get(reverse("admin:sessions_app_agentsession_change", args=[s.pk]))
    body = resp.content.decode()
    assert resp.status_code == 200
    assert "status_change" in body
    assert 'name="_save"' not in body
    assert admin_client.get(reverse("admin:sessions_app_agentsession_add")).status_code == 403


def test_a_new_token_is_shown_once_and_stored_hashed(admin_client, world) -> None:
    resp = admin_client.post(
        reverse("admin:sessions_app_apitoken_add"),
        {
            "tenant": world.tenant.pk,
            "kind": "runtime",
            "name": "ci",
            "user": world.admin.pk,
            "agents": [world.agent.pk],
        },
        follow=True,
    )
    body = resp.content.decode()
    token = ApiToken.objects.get(name="ci")
    shown = body.split("will not be shown again: ")[1].split("<")[0].strip()
    assert shown.startswith("scc_")
    from sessions_app.services import hash_token

    assert token.token_hash == hash_token(shown)
    again = admin_client.get(
        reverse("admin:sessions_app_apitoken_change", args=[token.pk])
    ).content.decode()
    assert shown not in again


def test_a_superuser_sees_every_tenant(client, world) -> None:
    root = f.make_user("root", is_staff=True, is_superuser=True)
    client.force_login(root)
    body = client.get(reverse("admin:sessions_app_agent_changelist")).content.decode()
    assert "builder" in body
    assert "rival" in body


def test_a_plain_member_cannot_enter_the_admin(client, world) -> None:
    client.force_login(world.developer)
    resp = client.get(reverse("admin:sessions_app_agent_changelist"))
    assert resp.status_code == 302

"""Tenant membership as the root, the access services and their audit, tokens as self-service,
the admin's side doors, clone and transfer under the create policy, and the filter facets."""

from __future__ import annotations

import pytest
from django.urls import reverse

from sessions_app import selectors, services
from sessions_app.errors import ConcurrencyLimit, InvalidInput, NotAllowed, NotFound
from sessions_app.models import (
    AccessChange,
    AgentSession,
    ApiToken,
    Membership,
    Role,
    RuntimeCommand,
    TenantMembership,
    TokenKind,
)
from sessions_app.states import Kind
from tests import factories as f
from tests.api.conftest import Api, make_token

pytestmark = pytest.mark.django_db


# --- tenant membership is the root ------------------------------------------------------------


def test_removing_a_workspace_membership_takes_roles_and_personal_tokens(world) -> None:
    raw = make_token(world, TokenKind.PERSONAL, world.developer)
    runtime_raw = make_token(world, TokenKind.RUNTIME, world.developer, [world.agent])
    flow = f.make_session(world.agent, world.owner, Kind.FLOW_RUN)
    assert Api(raw).get(f"/sessions/{flow.pk}").status_code == 200

    membership = TenantMembership.objects.get(tenant=world.tenant, user=world.developer)
    services.membership_remove(membership=membership, by=world.admin)

    assert not Membership.objects.filter(user=world.developer).exists()
    assert Api(raw).get(f"/sessions/{flow.pk}").status_code == 401
    # A runtime token belongs to the agents it serves, not to the person who holds it.
    assert Api(runtime_raw).get(f"/sessions/{flow.pk}").status_code == 200
    audit = AccessChange.objects.get(action=AccessChange.Action.TENANT_MEMBER_REMOVED)
    assert audit.subject == world.developer
    assert audit.changed_by == world.admin
    assert audit.details["project_roles"] == {"Payments": Role.DEVELOPER}
    assert len(audit.details["tokens_revoked"]) == 1


def test_a_project_role_left_behind_grants_nothing(client, world) -> None:
    flow = f.make_session(world.agent, world.owner, Kind.FLOW_RUN)
    # Around the services: the workspace membership goes, the project role stays.
    TenantMembership.objects.filter(user=world.developer).delete()
    client.force_login(world.developer)
    assert client.get(reverse("session_detail", args=[flow.pk])).status_code == 404
    assert not selectors.sessions_visible_to(world.developer).exists()


def test_owning_a_session_or_an_agent_grants_nothing_after_leaving(client, world) -> None:
    mine = f.make_session(world.agent, world.owner, Kind.CHAT)
    TenantMembership.objects.filter(user__in=[world.owner, world.agent_owner]).delete()
    for user in (world.owner, world.agent_owner):
        client.force_login(user)
        assert client.get(reverse("session_detail", args=[mine.pk])).status_code == 404


def test_fresh_access_sees_a_change_the_cached_one_does_not(world) -> None:
    flow = f.make_session(world.agent, world.owner, Kind.FLOW_RUN)
    assert selectors.can_view(world.developer, flow)
    Membership.objects.filter(user=world.developer).delete()
    assert selectors.can_view(world.developer, flow)  # cached for the request
    selectors.access_for(world.developer, fresh=True)
    assert not selectors.can_view(world.developer, flow)


def test_role_changes_are_audited_and_need_a_workspace_member(world) -> None:
    services.project_member_set(
        project=world.project, user=world.developer, role=Role.GUEST, by=world.admin
    )
    change = AccessChange.objects.get(action=AccessChange.Action.PROJECT_ROLE_SET)
    assert change.details["role"] == [Role.DEVELOPER, Role.GUEST]
    stranger = f.make_user("stranger")
    with pytest.raises(InvalidInput):
        services.project_member_set(
            project=world.project, user=stranger, role=Role.DEVELOPER, by=world.admin
        )


# --- tokens -------------------------------------------------------------------------------------


def test_nobody_mints_a_personal_token_for_someone_else(world) -> None:
    with pytest.raises(NotAllowed):
        services.token_create(
            tenant=world.tenant,
            kind=TokenKind.PERSONAL,
            name="as dev",
            user=world.developer,
            created_by=world.admin,
        )
    with pytest.raises(InvalidInput):
        services.token_create(
            tenant=world.other_tenant,
            kind=TokenKind.PERSONAL,
            name="elsewhere",
            user=world.developer,
            created_by=world.developer,
        )


def test_a_person_mints_and_revokes_their_own_token_in_the_app(client, world) -> None:
    client.force_login(world.developer)
    resp = client.post(reverse("tokens"), {"name": "laptop", "tenant": world.tenant.pk})
    assert resp.status_code == 201
    raw = resp.content.decode().split('id="raw-token">')[1].split("<")[0]
    token = ApiToken.objects.get(token_hash=services.hash_token(raw))
    assert (token.user, token.created_by, token.kind) == (
        world.developer,
        world.developer,
        TokenKind.PERSONAL,
    )
    assert raw not in client.get(reverse("tokens")).content.decode()  # shown once
    assert Api(raw).get("/token").status_code == 200

    assert (
        client.post(reverse("tokens"), {"name": "x", "tenant": world.other_tenant.pk}).status_code
        == 404
    )
    client.force_login(world.maintainer)
    assert client.post(reverse("token_revoke", args=[token.pk])).status_code == 404
    client.force_login(world.developer)
    assert client.post(reverse("token_revoke", args=[token.pk])).status_code == 302
    assert Api(raw).get("/token").status_code == 401
    assert AccessChange.objects.filter(action=AccessChange.Action.TOKEN_REVOKED).count() == 1


def test_the_admin_mints_personal_tokens_only_for_the_admin_themselves(client, world) -> None:
    client.force_login(world.admin)
    resp = client.post(
        reverse("admin:sessions_app_apitoken_add"),
        {
            "tenant": world.tenant.pk,
            "kind": "personal",
            "name": "sneaky",
            "user": world.developer.pk,  # ignored: there is no such field
        },
    )
    assert resp.status_code == 302
    token = ApiToken.objects.get(name="sneaky")
    assert token.user == world.admin
    assert token.created_by == world.admin


def test_a_tenant_admin_revokes_a_members_token_but_sees_no_secret(client, world) -> None:
    raw = make_token(world, TokenKind.PERSONAL, world.developer)
    token = ApiToken.objects.get(token_hash=services.hash_token(raw))
    client.force_login(world.admin)
    listing = client.get(reverse("admin:sessions_app_apitoken_changelist")).content.decode()
    assert token.prefix in listing
    change = client.get(reverse("admin:sessions_app_apitoken_change", args=[token.pk]))
    assert raw not in change.content.decode()
    assert token.token_hash not in change.content.decode()
    client.post(
        reverse("admin:sessions_app_apitoken_changelist"),
        {"action": "revoke", "_selected_action": [token.pk]},
    )
    token.refresh_from_db()
    assert token.revoked_at is not None
    with pytest.raises(NotFound):
        services.token_revoke(token=token, by=world.other_admin)


def test_deleting_a_membership_in_the_admin_goes_through_the_service(client, world) -> None:
    raw = make_token(world, TokenKind.PERSONAL, world.developer)
    membership = TenantMembership.objects.get(tenant=world.tenant, user=world.developer)
    client.force_login(world.admin)
    resp = client.post(
        reverse("admin:sessions_app_tenantmembership_delete", args=[membership.pk]),
        {"post": "yes"},
    )
    assert resp.status_code == 302
    assert not Membership.objects.filter(user=world.developer).exists()
    assert Api(raw).get("/token").status_code == 401
    assert AccessChange.objects.filter(
        action=AccessChange.Action.TENANT_MEMBER_REMOVED, changed_by=world.admin
    ).exists()


def test_changing_an_agents_owner_in_the_admin_is_audited(client, world, broadcasts) -> None:
    agent = world.agent
    client.force_login(world.admin)
    form = {
        "tenant": world.tenant.pk,
        "project": world.project.pk,
        "owner": world.maintainer.pk,
        "name": agent.name,
        "default_model": agent.default_model,
        "allowed_models": "[]",
        "idle_timeout_seconds": agent.idle_timeout_seconds,
        "max_duration_seconds": agent.max_duration_seconds,
        "auto_archive_days": agent.auto_archive_days,
        "retention_days": agent.retention_days,
    }
    resp = client.post(reverse("admin:sessions_app_agent_change", args=[agent.pk]), form)
    assert resp.status_code == 302, resp.content.decode()[:2000]
    change = AccessChange.objects.get(action=AccessChange.Action.AGENT_OWNER_CHANGED)
    assert change.details["owner"] == [world.agent_owner.pk, world.maintainer.pk]


def test_sessions_and_commands_cannot_be_deleted_in_the_admin(client, world) -> None:
    s = f.make_session(world.agent, world.owner, Kind.CHAT)
    services.message_send(session=s, user=world.owner, text="hi")
    client.force_login(world.admin)
    for model, pk in (
        ("agentsession", s.pk),
        ("runtimecommand", RuntimeCommand.objects.get().pk),
    ):
        url = reverse(f"admin:sessions_app_{model}_delete", args=[pk])
        assert client.post(url, {"post": "yes"}).status_code == 403
    assert (
        client.post(
            reverse("admin:sessions_app_agent_delete", args=[world.agent.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    assert AgentSession.objects.filter(pk=s.pk).exists()


# --- clone and transfer under the create policy; permission before state -------------------------


def test_clone_applies_the_model_policy_of_the_cloner(world) -> None:
    world.agent.allow_model_override = True
    world.agent.save()
    theirs = f.make_session(world.agent, world.agent_owner, Kind.FLOW_RUN, model="gpt-4.1")
    with pytest.raises(InvalidInput) as exc:
        services.session_clone(session=theirs, user=world.developer)
    assert exc.value.field == "model"
    assert services.session_clone(session=theirs, user=world.admin).model == "gpt-4.1"


def test_clone_and_transfer_apply_the_concurrency_cap(world) -> None:
    world.agent.max_concurrent_sessions_per_user = 1
    world.agent.save()
    theirs = f.make_session(world.agent, world.owner, Kind.FLOW_RUN)
    f.make_session(world.agent, world.developer, Kind.FLOW_RUN)
    with pytest.raises(ConcurrencyLimit):
        services.session_clone(session=theirs, user=world.developer)
    with pytest.raises(ConcurrencyLimit):
        services.session_transfer(session=theirs, user=world.admin, to_user=world.developer)
    theirs.refresh_from_db()
    assert theirs.live  # nothing was stopped


def test_a_viewer_who_may_not_act_gets_403_before_any_state_rule(world) -> None:
    done = f.make_session(world.agent, world.owner, Kind.FLOW_RUN, status="completed")
    for verb in (services.session_end, services.session_pause, services.session_cancel):
        with pytest.raises(NotAllowed):
            verb(session=done, user=world.developer)
    with pytest.raises(NotAllowed):
        services.session_transfer(session=done, user=world.developer, to_user=world.maintainer)


# --- filter facets ------------------------------------------------------------------------------


def test_a_guest_sees_no_names_in_the_filter_dropdowns(client, world) -> None:
    guest = f.make_user("guest", tenant=world.tenant)
    f.add_member(world.project, guest, Role.GUEST)
    f.make_session(
        world.agent,
        world.owner,
        Kind.FLOW_RUN,
        initiative=f.make_initiative(world.tenant, "Q3 push"),
    )
    facets = selectors.filter_facets(guest)
    assert all(not list(choices) for choices in facets.values())
    client.force_login(guest)
    body = client.get(reverse("sessions")).content.decode()
    for name in ("owner", "builder", "Payments", "Q3 push", "agent_owner"):
        assert f">{name}<" not in body
    developer_facets = selectors.filter_facets(world.developer)
    assert [u.username for u in developer_facets["people"]] == ["owner"]


# --- lineage: transferred to -------------------------------------------------------------------


def test_a_transferred_chats_successor_is_named_only_to_those_who_may_see_it(client, world) -> None:
    chat = f.make_session(world.agent, world.owner, Kind.CHAT, title="Handover chat")
    successor = services.session_transfer(session=chat, user=world.owner, to_user=world.developer)
    successor_title = "Handover chat"
    # The owner may no longer see the successor: a private chat of the developer now.
    client.force_login(world.owner)
    body = client.get(reverse("session_detail", args=[chat.pk])).content.decode()
    assert "Transferred to" in body
    assert selectors.HIDDEN_TITLE in body
    assert str(successor.pk) not in body
    download = client.get(reverse("session_export", args=[chat.pk]))
    export = b"".join(download.streaming_content).decode()
    assert str(successor.pk) not in export
    commands = Api(make_token(world, TokenKind.PERSONAL, world.owner)).get(
        f"/sessions/{chat.pk}/commands"
    )
    assert str(successor.pk) not in commands.content.decode()
    # The agent owner may see both, and gets the link.
    client.force_login(world.agent_owner)
    body = client.get(reverse("session_detail", args=[chat.pk])).content.decode()
    assert str(successor.pk) in body
    assert successor_title in body

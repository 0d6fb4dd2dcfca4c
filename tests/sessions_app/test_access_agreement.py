"""DESIGN.md section 7 is written down four times: as SQL (`visibility_q`), as a rule on plain
values (`may_view` / `may_act`), as websocket groups (a push reaches a socket only through a group
both sides name) and as the admin's tenant scoping. Over a generated world holding every persona
and every kind of session, these tests prove the encodings agree cell by cell (persona x
session), and check them against the table itself."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.test import Client, RequestFactory
from django.urls import reverse

from command_center.broadcast import (
    deleted_messages,
    groups_for_access,
    groups_for_session,
    summary_for,
)
from command_center.compose import facts as pushed_facts
from sessions_app import errors, selectors, services
from sessions_app.models import AgentSession, Membership, Role, TenantMembership, TokenKind
from sessions_app.services.common import require_act
from sessions_app.states import Kind
from tests import factories as f

pytestmark = pytest.mark.django_db

User = get_user_model()

FLOW, TASK, CHAT = Kind.FLOW_RUN, Kind.BACKGROUND_TASK, Kind.CHAT

# Personas that, by the table, see nothing at all in this world.
# `departed` was removed from the workspace: tenant membership is the root of all access.
SEES_NOTHING = {"anonymous", "nobody", "guest", "outsider", "departed"}
# Staff users who hold an admin flag on at least one tenant: the Django admin is theirs.
STAFF_TENANT_ADMINS = {"tenant_admin", "other_admin", "two_tenants"}


@dataclass
class AccessWorld:
    users: dict[str, int | None]  # persona -> user pk; None is the anonymous visitor
    sessions: dict[str, AgentSession]  # label -> session

    def user(self, persona: str) -> Any:
        """A freshly loaded user: `access_for` caches on the instance, and every check must
        read the memberships as they are now."""
        pk = self.users[persona]
        return AnonymousUser() if pk is None else User.objects.get(pk=pk)

    def sql_visible(self, persona: str) -> set[str]:
        pks = set(selectors.sessions_visible_to(self.user(persona)).values_list("pk", flat=True))
        labels = {label for label, s in self.sessions.items() if s.pk in pks}
        assert len(labels) == len(pks), "the world holds sessions it did not generate"
        return labels

    def cells(self) -> Iterator[tuple[str, str, AgentSession]]:
        for persona in self.users:
            for label, session in self.sessions.items():
                yield persona, label, session


def build_world() -> AccessWorld:
    acme, globex = f.make_tenant("Acme"), f.make_tenant("Globex")
    payments, search = f.make_project(acme, "Payments"), f.make_project(acme, "Search")
    rival = f.make_project(globex, "Rival")

    def member(
        name: str, tenant: Any = acme, *, roles: tuple[tuple[Any, int], ...] = (), **kw: Any
    ) -> Any:
        user = f.make_user(name, tenant=tenant, **kw)
        for project, role in roles:
            f.add_member(project, user, role)
        return user

    people = {
        "session_owner": member("session_owner", roles=((payments, Role.REPORTER),)),
        "guest": member("guest", roles=((payments, Role.GUEST),)),
        "reporter": member("reporter", roles=((payments, Role.REPORTER), (search, Role.REPORTER))),
        "developer": member("developer", roles=((payments, Role.DEVELOPER),)),
        "maintainer": member(
            "maintainer", roles=((payments, Role.MAINTAINER), (search, Role.REPORTER))
        ),
        "project_owner": member("project_owner", roles=((search, Role.OWNER),)),
        "agent_owner": member("agent_owner"),
        "tenant_admin": member("tenant_admin", admin=True, is_staff=True),
        "admin_not_staff": member("admin_not_staff", admin=True),
        "other_admin": member("other_admin", globex, admin=True, is_staff=True),
        # Admin of the other tenant, plain developer in this one.
        "two_tenants": member(
            "two_tenants", globex, admin=True, is_staff=True, roles=((payments, Role.DEVELOPER),)
        ),
        "staff_member": member("staff_member", is_staff=True, roles=((search, Role.DEVELOPER),)),
        "outsider": member("outsider"),
        "nobody": f.make_user("nobody"),
        "superuser": f.make_user("superuser", is_staff=True, is_superuser=True),
        # Removed from the workspace below, after creating sessions; the project role stays.
        "departed": member("departed", roles=((payments, Role.DEVELOPER),)),
    }
    builder = f.make_agent(payments, people["agent_owner"], name="builder")
    reviewer = f.make_agent(payments, people["maintainer"], name="reviewer")
    # The developer owns an agent in a project where they hold no role.
    indexer = f.make_agent(search, people["developer"], name="indexer")
    rival_agent = f.make_agent(rival, people["other_admin"], name="rival")

    specs: list[tuple[str, Any, str, str, str | None]] = [
        # label, agent, owner persona, kind, parent label
        ("owner_flow", builder, "session_owner", FLOW, None),
        ("owner_task", builder, "session_owner", TASK, None),
        ("owner_chat", builder, "session_owner", CHAT, None),
        ("owner_task_from_own_chat", builder, "session_owner", TASK, "owner_chat"),
        ("developer_chat", builder, "developer", CHAT, None),
        ("reporter_task_from_developer_chat", builder, "reporter", TASK, "developer_chat"),
        ("reporter_flow", builder, "reporter", FLOW, None),
        ("agent_owner_chat", builder, "agent_owner", CHAT, None),
        ("admin_flow", builder, "tenant_admin", FLOW, None),
        ("two_tenants_flow", builder, "two_tenants", FLOW, None),
        ("departed_flow", builder, "departed", FLOW, None),
        ("departed_chat", builder, "departed", CHAT, None),
        ("maintainer_task", reviewer, "maintainer", TASK, None),
        ("maintainer_chat", reviewer, "maintainer", CHAT, None),
        ("admin_chat", reviewer, "tenant_admin", CHAT, None),
        ("project_owner_flow", indexer, "project_owner", FLOW, None),
        ("project_owner_chat", indexer, "project_owner", CHAT, None),
        ("staff_task", indexer, "staff_member", TASK, None),
        ("reporter_chat_in_search", indexer, "reporter", CHAT, None),
        ("indexer_owner_chat", indexer, "developer", CHAT, None),
        ("other_flow", rival_agent, "other_admin", FLOW, None),
        ("other_chat", rival_agent, "other_admin", CHAT, None),
        ("two_tenants_task", rival_agent, "two_tenants", TASK, None),
        ("two_tenants_chat", rival_agent, "two_tenants", CHAT, None),
    ]
    sessions: dict[str, AgentSession] = {}
    for label, agent, owner, kind, parent in specs:
        sessions[label] = f.make_session(
            agent,
            people[owner],
            kind,
            # Brackets keep one label's title from being a substring of another's.
            title=f"[{label}]",
            parent=sessions[parent] if parent else None,
        )
    TenantMembership.objects.filter(user=people["departed"], tenant=acme).delete()
    users: dict[str, int | None] = {name: user.pk for name, user in people.items()}
    users["anonymous"] = None
    return AccessWorld(users=users, sessions=sessions)


@pytest.fixture
def access_world(db: Any) -> AccessWorld:
    return build_world()


def design_table(world: AccessWorld) -> Callable[[str, AgentSession, bool], bool]:
    """DESIGN.md section 7 read straight from the membership rows, without `Access`:
    design(persona, session, act) -> may they see (act=False) or act on (act=True) it."""
    tenant_rows = {(m.user_id, m.tenant_id): m.is_admin for m in TenantMembership.objects.all()}
    roles = {(m.user_id, m.project_id): m.role for m in Membership.objects.all()}
    superusers = set(User.objects.filter(is_superuser=True).values_list("pk", flat=True))

    def design(persona: str, session: AgentSession, act: bool) -> bool:
        pk = world.users[persona]
        if pk is None:
            return False
        if pk in superusers:
            return True
        if (pk, session.tenant_id) not in tenant_rows:
            return False  # tenant membership is the root of all access
        if tenant_rows[pk, session.tenant_id]:
            return True
        if pk in (session.owner_id, session.agent.owner_id):
            return True
        if session.kind == Kind.CHAT:
            return False
        role = roles.get((pk, session.project_id), 0)
        return role >= (Role.MAINTAINER if act else Role.DEVELOPER)

    return design


def _report(mismatches: list[str], checked: int) -> str:
    return f"{len(mismatches)} of {checked} cells disagree:\n" + "\n".join(mismatches)


def test_the_world_has_visible_and_hidden_sessions_for_every_persona(
    access_world: AccessWorld,
) -> None:
    """The positive control: an empty or all-visible world would let every agreement pass."""
    world = access_world
    everything = set(world.sessions)
    for persona in world.users:
        visible = world.sql_visible(persona)
        if persona == "superuser":
            assert visible == everything
        elif persona in SEES_NOTHING:
            assert visible == set(), persona
        else:
            assert visible, persona
            assert visible != everything, (persona, visible)
    # Some visible sessions may not be acted on, and some are actable without being owned.
    developer = world.user("developer")
    assert not selectors.can_act(developer, world.sessions["owner_flow"])
    assert selectors.can_view(developer, world.sessions["owner_flow"])
    assert selectors.can_act(world.user("maintainer"), world.sessions["owner_flow"])
    # A project developer does not see another member's chat; the agent owner does.
    assert "owner_chat" not in world.sql_visible("developer")
    assert "owner_chat" in world.sql_visible("agent_owner")


def test_sql_and_python_visibility_agree_for_every_persona_and_session(
    access_world: AccessWorld,
) -> None:
    world = access_world
    mismatches: list[str] = []
    checked = 0
    for persona in world.users:
        sql = world.sql_visible(persona)
        # Fresh users: `access_for` caches on the instance.
        access = selectors.access_for(world.user(persona))
        page_viewer = world.user(persona)
        for label, session in world.sessions.items():
            by_sql = label in sql
            by_can_view = selectors.can_view(page_viewer, session)
            by_may_view = selectors.may_view(access, **selectors.session_facts(session))
            checked += 1
            if not by_sql == by_can_view == by_may_view:
                mismatches.append(
                    f"{persona} x {label}: sql={by_sql} can_view={by_can_view} "
                    f"may_view={by_may_view}"
                )
    assert checked == len(world.users) * len(world.sessions) > 300
    assert not mismatches, _report(mismatches, checked)


def test_the_act_rule_agrees_between_pages_pushes_and_services(access_world: AccessWorld) -> None:
    """`can_act` (pages), `may_act` on a pushed summary (socket panel buttons) and the service
    gate (`require_act`: 404 if not visible, 403 if visible but not actable) give one answer,
    and nobody may act on a session SQL hides from them."""
    world = access_world
    summaries = {label: summary_for(s) for label, s in world.sessions.items()}
    mismatches: list[str] = []
    checked = actable = 0
    for persona in world.users:
        sql = world.sql_visible(persona)
        access = selectors.access_for(world.user(persona))
        page_viewer, service_caller = world.user(persona), world.user(persona)
        for label, session in world.sessions.items():
            by_can_act = selectors.can_act(page_viewer, session)
            by_push = selectors.may_act(access, **pushed_facts(summaries[label]))
            try:
                require_act(service_caller, session)
                gate = "ok"
            except errors.NotFound:
                gate = "404"
            except errors.NotAllowed:
                gate = "403"
            expected_gate = "ok" if by_can_act else ("403" if label in sql else "404")
            checked += 1
            actable += by_can_act
            if by_can_act != by_push or gate != expected_gate or (by_can_act and label not in sql):
                mismatches.append(
                    f"{persona} x {label}: can_act={by_can_act} pushed may_act={by_push} "
                    f"require_act={gate} sql_visible={label in sql}"
                )
    assert 0 < actable < checked
    assert not mismatches, _report(mismatches, checked)


def test_a_push_reaches_exactly_the_sockets_whose_viewer_sql_shows_the_session(
    access_world: AccessWorld,
) -> None:
    """A socket gets a change iff it joined one of the change's groups and the consumer's
    `may_view` passes; that must equal SQL visibility, and no visible session may be unreachable
    by groups alone. Checked for a change and for a deletion (whose facts are read separately,
    before the row goes)."""
    world = access_world
    messages = {
        label: {
            "change": summary_for(s),
            "delete": deleted_messages(
                services.deleted_facts(AgentSession.objects.filter(pk=s.pk))
            )[0],
        }
        for label, s in world.sessions.items()
    }
    mismatches: list[str] = []
    checked = delivered_count = 0
    for persona in world.users:
        sql = world.sql_visible(persona)
        user = world.user(persona)
        access = selectors.access_for(user)
        # The consumer closes an anonymous socket before joining anything.
        joined = set(groups_for_access(access)) if user.is_authenticated else set()
        for label in world.sessions:
            for what, message in messages[label].items():
                reach = joined & set(groups_for_session(message))
                delivered = bool(reach) and selectors.may_view(access, **pushed_facts(message))
                checked += 1
                delivered_count += delivered
                if delivered != (label in sql) or (label in sql and not reach):
                    mismatches.append(
                        f"{persona} x {label} ({what}): sql_visible={label in sql} "
                        f"shared groups={sorted(reach)} delivered={delivered}"
                    )
    assert 0 < delivered_count < checked
    assert not mismatches, _report(mismatches, checked)


def test_the_design_table_agrees_with_the_code_for_current_members(
    access_world: AccessWorld,
) -> None:
    world = access_world
    design = design_table(world)
    mismatches: list[str] = []
    checked = 0
    visible = {persona: world.sql_visible(persona) for persona in world.users}
    viewers = {persona: world.user(persona) for persona in world.users}
    for persona, label, session in world.cells():
        if persona == "departed":
            continue  # see test_a_user_removed_from_the_workspace_loses_access
        sql = label in visible[persona]
        act = selectors.can_act(viewers[persona], session)
        checked += 1
        if (sql, act) != (design(persona, session, False), design(persona, session, True)):
            mismatches.append(
                f"{persona} x {label}: sql_visible={sql} can_act={act} "
                f"table says view={design(persona, session, False)} "
                f"act={design(persona, session, True)}"
            )
    assert checked > 300
    assert not mismatches, _report(mismatches, checked)


def test_a_user_removed_from_the_workspace_loses_access(access_world: AccessWorld) -> None:
    world = access_world
    design = design_table(world)
    departed = world.user("departed")
    assert not TenantMembership.objects.filter(user=departed).exists()
    assert Membership.objects.filter(user=departed, role=Role.DEVELOPER).exists()
    leaks = [
        f"departed x {label}: sql_visible=True, the table says hidden"
        for label, s in world.sessions.items()
        if label in world.sql_visible("departed") and not design("departed", s, False)
    ]
    assert not leaks, "\n".join(leaks)


def _admin_request(world: AccessWorld, persona: str) -> Any:
    request = RequestFactory().get(reverse("admin:sessions_app_agentsession_changelist"))
    request.user = world.user(persona)
    return request


def test_the_session_admin_shows_a_tenant_admin_exactly_their_tenants_sessions(
    access_world: AccessWorld,
) -> None:
    world = access_world
    model_admin = admin.site._registry[AgentSession]
    everything = set(world.sessions)
    mismatches: list[str] = []
    checked = 0
    for persona in world.users:
        request = _admin_request(world, persona)
        admin_pks = set(model_admin.get_queryset(request).values_list("pk", flat=True))
        in_admin = {label for label, s in world.sessions.items() if s.pk in admin_pks}
        module = model_admin.has_module_permission(_admin_request(world, persona))
        tenants = selectors.access_for(world.user(persona)).admin_tenant_ids
        of_tenants = {label for label, s in world.sessions.items() if s.tenant_id in tenants}
        sql_in_tenants = {label for label in world.sql_visible(persona) if label in of_tenants}
        checked += len(world.sessions)
        if persona == "superuser":
            ok = module and in_admin == everything == world.sql_visible(persona)
        elif persona in STAFF_TENANT_ADMINS:
            ok = (
                module
                and bool(in_admin)
                and in_admin != everything
                and in_admin == of_tenants == sql_in_tenants
            )
        else:
            # Not staff, or staff without an admin flag: no admin at all.
            ok = not module and (bool(tenants) or not in_admin)
        if not ok:
            mismatches.append(
                f"{persona}: module permission={module} admin queryset={sorted(in_admin)} "
                f"sessions of admin tenants={sorted(of_tenants)} "
                f"sql visible there={sorted(sql_in_tenants)}"
            )
        # Row permissions (change page, delete) agree with the queryset for every session.
        row_request = _admin_request(world, persona)
        for label, session in world.sessions.items():
            row = model_admin.has_view_permission(row_request, session)
            if row != (module and label in in_admin):
                mismatches.append(
                    f"{persona} x {label}: has_view_permission={row} module={module} "
                    f"in queryset={label in in_admin}"
                )
    assert not mismatches, _report(mismatches, checked)


def _hidden_parents(world: AccessWorld) -> list[tuple[str, str, str]]:
    """(persona, child, parent) where the persona sees the child but not its parent."""
    cases = []
    # Current members only: `departed` has its own test.
    for persona in set(world.users) - {"departed"}:
        visible = world.sql_visible(persona)
        for label, session in world.sessions.items():
            if session.parent_id is None or label not in visible:
                continue
            parent = next(p for p, s in world.sessions.items() if s.pk == session.parent_id)
            if parent not in visible:
                cases.append((persona, label, parent))
    return cases


def test_a_child_task_links_to_a_parent_its_viewer_may_see(
    access_world: AccessWorld, client: Client
) -> None:
    world = access_world
    child, parent = world.sessions["owner_task_from_own_chat"], world.sessions["owner_chat"]
    for persona in ("session_owner", "agent_owner", "tenant_admin"):
        client.force_login(world.user(persona))
        body = client.get(reverse("session_detail", args=[child.pk])).content.decode()
        assert parent.title in body, persona
        assert str(parent.pk) in body, persona


def test_a_parent_the_viewer_may_not_see_is_shown_without_title_or_id(
    access_world: AccessWorld, client: Client
) -> None:
    world = access_world
    cases = _hidden_parents(world)
    assert ("developer", "owner_task_from_own_chat", "owner_chat") in cases
    assert ("reporter", "reporter_task_from_developer_chat", "developer_chat") in cases
    leaks = []
    for persona, child, parent in cases:
        client.force_login(world.user(persona))
        resp = client.get(reverse("session_detail", args=[world.sessions[child].pk]))
        assert resp.status_code == 200, (persona, child)
        body = resp.content.decode()
        hidden = world.sessions[parent]
        if hidden.title in body or str(hidden.pk) in body or "cannot see" not in body:
            leaks.append(f"{persona} opening {child} is shown its parent {parent}")
    assert not leaks, "\n".join(leaks)


def test_the_api_does_not_name_a_parent_the_caller_may_not_see(access_world: AccessWorld) -> None:
    world = access_world
    leaks = []
    for persona, child, parent in _hidden_parents(world):
        user = world.user(persona)
        tenant = world.sessions[child].tenant
        _, raw = services.token_create(
            tenant=tenant, kind=TokenKind.PERSONAL, name=f"{persona} {child}", user=user
        )
        api = Client(headers={"Authorization": f"Bearer {raw}"})
        resp = api.get(f"/api/v1/sessions/{world.sessions[child].pk}")
        assert resp.status_code == 200, (persona, child, resp.content)
        if resp.json()["parent_id"] == str(world.sessions[parent].pk):
            leaks.append(f"{persona} reading {child} gets the id of {parent}")
    assert not leaks, "\n".join(leaks)

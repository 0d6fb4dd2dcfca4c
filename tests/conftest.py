from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.db import connection

from sessions_app import hooks
from sessions_app.models import Role
from sessions_app.states import Kind
from tests import factories as f


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if connection.vendor == "postgresql":
        return
    skip = pytest.mark.skip(
        reason="needs PostgreSQL row locks and real concurrency; runs in the PostgreSQL pass "
        "(DATABASE_URL=postgres://...)"
    )
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    # Runs before fixture teardown: a publish still reading the database would otherwise
    # deadlock with the TRUNCATE that ends a transactional test.
    from command_center.broadcast import broadcaster

    broadcaster.wait_idle()


def pytest_unconfigure(config: pytest.Config) -> None:
    # The test database is gone by the time the interpreter exits: nothing left to publish.
    import atexit

    from command_center.broadcast import broadcaster

    atexit.unregister(broadcaster.flush_at_exit)


@dataclass
class World:
    """Two tenants and the personas of DESIGN.md section 7."""

    tenant: Any
    other_tenant: Any
    project: Any
    other_project: Any
    agent: Any
    owner: Any  # owns sessions; developer on `project`
    developer: Any
    maintainer: Any
    agent_owner: Any
    admin: Any
    outsider: Any
    other_admin: Any
    other_agent: Any


@pytest.fixture
def world(db: Any) -> World:
    tenant = f.make_tenant("Acme")
    other = f.make_tenant("Globex")
    project = f.make_project(tenant, "Payments")
    other_project = f.make_project(tenant, "Search")
    agent_owner = f.make_user("agent_owner", tenant=tenant)
    owner = f.make_user("owner", tenant=tenant)
    developer = f.make_user("developer", tenant=tenant)
    maintainer = f.make_user("maintainer", tenant=tenant)
    admin = f.make_user("admin", tenant=tenant, admin=True, is_staff=True)
    outsider = f.make_user("outsider", tenant=tenant)
    other_admin = f.make_user("other_admin", tenant=other, admin=True, is_staff=True)
    f.add_member(project, owner, Role.DEVELOPER)
    f.add_member(project, developer, Role.DEVELOPER)
    f.add_member(project, maintainer, Role.MAINTAINER)
    f.add_member(other_project, outsider, Role.DEVELOPER)
    agent = f.make_agent(project, agent_owner, name="builder")
    other_tenant_project = f.make_project(other)
    other_agent = f.make_agent(other_tenant_project, other_admin, name="rival")
    return World(
        tenant,
        other,
        project,
        other_project,
        agent,
        owner,
        developer,
        maintainer,
        agent_owner,
        admin,
        outsider,
        other_admin,
        other_agent,
    )


@pytest.fixture
def broadcasts() -> Any:
    """Records the after-commit session_changed notifications."""
    seen: list[Any] = []
    hooks.register("session_changed", seen.append)
    yield seen
    hooks.unregister("session_changed", seen.append)


KINDS = [Kind.FLOW_RUN, Kind.BACKGROUND_TASK, Kind.CHAT]


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    # PBKDF2 makes each create_user take ~100 ms; the personas do not need real hashing.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

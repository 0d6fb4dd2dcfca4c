from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from sessions_app import services
from sessions_app.models import ApiToken, TokenKind
from tests import factories as f
from tests.api.conftest import Api, error, events, make_token

pytestmark = pytest.mark.django_db


def test_it_answers_401_without_a_token(world: Any) -> None:
    response = Api(None).get("/sessions")
    assert response.status_code == 401
    assert error(response)["code"] == "unauthorized"
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header", ["Bearer nope", "Basic dXNlcjpwdw==", "Bearer ", "Bearer " + "x" * 5000]
)
def test_it_answers_401_for_a_bad_authorization_header(world: Any, header: str) -> None:
    response = Api(None).client.get("/api/v1/sessions", headers={"Authorization": header})
    assert response.status_code == 401


def test_it_answers_401_for_a_revoked_token(world: Any, runtime_token: str, runtime: Api) -> None:
    assert runtime.get("/sessions").status_code == 200
    services.token_revoke(token=ApiToken.objects.get())
    assert runtime.get("/sessions").status_code == 401


def test_it_answers_401_for_a_personal_token_of_a_deactivated_user(world: Any) -> None:
    api = Api(make_token(world, TokenKind.PERSONAL, world.owner))
    world.owner.is_active = False
    world.owner.save()
    assert api.get("/sessions").status_code == 401


def test_it_records_use_at_most_once_a_minute(world: Any, runtime: Api) -> None:
    token = ApiToken.objects.get()
    assert token.last_used_at is None
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        runtime.get("/sessions")
    token.refresh_from_db()
    assert token.last_used_at == start
    with time_machine.travel(start + timedelta(seconds=30), tick=False):
        runtime.get("/sessions")
    token.refresh_from_db()
    assert token.last_used_at == start
    with time_machine.travel(start + timedelta(seconds=61), tick=False):
        runtime.get("/sessions")
    token.refresh_from_db()
    assert token.last_used_at == start + timedelta(seconds=61)


def test_token_describes_itself(world: Any, runtime: Api, personal: Any) -> None:
    body = runtime.get("/token").json()
    assert body["kind"] == "runtime"
    assert body["agents"] == [world.agent.pk]
    assert body["tenant"] == world.tenant.slug
    body = personal(world.owner).get("/token").json()
    assert body == {
        **body,
        "kind": "personal",
        "agents": [],
        "user": {"id": world.owner.pk, "username": "owner"},
    }


def test_a_runtime_token_sees_only_its_agents_sessions(world: Any, runtime: Api) -> None:
    ours = f.make_session(world.agent, world.owner)
    other_agent = f.make_agent(world.project, world.agent_owner, name="other")
    theirs = f.make_session(other_agent, world.owner)
    ids = [s["id"] for s in runtime.get("/sessions").json()["items"]]
    assert ids == [str(ours.pk)]
    assert runtime.get(f"/sessions/{theirs.pk}").status_code == 404


def test_it_returns_404_for_other_tenant(world: Any, personal: Any) -> None:
    session = f.make_session(world.other_agent, world.other_admin)
    for user in (world.admin, world.owner):
        assert personal(user).get(f"/sessions/{session.pk}").status_code == 404
        assert personal(user).get(f"/sessions/{session.pk}/events").status_code == 404
    other_runtime = Api(
        make_token(world, TokenKind.RUNTIME, world.other_admin, [world.other_agent])
    )
    ours = f.make_session(world.agent, world.owner)
    assert other_runtime.get(f"/sessions/{ours.pk}").status_code == 404
    batch = events(("thinking", {"text": "hello"}))
    assert other_runtime.post(f"/sessions/{ours.pk}/events", batch).status_code == 404


def test_a_personal_token_sees_only_its_workspace_even_for_a_superuser(world: Any) -> None:
    root = f.make_user("root", tenant=world.tenant, is_superuser=True)
    f.make_session(world.other_agent, world.other_admin)
    ours = f.make_session(world.agent, world.owner)
    api = Api(make_token(world, TokenKind.PERSONAL, root))
    assert [s["id"] for s in api.get("/sessions").json()["items"]] == [str(ours.pk)]


def test_create_token_prints_a_token_that_works(world: Any, capsys: Any) -> None:
    from django.core.management import call_command

    call_command(
        "create_token", "--tenant", world.tenant.slug, "--kind", "runtime", "--agent", "builder"
    )
    out, err = capsys.readouterr()
    raw = out.strip()
    assert raw.startswith("scc_")
    assert "\n" not in raw
    assert "shown once" in err
    assert Api(raw).get("/token").json()["agents"] == [world.agent.pk]

    call_command(
        "create_token", "--tenant", world.tenant.slug, "--kind", "personal", "--user", "admin"
    )
    raw = capsys.readouterr().out.strip()
    assert Api(raw).get("/token").json()["user"]["username"] == "admin"
    # The raw value is never stored.
    assert not ApiToken.objects.filter(token_hash=raw).exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tenant", "nope"], "No workspace"),
        (["--kind", "runtime"], "needs --agent"),
        (["--kind", "runtime", "--agent", "missing"], "No agent"),
        (["--kind", "personal"], "needs --user"),
        (["--kind", "personal", "--user", "other_admin"], "not a member"),
        (["--kind", "personal", "--user", "admin", "--agent", "builder"], "take no --agent"),
    ],
)
def test_create_token_refuses_bad_arguments(world: Any, args: list[str], message: str) -> None:
    from django.core.management import call_command
    from django.core.management.base import CommandError

    if "--tenant" not in args:
        args = ["--tenant", world.tenant.slug, *args]
    with pytest.raises(CommandError, match=message):
        call_command("create_token", *args)

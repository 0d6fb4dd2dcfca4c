"""Every string the product stores from outside passes redaction (issue 16, point 1).

A credential is planted in every input a runtime or a person can send, through every write
path (API create, events at any depth and in keys, actors, messages, checkpoint notes,
acknowledgement results, clone and transfer), and then every text and JSON column of every
model of the app is read back: the raw value must be nowhere. A new column written from outside
without passing the scanner makes this test fail; the positive control proves the walk would
see a value that slipped through."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import models

from sessions_app import services
from sessions_app.models import AgentSession, RuntimeCommand, SessionEvent
from tests.api.conftest import Api, events
from tests.conftest import World

pytestmark = pytest.mark.django_db

# Shapes the rules have long known, so this test is about the door, not about rule coverage.
GITHUB = "ghp_" + "R8dq2Lw7Xk9PzT4mVb6NcYe1Hs3Jf5Ga0Uo2"
AWS_ID = "AKIA" + "Q7Z3T5N2M8K4W6P1"
SLACK = "xoxb-" + "123456789012-1234567890123-" + "AbCdEfGhIjKlMnOpQrStUvWx"
SECRETS = (GITHUB, AWS_ID, SLACK)


def text_columns() -> list[tuple[type[models.Model], str]]:
    """Every text or JSON column of every model in the app: where a secret could rest."""
    columns = []
    for model in apps.get_app_config("sessions_app").get_models():
        for field in model._meta.concrete_fields:
            textual = isinstance(field, models.CharField | models.TextField | models.JSONField)
            if textual and not getattr(field, "generated", False):
                columns.append((model, field.name))
    return columns


def leaks() -> list[str]:
    found = []
    for model, name in text_columns():
        for pk, value in model._default_manager.values_list("pk", name):
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            for secret in SECRETS:
                if secret in text:
                    found.append(f"{model.__name__}.{name} (pk={pk}) holds {secret[:8]}…")
    return found


def test_the_walk_covers_the_columns_that_take_outside_text() -> None:
    walked = {(m.__name__, f) for m, f in text_columns()}
    for expected in [
        ("AgentSession", "title"),
        ("AgentSession", "repo"),
        ("AgentSession", "error_message"),
        ("SessionEvent", "payload"),
        ("SessionEvent", "actor"),
        ("RuntimeCommand", "payload"),
        ("RuntimeCommand", "result"),
    ]:
        assert expected in walked


def test_the_walk_finds_a_secret_written_around_the_door(world: World) -> None:
    session = services.session_create(
        agent=world.agent, owner=world.owner, kind="flow_run", actor="t"
    )
    assert leaks() == []
    # Written straight through the ORM, bypassing the services: the walk must see it.
    AgentSession.objects.filter(pk=session.pk).update(branch=f"fix/{GITHUB}")
    assert leaks() == [f"AgentSession.branch (pk={session.pk}) holds {GITHUB[:8]}…"]


def test_no_write_path_stores_a_planted_secret(world: World, runtime: Api, personal: Any) -> None:
    created = runtime.post(
        "/sessions",
        {
            "agent": world.agent.pk,
            "owner": world.owner.get_username(),
            "kind": "flow_run",
            "title": f"deploy with {AWS_ID}",
            "metadata": {
                "repo": f"https://x-access-token:{GITHUB}@github.com/acme/p.git",
                "branch": f"feature/{SLACK}",
                "sandbox": f"sbx {AWS_ID}",
                "profile": f"GITHUB_TOKEN={GITHUB}",
                "runtime": f"rt {SLACK}",
            },
        },
    )
    assert created.status_code == 201, created.content
    sid = created.json()["id"]
    session = AgentSession.objects.get(pk=sid)
    batch = events(
        ("step", {"state": "started", "index": 1, "total": 2, "name": f"GITHUB_TOKEN={GITHUB}"}),
        ("tool_call", {"call_id": "c1", "name": "sh", "arguments": {GITHUB: {"k": SLACK}}}),
        ("tool_result", {"call_id": "c1", "output": f"key {AWS_ID}"}),
        ("message", {"role": "agent", "text": f"token is {GITHUB}"}),
        ("error", {"code": "x", "message": f"auth failed for {SLACK}"}),
        ("checkpoint", {"state": "awaiting", "name": f"ship {AWS_ID}?"}),
    )
    batch["events"][3]["actor"] = f"bot {GITHUB}"
    posted = runtime.post(f"/sessions/{sid}/events", batch)
    assert posted.status_code == 200, posted.content
    bob = personal(world.admin)
    assert bob.post(f"/sessions/{sid}/messages", {"text": f"use {SLACK}"}).status_code == 201
    approved = bob.post(f"/sessions/{sid}/checkpoint/approve", {"note": f"ok {GITHUB}"})
    assert approved.status_code == 200, approved.content
    command = RuntimeCommand.objects.filter(session_id=sid).order_by("created_at").first()
    assert command is not None
    acked = runtime.post(
        f"/runtime/commands/{command.pk}/ack", {"status": "applied", "result": f"done {AWS_ID}"}
    )
    assert acked.status_code == 200, acked.content
    session.refresh_from_db()
    services.session_clone(session=session, user=world.admin)
    services.session_transfer(session=session, user=world.admin, to_user=world.developer)

    assert leaks() == []
    # Positive control: the secrets really went in, and were recorded by name.
    session.refresh_from_db()
    assert session.repo.startswith("https://x-access-token:[REDACTED:")
    assert sum(session.redaction_counts.values()) >= 10
    tool_call = SessionEvent.objects.get(session=session, event_id="e2")
    assert tool_call.redactions
    assert GITHUB not in json.dumps(tool_call.payload)


def test_rescanning_removes_what_older_rules_let_through(world: World) -> None:
    session = services.session_create(
        agent=world.agent, owner=world.owner, kind="flow_run", actor="t"
    )
    services.events_record(
        session=session,
        events=[services.EventIn(event_id="a", type="thinking", payload={"text": "harmless"})],
    )
    # What an older rule set stored: raw values in an event, the session and a command.
    SessionEvent.objects.filter(session=session, event_id="a").update(
        payload={"text": f"found {GITHUB}"}
    )
    AgentSession.objects.filter(pk=session.pk).update(repo=f"https://u:{GITHUB}@h/r.git")
    services.command_queue(session=session, kind="message", payload={"text": "x"})
    RuntimeCommand.objects.filter(session=session).update(result=f"ok {AWS_ID}")
    assert len(leaks()) == 3

    call_command("redact_stored", "--dry-run", stdout=(dry := _Out()))
    report = json.loads(dry.text)
    assert report["dry_run"] is True
    assert (report["events"], report["sessions"], report["commands"]) == (1, 1, 1)
    assert sum(report["rules"].values()) == 3
    assert GITHUB not in dry.text
    assert len(leaks()) == 3  # a dry run changes nothing

    call_command("redact_stored", stdout=(real := _Out()))
    assert json.loads(real.text)["touched_sessions"] == 1
    assert leaks() == []
    audit = SessionEvent.objects.filter(session=session, payload__action="redaction").get()
    assert audit.actor == "redact_stored"
    assert sum(item["count"] for item in audit.payload["rules"]) == 3
    session.refresh_from_db()
    assert sum(session.redaction_counts.values()) == 3

    call_command("redact_stored", stdout=(again := _Out()))
    assert json.loads(again.text)["touched_sessions"] == 0  # idempotent
    assert SessionEvent.objects.filter(session=session, payload__action="redaction").count() == 1


def test_rescan_refuses_a_bad_since() -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--since must be an ISO date"):
        call_command("redact_stored", "--since", "yesterday", stdout=_Out())


class _Out:
    def __init__(self) -> None:
        self.text = ""

    def write(self, s: str) -> None:
        self.text += s

    def flush(self) -> None:
        pass

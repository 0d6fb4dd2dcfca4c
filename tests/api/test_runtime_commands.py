"""The command channel by long-poll and HTTP acknowledgement."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from sessions_app import services
from sessions_app.models import RuntimeCommand, TokenKind
from tests import factories as f
from tests.api.conftest import Api, error, make_token

pytestmark = pytest.mark.django_db


def poll(api: Api, wait: int = 0) -> list[dict[str, Any]]:
    response = api.get("/runtime/commands", {"wait": wait})
    assert response.status_code == 200, response.content
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_a_poll_hands_out_queued_commands_oldest_first_and_marks_them_delivered(
    world: Any, runtime: Api
) -> None:
    a = f.make_session(world.agent, world.owner, status="running")
    b = f.make_session(world.agent, world.owner, "chat")
    services.session_pause(session=a, user=world.owner)
    services.message_send(session=b, user=world.owner, text="hi")
    items = poll(runtime)
    assert [(c["kind"], c["session_id"]) for c in items] == [
        ("pause", str(a.pk)),
        ("message", str(b.pk)),
    ]
    assert items[1]["payload"] == {"text": "hi"}
    assert {c.status for c in RuntimeCommand.objects.all()} == {"delivered"}


def test_a_delivered_command_is_handed_out_again_only_after_a_minute_without_ack(
    world: Any, runtime: Api
) -> None:
    session = f.make_session(world.agent, world.owner, status="running")
    services.session_pause(session=session, user=world.owner)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        assert len(poll(runtime)) == 1
        assert poll(runtime) == []
    with time_machine.travel(start + timedelta(seconds=61), tick=False):
        [again] = poll(runtime)
        runtime.post(f"/runtime/commands/{again['id']}/ack", {"status": "applied"})
    with time_machine.travel(start + timedelta(seconds=200), tick=False):
        assert poll(runtime) == []


def test_a_runtime_gets_only_its_agents_commands(world: Any, runtime: Api) -> None:
    other_agent = f.make_agent(world.project, world.agent_owner, name="other")
    theirs = f.make_session(other_agent, world.owner, status="running")
    services.session_pause(session=theirs, user=world.owner)
    assert poll(runtime) == []


def test_an_empty_poll_waits_then_answers_empty(world: Any, runtime: Api) -> None:
    started = time.monotonic()
    assert poll(runtime, wait=1) == []
    assert time.monotonic() - started >= 1


@pytest.mark.django_db(transaction=True)
def test_a_waiting_poll_answers_as_soon_as_a_command_is_queued(world: Any, runtime: Api) -> None:
    session = f.make_session(world.agent, world.owner, status="running")

    def operator() -> None:
        try:
            time.sleep(0.5)
            services.session_pause(session=session, user=world.owner)
        finally:
            connection.close()

    thread = threading.Thread(target=operator)
    started = time.monotonic()
    thread.start()
    items = poll(runtime, wait=20)
    thread.join()
    assert [c["kind"] for c in items] == ["pause"]
    assert time.monotonic() - started < 10


def test_a_runtime_acknowledges_over_http(world: Any, runtime: Api) -> None:
    session = f.make_session(world.agent, world.owner, status="running")
    services.session_pause(session=session, user=world.owner)
    command = RuntimeCommand.objects.get()
    response = runtime.post(
        f"/runtime/commands/{command.pk}/ack", {"status": "applied", "result": "paused"}
    )
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["result"]) == ("applied", "paused")
    # The first final acknowledgement stands.
    response = runtime.post(
        f"/runtime/commands/{command.pk}/ack", {"status": "rejected", "result": "late"}
    )
    assert (response.json()["status"], response.json()["result"]) == ("applied", "paused")
    command.refresh_from_db()
    assert command.acked_at is not None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "done"}, "status"),
        ({}, "status"),
        ({"status": "applied", "result": "x" * 2001}, "result"),
    ],
)
def test_a_bad_ack_is_a_422(world: Any, runtime: Api, body: dict[str, Any], field: str) -> None:
    session = f.make_session(world.agent, world.owner, status="running")
    services.session_pause(session=session, user=world.owner)
    command = RuntimeCommand.objects.get()
    response = runtime.post(f"/runtime/commands/{command.pk}/ack", body)
    assert response.status_code == 422
    assert error(response)["field"] == field


def test_acknowledging_another_agents_command_is_a_404(world: Any, runtime: Api) -> None:
    other_agent = f.make_agent(world.project, world.agent_owner, name="other")
    theirs = f.make_session(other_agent, world.owner, status="running")
    services.session_pause(session=theirs, user=world.owner)
    command = RuntimeCommand.objects.get()
    assert (
        runtime.post(f"/runtime/commands/{command.pk}/ack", {"status": "applied"}).status_code
        == 404
    )
    command.refresh_from_db()
    assert command.status == "queued"


def test_personal_tokens_do_not_receive_commands(world: Any) -> None:
    api = Api(make_token(world, TokenKind.PERSONAL, world.admin))
    assert api.get("/runtime/commands").status_code == 403


def test_the_wait_is_bounded(world: Any, runtime: Api) -> None:
    response = runtime.get("/runtime/commands", {"wait": 31})
    assert response.status_code == 422
    assert error(response)["field"] == "wait"

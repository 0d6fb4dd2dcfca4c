"""Idempotency-Key on creates and actions: one session however often a create is retried."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any

import httpx
import pytest
from django.db import connection, transaction
from django.utils import timezone

from sessions_app import services
from sessions_app.models import AgentSession, IdempotencyKey, RuntimeCommand
from tests import factories as f
from tests.api.conftest import URL, Api, error


def create(api: Api, body: dict[str, Any], key: str | None = "k-1") -> Any:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return api.client.post(
        URL + "/sessions", data=json.dumps(body), content_type="application/json", headers=headers
    )


def act(api: Api, session: AgentSession, verb: str, key: str) -> Any:
    return api.client.post(
        f"{URL}/sessions/{session.pk}/{verb}",
        data="{}",
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY=key,
    )


@pytest.fixture
def body(world: Any) -> dict[str, Any]:
    return {"kind": "flow_run", "agent": world.agent.pk, "owner": "owner", "title": "Once"}


def test_the_same_create_three_times_makes_one_session(runtime: Api, body: dict[str, Any]) -> None:
    answers = [create(runtime, body) for _ in range(3)]
    assert [a.status_code for a in answers] == [201, 201, 201]
    assert len({a.json()["id"] for a in answers}) == 1
    assert AgentSession.objects.filter(title="Once").count() == 1
    assert answers[1]["Idempotent-Replayed"] == "true"


def test_the_same_key_with_another_body_is_a_422(runtime: Api, body: dict[str, Any]) -> None:
    create(runtime, body)
    response = create(runtime, {**body, "title": "Twice"})
    assert response.status_code == 422
    assert error(response)["code"] == "idempotency_key_reused"
    assert not AgentSession.objects.filter(title="Twice").exists()


def test_without_a_key_every_create_makes_a_session(runtime: Api, body: dict[str, Any]) -> None:
    create(runtime, body, key=None)
    create(runtime, body, key=None)
    assert AgentSession.objects.filter(title="Once").count() == 2


def test_keys_belong_to_their_token(world: Any, runtime: Api, body: dict[str, Any]) -> None:
    from tests.api.conftest import make_token

    other = Api(make_token(world, "runtime", world.agent_owner, [world.agent]))
    create(runtime, body)
    create(other, body)
    assert AgentSession.objects.filter(title="Once").count() == 2


@pytest.mark.parametrize("key", ["", "x" * 256, "ключ"])
def test_a_malformed_key_is_a_400(runtime: Api, body: dict[str, Any], key: str) -> None:
    response = create(runtime, body, key=key)
    assert response.status_code == 400
    assert error(response)["code"] == "invalid_idempotency_key"
    assert not AgentSession.objects.exists()


def test_a_first_answer_that_was_an_error_is_replayed(
    world: Any, runtime: Api, body: dict[str, Any]
) -> None:
    world.agent.max_concurrent_sessions_per_user = 1
    world.agent.save()
    f.make_session(world.agent, world.owner)
    first = create(runtime, body)
    assert first.status_code == 409
    again = create(runtime, body)
    assert (again.status_code, again.json()) == (409, first.json())


def test_a_duplicate_while_the_first_is_in_flight_is_a_409(
    runtime: Api, body: dict[str, Any]
) -> None:
    first = create(runtime, body)
    assert first.status_code == 201
    # As if the first request were still running: its claim has no answer yet.
    IdempotencyKey.objects.update(response_status=None, response_body=None)
    response = create(runtime, body)
    assert response.status_code == 409
    assert error(response)["code"] == "idempotency_in_flight"


def test_a_claim_left_by_a_dead_process_is_taken_over(runtime: Api, body: dict[str, Any]) -> None:
    create(runtime, body)
    IdempotencyKey.objects.update(
        response_status=None, response_body=None, created_at=timezone.now() - timedelta(minutes=5)
    )
    AgentSession.objects.all().delete()  # its work was rolled back with it
    assert create(runtime, body).status_code == 201
    assert AgentSession.objects.filter(title="Once").count() == 1


def test_action_retries_queue_one_command(world: Any, personal: Any) -> None:
    session = f.make_session(world.agent, world.owner, status="running")
    api = personal(world.owner)
    answers = [act(api, session, "pause", "pause-1") for _ in range(3)]
    assert {a.status_code for a in answers} == {200}
    assert RuntimeCommand.objects.filter(session=session, kind="pause").count() == 1


def test_a_message_retried_is_sent_once(world: Any, personal: Any) -> None:
    chat = f.make_session(world.agent, world.owner, "chat")
    api = personal(world.owner)
    for _ in range(2):
        response = api.client.post(
            f"{URL}/sessions/{chat.pk}/messages",
            data=json.dumps({"text": "hello"}),
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY="m-1",
        )
        assert response.status_code == 201
    assert RuntimeCommand.objects.filter(session=chat, kind="message").count() == 1


def test_a_5xx_frees_the_key(runtime: Api, body: dict[str, Any]) -> None:
    from unittest import mock

    from django.db import OperationalError

    with mock.patch(
        "sessions_app.services.session_create_for_token", side_effect=OperationalError("down")
    ):
        assert create(runtime, body).status_code == 503
    assert create(runtime, body).status_code == 201
    assert AgentSession.objects.filter(title="Once").count() == 1


def test_keys_are_kept_a_day_then_purged(world: Any, runtime: Api, body: dict[str, Any]) -> None:
    create(runtime, body)
    assert services.idempotency_purge(now=timezone.now() + timedelta(hours=23)) == 0
    assert services.idempotency_purge(now=timezone.now() + timedelta(hours=25)) == 1
    assert not IdempotencyKey.objects.exists()


def test_the_runtime_client_reuses_its_key_on_retry(
    world: Any, runtime_token: str, in_process: Any
) -> None:
    # The first answer is lost after the server made the session; the retry must replay it.
    from django.core.wsgi import get_wsgi_application

    app = httpx.WSGITransport(app=get_wsgi_application())
    state = {"lost": False}

    class LosesFirstAnswer(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            response = app.handle_request(request)
            if request.method == "POST" and not state["lost"]:
                state["lost"] = True
                response.read()
                raise httpx.ReadError("connection reset", request=request)
            return response

    client = in_process(runtime_token, transport=LosesFirstAnswer())
    made = client.create_session(kind="flow_run", agent=world.agent.pk, owner="owner", title="R")
    assert state["lost"]
    assert AgentSession.objects.filter(title="R").count() == 1
    assert made["title"] == "R"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_same_create_three_times_concurrently_makes_one_session(
    world: Any, runtime: Api, body: dict[str, Any]
) -> None:
    barrier = threading.Barrier(3)
    answers: list[int] = []
    failures: list[BaseException] = []

    def deliver() -> None:
        try:
            barrier.wait()
            answers.append(create(runtime, body, key="concurrent").status_code)
        except BaseException as exc:  # reported below
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not failures
    assert set(answers) <= {201, 409}
    assert 201 in answers
    assert AgentSession.objects.filter(title="Once").count() == 1


def _orphan_claim(seconds_old: float) -> None:
    """The first create's claim as a request that is still running or died left it."""
    IdempotencyKey.objects.update(
        response_status=None,
        response_body=None,
        created_at=timezone.now() - timedelta(seconds=seconds_old),
    )
    AgentSession.objects.all().delete()  # its work was rolled back (or is not committed yet)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_claim_whose_request_died_is_taken_over_without_waiting(
    runtime: Api, body: dict[str, Any]
) -> None:
    # A database outage cut the first request's connection: nobody holds its claim's lock.
    assert create(runtime, body).status_code == 201
    _orphan_claim(seconds_old=5)
    assert create(runtime, body).status_code == 201
    assert AgentSession.objects.filter(title="Once").count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_claim_whose_request_still_runs_is_a_409_at_any_age_below_the_limit(
    runtime: Api, body: dict[str, Any]
) -> None:
    # Control for the test above: the same claim, locked as a running first request holds it.
    assert create(runtime, body).status_code == 201
    _orphan_claim(seconds_old=5)
    locked, release = threading.Event(), threading.Event()

    def first_request_running() -> None:
        try:
            with transaction.atomic():
                list(IdempotencyKey.objects.select_for_update().values_list("pk", flat=True))
                locked.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    holder = threading.Thread(target=first_request_running)
    holder.start()
    try:
        assert locked.wait(timeout=10)
        response = create(runtime, body)
        assert response.status_code == 409
        assert error(response)["code"] == "idempotency_in_flight"
    finally:
        release.set()
        holder.join(timeout=30)
    assert AgentSession.objects.filter(title="Once").count() == 0

"""Errors are answers over HTTP: hostile input is a 4xx naming the field, the database away is a
503 with Retry-After (JSON on the API, a page elsewhere), and nothing reaches Django's 500."""

from __future__ import annotations

import json
import logging
from typing import Any
from unittest import mock

import pytest
from django.db import InterfaceError, OperationalError
from django.test import Client

from sessions_app import edge
from sessions_app.models import AgentSession, RuntimeCommand, SessionEvent
from tests import factories as f
from tests.api.conftest import Api, error, events


@pytest.fixture
def flow(world: Any) -> AgentSession:
    return f.make_session(world.agent, world.owner, status="running")


@pytest.fixture
def owner_client(world: Any) -> Client:
    # raise_request_exception=False: see what a browser sees, not the exception.
    client = Client(raise_request_exception=False)
    client.force_login(world.owner)
    return client


def deep(levels: int) -> str:
    """{"a": {"a": ... "leaf"}} as JSON text (json.dumps itself cannot go that deep)."""
    return '{"a":' * levels + '"leaf"' + "}" * levels


def post_events(api: Api, session: AgentSession, raw: str) -> Any:
    return api.post(f"/sessions/{session.pk}/events", raw=raw)


def tool_call(arguments: Any) -> dict[str, Any]:
    return events(("tool_call", {"call_id": "c1", "name": "grep", "arguments": arguments}))


# --- API input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("levels", [65, 260])
def test_deep_tool_call_arguments_are_a_422_naming_the_field(
    runtime: Api, flow: AgentSession, levels: int
) -> None:
    before = SessionEvent.objects.filter(session=flow).count()
    raw = json.dumps(tool_call("DEEP")).replace('"DEEP"', deep(levels))
    response = post_events(runtime, flow, raw)
    assert response.status_code == 422, response.content
    body = error(response)
    assert body["field"].startswith("events[0].payload.arguments.a")
    assert "nested more than 64 levels" in body["message"]
    assert SessionEvent.objects.filter(session=flow).count() == before


def test_json_deeper_than_the_parser_can_follow_is_a_422(runtime: Api, flow: AgentSession) -> None:
    response = post_events(runtime, flow, "[" * 100_000 + "]" * 100_000)
    assert response.status_code == 422
    assert error(response)["field"] == "body"


def test_a_lone_surrogate_as_an_object_key_is_a_422_that_encodes(
    runtime: Api, flow: AgentSession
) -> None:
    raw = json.dumps(tool_call({"ok": 1})).replace('"ok"', '"\\ud800"')
    response = post_events(runtime, flow, raw)
    assert response.status_code == 422
    body = error(response)
    assert body["field"] == "events[0].payload.arguments.\\ud800"
    response.content.decode("utf-8")  # the answer itself is valid UTF-8


@pytest.mark.parametrize("text", ["nul\\u0000byte", "half\\udc80pair"])
def test_unstorable_text_in_a_message_is_a_422(runtime: Api, flow: AgentSession, text: str) -> None:
    raw = json.dumps(events(("message", {"role": "agent", "text": "x"}))).replace(
        '"x"', f'"{text}"'
    )
    response = post_events(runtime, flow, raw)
    assert response.status_code == 422
    assert error(response)["field"] == "events[0].payload.text"


def test_a_nul_in_a_create_title_is_a_422(world: Any, runtime: Api) -> None:
    response = runtime.post(
        "/sessions", {"kind": "flow_run", "agent": world.agent.pk, "title": "a\x00b"}
    )
    assert response.status_code == 422
    assert error(response)["field"] == "title"
    assert not AgentSession.objects.filter(title__startswith="a").exists()


@pytest.mark.parametrize("param", ["agent", "project", "initiative", "after"])
def test_unicode_digits_in_api_filters_are_a_422(
    runtime: Api, flow: AgentSession, param: str
) -> None:
    path = f"/sessions/{flow.pk}/events" if param == "after" else "/sessions"
    response = runtime.get(path, {param: "²"})
    assert response.status_code == 422
    assert error(response)["field"] == param


# --- API faults --------------------------------------------------------------------------------


@pytest.mark.parametrize("exc", [OperationalError("server closed"), InterfaceError("gone")])
def test_the_database_away_is_a_503_with_retry_after_on_the_api(
    runtime: Api, flow: AgentSession, exc: Exception
) -> None:
    with mock.patch("sessions_app.services.events_record_in", side_effect=exc):
        response = post_events(runtime, flow, json.dumps(events(("thinking", {"text": "a"}))))
    assert response.status_code == 503
    assert response["Retry-After"] == str(edge.RETRY_AFTER_SECONDS)
    assert error(response)["code"] == "unavailable"


def test_the_database_away_during_authentication_is_a_503(runtime: Api) -> None:
    with mock.patch(
        "sessions_app.api.auth.access_for_raw_token", side_effect=OperationalError("refused")
    ):
        response = runtime.get("/sessions")
    assert response.status_code == 503
    assert response["Retry-After"]
    assert error(response)["code"] == "unavailable"


def test_an_unexpected_error_is_a_500_in_the_error_shape(
    runtime: Api, flow: AgentSession, caplog: Any
) -> None:
    with (
        caplog.at_level(logging.ERROR),
        mock.patch("sessions_app.selectors.session_get_for_token", side_effect=KeyError("bug")),
    ):
        response = runtime.get(f"/sessions/{flow.pk}")
    assert response.status_code == 500
    assert error(response)["code"] == "internal_error"
    assert "unhandled error" in caplog.text


# --- pages -------------------------------------------------------------------------------------


@pytest.mark.parametrize("param", ["agent", "project", "initiative", "owner"])
def test_unicode_digits_in_page_filters_are_a_400(
    owner_client: Client, world: Any, param: str
) -> None:
    response = owner_client.get("/sessions/", {param: "²"})
    assert response.status_code == 400
    assert "must be" in response.content.decode()


def test_unicode_digits_in_before_are_a_400(owner_client: Client, flow: AgentSession) -> None:
    response = owner_client.get(f"/sessions/{flow.pk}/events/", {"before": "²"})
    assert response.status_code == 400


def test_a_nul_in_the_search_box_is_a_400(owner_client: Client, world: Any) -> None:
    response = owner_client.get("/sessions/", {"q": "a\x00b"})
    assert response.status_code == 400
    assert "q: must not contain NUL" in response.content.decode()


def test_a_nul_in_a_chat_message_is_a_400_and_sends_nothing(
    owner_client: Client, world: Any
) -> None:
    chat = f.make_session(world.agent, world.owner, "chat")
    response = owner_client.post(f"/sessions/{chat.pk}/message/", {"text": "hi\x00"})
    assert response.status_code == 400
    assert "text: must not contain NUL" in response.content.decode()
    assert not RuntimeCommand.objects.filter(session=chat, kind="message").exists()


def test_a_nul_in_a_transfer_username_is_a_400(owner_client: Client, flow: AgentSession) -> None:
    response = owner_client.post(f"/sessions/{flow.pk}/transfer/", {"to": "bob\x00"})
    assert response.status_code == 400
    assert AgentSession.objects.filter(transferred_from=flow).count() == 0


def test_the_database_away_is_a_503_page_with_retry_after(owner_client: Client) -> None:
    with mock.patch(
        "sessions_app.selectors.session_page", side_effect=OperationalError("connection refused")
    ):
        response = owner_client.get("/sessions/")
    assert response.status_code == 503
    assert response["Retry-After"] == str(edge.RETRY_AFTER_SECONDS)
    page = response.content.decode()
    assert "Temporarily unavailable" in page
    assert "app.css" in page  # styled like the rest


def test_the_database_away_in_a_middleware_is_still_a_503(owner_client: Client) -> None:
    with mock.patch(
        "django.contrib.sessions.backends.db.SessionStore.load",
        side_effect=OperationalError("connection refused"),
    ):
        response = owner_client.get("/sessions/")
    assert response.status_code == 503
    assert "Temporarily unavailable" in response.content.decode()


@pytest.mark.parametrize(
    "path", ["/nope", "/runtime/commands/a/b/ack", "/sessions/x/y/z", "/runtime/commands/"]
)
def test_an_api_path_no_route_matches_is_a_json_404(runtime: Api, path: str) -> None:
    response = runtime.post(path, {})
    assert response.status_code == 404
    assert error(response)["code"] == "not_found"


def test_a_page_path_no_route_matches_is_the_styled_404_page(owner_client: Client) -> None:
    response = owner_client.get("/no/such/page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize(
    "query", ["title__regex=(", "status__iregex=*", "title__startswith=a", "owner__password=x"]
)
def test_an_admin_changelist_refuses_lookups_it_offers_no_filter_for(
    world: Any, query: str
) -> None:
    client = Client(raise_request_exception=False)
    client.force_login(world.admin)
    f.make_session(world.agent, world.owner)
    assert client.get(f"/admin/sessions_app/agentsession/?{query}").status_code == 400


@pytest.mark.parametrize("query", ["", "kind__exact=chat", "status_group__exact=active", "q=x"])
def test_an_admin_changelist_keeps_its_own_filters_and_search(world: Any, query: str) -> None:
    # Control for the test above: what the changelist's filters and search box send still works.
    client = Client(raise_request_exception=False)
    client.force_login(world.admin)
    f.make_session(world.agent, world.owner)
    assert client.get(f"/admin/sessions_app/agentsession/?{query}").status_code == 200


@pytest.mark.postgres
def test_the_database_lost_during_the_event_copy_is_a_503(runtime: Api, flow: AgentSession) -> None:
    import psycopg

    # psycopg's own error, as a COPY raises it when the server goes away mid-batch.
    with mock.patch.object(psycopg.Cursor, "copy", side_effect=psycopg.OperationalError("gone")):
        response = post_events(runtime, flow, json.dumps(events(("thinking", {"text": "a"}))))
    assert response.status_code == 503
    assert response["Retry-After"] == str(edge.RETRY_AFTER_SECONDS)
    assert error(response)["code"] == "unavailable"
    # The positive control: with the database back, the same batch is stored.
    response = post_events(runtime, flow, json.dumps(events(("thinking", {"text": "a"}))))
    assert response.status_code == 200, response.content
    assert SessionEvent.objects.filter(session=flow, type="thinking").count() == 1

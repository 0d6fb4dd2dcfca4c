"""The API's own ASGI handler (config/api_handler.py): API requests skip the browser pages'
middleware, keep the security headers, and answer errors as JSON; pages are unaffected."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from config.asgi import application
from sessions_app import services
from sessions_app.services.ingest import EventIn
from tests import factories as f
from tests.api.conftest import make_token

pytestmark = pytest.mark.django_db(transaction=True)


def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application), base_url="http://127.0.0.1"
    )


async def test_an_api_request_runs_the_lean_chain_and_a_page_the_full_one(world: Any) -> None:
    from asgiref.sync import sync_to_async

    token = await sync_to_async(make_token)(world, "runtime", world.agent_owner, [world.agent])
    chat = await sync_to_async(f.make_session)(world.agent, world.owner, "chat", status="running")
    body = {
        "events": [
            {"event_id": "e1", "type": "message", "payload": {"role": "agent", "text": "hi"}}
        ]
    }
    async with client() as http:
        api = await http.post(
            f"/api/v1/sessions/{chat.pk}/events",
            content=json.dumps(body),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        page = await http.get("/accounts/login/")
    assert api.status_code == 200, api.text
    assert api.json()["created"] == 1
    # Both carry the security headers...
    assert api.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    # ...only the page went through the browser middleware (clickjacking, CSRF).
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "csrftoken" in page.headers.get("set-cookie", "")
    assert "X-Frame-Options" not in api.headers
    assert "set-cookie" not in api.headers


async def test_api_errors_through_the_lean_handler_are_json(world: Any) -> None:
    async with client() as http:
        unknown = await http.get("/api/v1/no-such-route")
        anonymous = await http.get("/api/v1/sessions")
        bad = await http.post(
            "/api/v1/sessions/not-a-uuid/events",
            content="{",
            headers={"Authorization": "Bearer scc_nope", "Content-Type": "application/json"},
        )
    for answer, status in ((unknown, 404), (anonymous, 401), (bad, 401)):
        assert answer.status_code == status, answer.text
        assert answer.headers["Content-Type"].startswith("application/json")
        assert answer.json()["message"]


async def test_api_views_run_on_a_fixed_set_of_threads_that_hand_back_their_connection(
    world: Any,
) -> None:
    import threading

    from asgiref.sync import sync_to_async
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections, connection

    from config import api_handler

    after: list[tuple[str, str, bool, bool]] = []
    started: list[str] = []

    def close_and_record(**_: Any) -> None:
        had = connection.connection is not None
        close_old_connections()
        name = threading.current_thread().name
        after.append((name, started[-1], had, connection.connection is None))

    def record_start(**_: Any) -> None:
        started.append(threading.current_thread().name)

    # Django's own receiver hands the connection back; this one does the same and records
    # where it ran and what it found.
    request_finished.disconnect(close_old_connections)
    request_finished.connect(close_and_record)
    request_started.connect(record_start)
    token = await sync_to_async(make_token)(world, "runtime", world.agent_owner, [world.agent])
    chat = await sync_to_async(f.make_session)(world.agent, world.owner, "chat", status="running")
    try:
        async with client() as http:
            for n in range(12):
                event = {
                    "event_id": f"e{n}",
                    "type": "message",
                    "payload": {"role": "agent", "text": "hi"},
                }
                answer = await http.post(
                    f"/api/v1/sessions/{chat.pk}/events",
                    content=json.dumps({"events": [event]}),
                    headers={
                        "Authorization": f"Bearer {token}",
                        "Content-Type": "application/json",
                    },
                )
                assert answer.status_code == 200, answer.text
    finally:
        request_started.disconnect(record_start)
        request_finished.disconnect(close_and_record)
        request_finished.connect(close_old_connections)
    assert len(after) == 12
    threads = {name for name, _, _, _ in after}
    assert all(name.startswith("scc-api") for name in threads)
    assert len(threads) <= api_handler._workers._max_workers
    # Each request started, used the database and ended in one worker thread, and gave the
    # connection back.
    assert all(start == end for end, start, _, _ in after)
    assert all(had and closed for _, _, had, closed in after)


async def test_a_download_through_the_lean_handler_streams_and_then_ends_its_request(
    world: Any,
) -> None:
    """An export is produced while it is sent: it comes whole, and its request ends once, after
    the last chunk, in the thread that read the transcript, whose connection goes back."""
    import threading

    from asgiref.sync import sync_to_async
    from django.core.signals import request_finished
    from django.db import close_old_connections, connection

    finished: list[tuple[str, bool, bool]] = []

    def close_and_record(**_: Any) -> None:
        had = connection.connection is not None
        close_old_connections()
        finished.append((threading.current_thread().name, had, connection.connection is None))

    token = await sync_to_async(make_token)(world, "personal", world.owner, None)
    chat = await sync_to_async(f.make_session)(world.agent, world.owner, "chat", status="running")
    events = [
        EventIn(event_id=f"e{n}", type="message", payload={"role": "agent", "text": f"line {n}"})
        for n in range(30)
    ]
    await sync_to_async(services.events_record)(session=chat, events=events)
    request_finished.disconnect(close_old_connections)
    request_finished.connect(close_and_record)
    try:
        async with client() as http:
            answer = await http.get(
                f"/api/v1/sessions/{chat.pk}/export",
                params={"format": "json"},
                headers={"Authorization": f"Bearer {token}"},
            )
    finally:
        request_finished.disconnect(close_and_record)
        request_finished.connect(close_old_connections)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["session"]["id"] == str(chat.pk)
    assert [e["event_id"] for e in body["events"] if e["type"] == "message"] == [
        f"e{n}" for n in range(30)
    ]
    assert len(finished) == 1
    thread, had, closed = finished[0]
    # Not an API worker: the thread that pulled the chunks, with the connection it read with.
    assert not thread.startswith("scc-api")
    assert had
    assert closed

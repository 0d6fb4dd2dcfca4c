"""A real connection failure, not a patched one: the database moved to a closed port answers
503 with Retry-After, and service recovers without a restart once it is back."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from sessions_app.models import SessionEvent
from tests import factories as f
from tests.api.conftest import Api, events

pytestmark = [
    pytest.mark.integration,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends


@contextmanager
def database_away() -> Iterator[None]:
    """Point the connection at a port nobody listens on (the shared server keeps running)."""
    saved = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict.update(HOST="127.0.0.1", PORT=str(closed_port()))
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)


def test_ingest_while_the_database_is_away_is_a_503_then_recovers(
    world: Any, runtime: Api, shared_connection: None
) -> None:
    flow = f.make_session(world.agent, world.owner, status="running")
    batch = events(("thinking", {"text": "during the outage"}))
    with database_away():
        response = runtime.post(f"/sessions/{flow.pk}/events", batch)
        assert response.status_code == 503
        assert response["Retry-After"]
        assert json.loads(response.content)["code"] == "unavailable"
    again = runtime.post(f"/sessions/{flow.pk}/events", batch)
    assert again.status_code == 200
    assert SessionEvent.objects.filter(session=flow, event_id="e1").count() == 1


def test_a_page_while_the_database_is_away_is_a_503_page(
    world: Any, shared_connection: None
) -> None:
    client = Client(raise_request_exception=False)
    client.force_login(world.owner)
    with database_away():
        response = client.get("/sessions/")
    assert response.status_code == 503
    assert "Temporarily unavailable" in response.content.decode()
    assert client.get("/sessions/").status_code == 200

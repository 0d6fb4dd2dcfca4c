from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import Client

from sessions_app import services
from sessions_app.models import TokenKind
from sessions_app.runtime.client import RuntimeClient
from tests.conftest import World

URL = "/api/v1"


class Api:
    """A Django test client that speaks JSON with one bearer token."""

    def __init__(self, token: str | None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        self.client = Client(headers=headers)

    # Any: Django's test responses carry .json(), which HttpResponse's stubs do not know.
    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.client.get(URL + path, params or {})

    def post(self, path: str, body: Any = None, *, raw: str | bytes | None = None) -> Any:
        data = raw if raw is not None else json.dumps({} if body is None else body)
        return self.client.post(URL + path, data=data, content_type="application/json")


def make_token(world: World, kind: str, user: Any, agents: list[Any] | None = None) -> str:
    tenant = world.other_tenant if user == world.other_admin else world.tenant
    _, raw = services.token_create(
        tenant=tenant, kind=kind, name=f"{kind} for {user}", user=user, agents=agents or []
    )
    return raw


@pytest.fixture
def runtime_token(world: World) -> str:
    return make_token(world, TokenKind.RUNTIME, world.agent_owner, [world.agent])


@pytest.fixture
def runtime(runtime_token: str) -> Api:
    """The runtime of `world.agent`."""
    return Api(runtime_token)


@pytest.fixture
def personal(world: World) -> Callable[[Any], Api]:
    """personal(user) -> an Api acting as that user."""
    cache: dict[int, Api] = {}

    def for_user(user: Any) -> Api:
        if user.pk not in cache:
            cache[user.pk] = Api(make_token(world, TokenKind.PERSONAL, user))
        return cache[user.pk]

    return for_user


def events(*items: tuple[str, dict[str, Any]], prefix: str = "e") -> dict[str, Any]:
    """events(("message", {...}), ...) -> a batch body with event ids e1, e2, ..."""
    return {
        "events": [
            {"event_id": f"{prefix}{i}", "type": type_, "payload": payload}
            for i, (type_, payload) in enumerate(items, start=1)
        ]
    }


def error(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert set(body) >= {"code", "message"}, body
    return body


@pytest.fixture
def shared_connection() -> Iterator[None]:
    """Keep the test's database connection open across in-process WSGI requests (Django's
    test client does the same): closing it at request end would lose the test transaction."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def in_process(shared_connection: None) -> Iterator[Callable[..., RuntimeClient]]:
    """in_process(token, transport=None) -> a RuntimeClient calling the app in this process."""
    clients: list[RuntimeClient] = []

    def make(
        token: str, transport: httpx.BaseTransport | None = None, **kwargs: Any
    ) -> RuntimeClient:
        kwargs.setdefault("sleep", lambda seconds: None)
        client = RuntimeClient(
            "http://testserver",
            token,
            transport=transport or httpx.WSGITransport(app=get_wsgi_application()),
            **kwargs,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()

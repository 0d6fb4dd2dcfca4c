"""The dashboard socket's session and user lookup: shared by the handshakes of one browser that
arrive together, never older than a handshake, and each socket gets a user object of its own."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.sessions.models import Session
from django.test import Client

from command_center import snapshots, socket_auth
from tests import factories as f

pytestmark = pytest.mark.django_db(transaction=True)


class Lookups:
    """channels' lookup, counted, and held until released."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.count = 0
        self.release = threading.Event()

    def __call__(self, scope: dict[str, Any]) -> Any:
        self.count += 1
        self.release.wait(5)
        return self.real(scope)


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> Lookups:
    counted = Lookups(socket_auth._get_user)
    monkeypatch.setattr(socket_auth, "_get_user", counted)
    monkeypatch.setattr(socket_auth, "lookups", snapshots.SharedBuilds())
    return counted


def login(user: Any) -> str:
    client = Client()
    client.force_login(user)
    return str(client.cookies["sessionid"].value)


async def handshake(cookie: str) -> Any:
    """The user the middleware puts in a socket's scope."""
    seen: list[Any] = []

    async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["user"]._wrapped)

    app = socket_auth.auth_middleware_stack(inner)
    scope = {
        "type": "websocket",
        "path": "/ws/",
        "headers": [(b"cookie", f"sessionid={cookie}".encode())],
    }
    await app(scope, None, None)
    return seen[0]


async def test_handshakes_of_one_session_arriving_during_a_lookup_share_the_next(lookups) -> None:
    user = await sync_to_async(f.make_user)()
    cookie = await sync_to_async(login)(user)
    other_user = await sync_to_async(f.make_user)()
    other_cookie = await sync_to_async(login)(other_user)
    first = asyncio.ensure_future(handshake(cookie))
    await asyncio.sleep(0.05)
    # Arrived after the first lookup started, so it may not answer them: one more for all.
    together = [asyncio.ensure_future(handshake(cookie)) for _ in range(10)]
    # Positive control: another browser's session is looked up on its own.
    other = asyncio.ensure_future(handshake(other_cookie))
    await asyncio.sleep(0.1)
    assert lookups.count == 2
    lookups.release.set()
    users = [await first, *await asyncio.gather(*together)]
    assert lookups.count == 3
    assert {u.pk for u in users} == {user.pk}
    assert (await other).pk == other_user.pk
    # What one socket learns about its user (its access) stays on its own object.
    assert len({id(u) for u in users}) == len(users)


async def test_a_logout_before_a_handshake_arrives_is_seen(lookups) -> None:
    lookups.release.set()
    user = await sync_to_async(f.make_user)()
    cookie = await sync_to_async(login)(user)
    assert (await handshake(cookie)).pk == user.pk
    # Within the time a finished lookup is kept, a later handshake still looks up anew.
    await sync_to_async(Session.objects.filter(session_key=cookie).delete)()
    later = await handshake(cookie)
    assert not later.is_authenticated
    assert lookups.count == 2

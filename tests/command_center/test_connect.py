"""A dashboard socket's handshake: the access it reads is shared by the sockets of one person
connecting together, never older than the socket's joining, and drives its groups."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from command_center import fragments, snapshots
from config.asgi import application
from sessions_app import selectors, services
from sessions_app.models import Membership
from sessions_app.states import Kind
from tests import factories as f

pytestmark = pytest.mark.django_db(transaction=True)


class Reads:
    """selectors.access_for, counted, the first call held until released."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.count = 0
        self.release = threading.Event()

    def __call__(self, user: Any, *, fresh: bool = False) -> Any:
        if fresh:
            self.count += 1
            self.release.wait(5)
        return self.real(user, fresh=fresh)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Reads:
    counted = Reads(selectors.access_for)
    monkeypatch.setattr(selectors, "access_for", counted)
    monkeypatch.setattr(snapshots, "access_reads", snapshots.SharedBuilds())
    return counted


async def open_socket(user: Any) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(
        application, "/ws/command-center/?view=list", headers=[(b"origin", b"http://127.0.0.1")]
    )
    communicator.scope["user"] = await sync_to_async(type(user).objects.get)(pk=user.pk)
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    return communicator


async def test_sockets_of_one_person_connecting_together_share_an_access_read(world, reads) -> None:
    first = await open_socket(world.developer)
    await asyncio.sleep(0.1)  # its read is under way (held)
    rest = await asyncio.gather(*(open_socket(world.developer) for _ in range(5)))
    await asyncio.sleep(0.2)
    assert reads.count == 1  # the others joined after it started: they wait for the next
    reads.release.set()
    for socket in [first, *rest]:
        assert 'id="session-list"' in await socket.receive_from(timeout=10)
    assert reads.count == 2
    # Positive control: a socket connecting after those reads reads again.
    late = await open_socket(world.developer)
    await late.receive_from(timeout=10)
    assert reads.count == 3
    for socket in [first, *rest, late]:
        await socket.disconnect()


async def test_a_role_removed_before_the_socket_joins_is_not_granted(world) -> None:
    flow = await sync_to_async(f.make_session)(
        world.agent, world.owner, Kind.FLOW_RUN, status="running", title="Guarded run"
    )
    before = await open_socket(world.developer)
    assert f"session-{flow.pk}" in await before.receive_from(timeout=10)
    membership = await sync_to_async(Membership.objects.get)(
        project=world.project, user=world.developer
    )
    await sync_to_async(services.project_member_remove)(membership=membership, by=world.admin)
    # Within the time a finished read is kept for sockets that joined before it started.
    after = await open_socket(world.developer)
    assert f"session-{flow.pk}" not in await after.receive_from(timeout=10)
    await before.disconnect()
    await after.disconnect()


async def test_an_access_is_only_used_for_its_own_person(world) -> None:
    developer = await sync_to_async(selectors.access_for)(world.developer, fresh=True)
    with pytest.raises(ValueError, match="person"):
        selectors.use_access(world.owner, developer)
    # Positive control: another object of the same person takes it.
    again = await sync_to_async(type(world.developer).objects.get)(pk=world.developer.pk)
    selectors.use_access(again, developer)
    assert selectors.access_for(again) is developer


async def test_a_snapshot_holds_the_panel_and_its_counts_as_read_apart(world) -> None:
    await sync_to_async(f.make_session)(
        world.agent, world.owner, Kind.FLOW_RUN, status="running", title="Counted run"
    )
    await sync_to_async(f.make_session)(
        world.agent, world.owner, Kind.FLOW_RUN, status="running", title="Second run"
    )
    built = await sync_to_async(snapshots.build)(
        world.owner, "list", selectors.SessionFilter(), None
    )
    body = await sync_to_async(fragments.panel_body_html)(world.owner)
    counts = await sync_to_async(fragments.panel_counts_html)(world.owner)
    assert '<span id="cc-count-active" class="count">2</span>' in counts
    assert "Counted run" in body
    assert built.html is not None
    assert built.html.startswith(body + counts)

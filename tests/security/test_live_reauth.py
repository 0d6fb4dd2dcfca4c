"""Access changes while sockets are open: within 2 seconds the socket is updated or closed,
and the next push is withheld (with the owner's socket as the positive control)."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from sessions_app import services
from sessions_app.models import ApiToken, Membership, Role, TenantMembership
from sessions_app.states import Kind
from tests import factories as f
from tests.api.conftest import make_token
from tests.security import sockets

# Seconds of work each: in `make test` and CI, not in the `make check` inner loop.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
WITHIN = 2.0


@pytest.fixture(autouse=True)
def _fast_broadcast(settings: Any) -> None:
    settings.SCC_BROADCAST_COALESCE_MS = 10


async def tick(session: Any, n: int) -> None:
    await sync_to_async(services.events_record)(
        session=session,
        events=[services.EventIn(f"tick-{n}", "message", {"role": "agent", "text": f"tick {n}"})],
        actor="rt",
    )


async def heard(socket: WebsocketCommunicator, quiet: float = 0.8) -> str:
    return "".join(t for t in await sockets.frames(socket, quiet) if isinstance(t, str))


async def test_a_developer_removed_from_the_project_loses_detail_and_rows(world) -> None:
    flow = await sync_to_async(f.make_session)(
        world.agent, world.owner, Kind.FLOW_RUN, status="running", title="Guarded run"
    )
    detail = await sockets.dashboard(world.developer, f"view=detail&session={flow.pk}")
    await detail.receive_from(timeout=5)
    rows = await sockets.dashboard(world.developer, "view=list")
    assert f"session-{flow.pk}" in await rows.receive_from(timeout=5)
    control = await sockets.dashboard(world.owner, "view=list")
    await control.receive_from(timeout=5)

    membership = await sync_to_async(Membership.objects.get)(
        project=world.project, user=world.developer
    )
    await sync_to_async(services.project_member_remove)(membership=membership, by=world.admin)

    texts, code = await sockets.until_closed(detail, within=WITHIN)
    assert code == 4403
    assert "no longer have access" in "".join(texts)
    snapshot = await sockets.until(rows, 'id="session-list"', within=WITHIN)
    assert 'id="session-list"' in snapshot
    assert f"session-{flow.pk}" not in snapshot

    await tick(flow, 1)
    assert str(flow.pk) in await heard(control)  # positive control
    assert str(flow.pk) not in await heard(rows)
    for socket in (rows, control):
        await socket.disconnect()


async def test_a_maintainer_lowered_to_guest_stops_receiving_pushes(world) -> None:
    flow = await sync_to_async(f.make_session)(
        world.agent, world.owner, Kind.FLOW_RUN, status="running"
    )
    rows = await sockets.dashboard(world.maintainer, "view=list")
    assert f"session-{flow.pk}" in await rows.receive_from(timeout=5)
    control = await sockets.dashboard(world.owner, "view=list")
    await control.receive_from(timeout=5)

    await sync_to_async(services.project_member_set)(
        project=world.project, user=world.maintainer, role=Role.GUEST, by=world.admin
    )
    snapshot = await sockets.until(rows, 'id="session-list"', within=WITHIN)
    assert 'id="session-list"' in snapshot
    assert f"session-{flow.pk}" not in snapshot

    await tick(flow, 1)
    assert str(flow.pk) in await heard(control)
    assert str(flow.pk) not in await heard(rows)

    # And back: raised to developer, the socket follows without a reconnect.
    await sync_to_async(services.project_member_set)(
        project=world.project, user=world.maintainer, role=Role.DEVELOPER, by=world.admin
    )
    snapshot = await sockets.until(rows, 'id="session-list"', within=WITHIN)
    assert f"session-{flow.pk}" in snapshot
    await tick(flow, 2)
    assert str(flow.pk) in await heard(rows)
    for socket in (rows, control):
        await socket.disconnect()


async def test_removal_from_the_workspace_closes_the_detail_view_and_the_api(world) -> None:
    chat = await sync_to_async(f.make_session)(world.agent, world.developer, Kind.CHAT)
    token = await sync_to_async(make_token)(world, "personal", world.developer)
    detail = await sockets.dashboard(world.developer, f"view=detail&session={chat.pk}")
    await detail.receive_from(timeout=5)
    membership = await sync_to_async(TenantMembership.objects.get)(
        tenant=world.tenant, user=world.developer
    )
    await sync_to_async(services.membership_remove)(membership=membership, by=world.admin)
    _, code = await sockets.until_closed(detail, within=WITHIN)
    assert code == 4403
    revoked = await sync_to_async(
        lambda: ApiToken.objects.get(token_hash=services.hash_token(token)).revoked_at
    )()
    assert revoked is not None


async def test_a_revoked_runtime_token_is_closed_and_receives_nothing(world) -> None:
    chat = await sync_to_async(f.make_session)(world.agent, world.owner, Kind.CHAT)
    raw = await sync_to_async(make_token)(world, "runtime", world.admin, [world.agent])
    other = await sync_to_async(make_token)(world, "runtime", world.admin, [world.agent])
    socket = await sockets.runtime(raw)
    control = await sockets.runtime(other)
    token = await sync_to_async(ApiToken.objects.get)(token_hash=services.hash_token(raw))

    await sync_to_async(services.token_revoke)(token=token, by=world.admin)
    _, code = await sockets.until_closed(socket, within=WITHIN)
    assert code == 4401

    await sync_to_async(services.message_send)(session=chat, user=world.owner, text="secret")
    received = sockets.commands(await sockets.frames(control))
    assert [c["payload"]["text"] for c in received] == ["secret"]  # positive control
    await control.disconnect()


async def test_a_token_revoked_around_the_services_gets_no_command(world) -> None:
    chat = await sync_to_async(f.make_session)(world.agent, world.owner, Kind.CHAT)
    raw = await sync_to_async(make_token)(world, "runtime", world.admin, [world.agent])
    other = await sync_to_async(make_token)(world, "runtime", world.admin, [world.agent])
    socket = await sockets.runtime(raw)
    control = await sockets.runtime(other)
    await sync_to_async(
        lambda: ApiToken.objects.filter(token_hash=services.hash_token(raw)).update(
            revoked_at=timezone.now()
        )
    )()
    await sync_to_async(services.message_send)(session=chat, user=world.owner, text="secret")
    texts, code = await sockets.until_closed(socket, within=WITHIN)
    assert code == 4401
    assert sockets.commands(texts) == []
    assert len(sockets.commands(await sockets.frames(control))) == 1
    await control.disconnect()


async def test_a_runtime_token_rescoped_away_from_an_agent_stops_hearing_it(world) -> None:
    chat = await sync_to_async(f.make_session)(world.agent, world.owner, Kind.CHAT)
    second = await sync_to_async(f.make_agent)(world.project, world.agent_owner, name="second")
    raw = await sync_to_async(make_token)(world, "runtime", world.admin, [world.agent, second])
    socket = await sockets.runtime(raw)
    token = await sync_to_async(ApiToken.objects.get)(token_hash=services.hash_token(raw))
    await sync_to_async(services.token_agents_set)(token=token, agents=[second], by=world.admin)
    await sockets.frames(socket, quiet=0.5)  # the re-check, nothing to send
    await sync_to_async(services.message_send)(session=chat, user=world.owner, text="not yours")
    assert sockets.commands(await sockets.frames(socket)) == []
    await socket.disconnect()

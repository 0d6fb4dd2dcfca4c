"""The dashboard socket over the real Redis channel layer: snapshot, filters, visibility."""

from __future__ import annotations

import re
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from config.asgi import application
from sessions_app import services
from sessions_app.states import Kind
from tests import factories as f

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fast_broadcast(settings: Any) -> None:
    settings.SCC_BROADCAST_COALESCE_MS = 10


async def connect(user: Any, query: str) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(
        application, f"/ws/command-center/?{query}", headers=[(b"origin", b"http://127.0.0.1")]
    )
    communicator.scope["user"] = user
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    return communicator


async def receive_until(
    communicator: WebsocketCommunicator,
    needle: str,
    timeout: float = 5,  # noqa: ASYNC109 - bounds each receive, as WebsocketCommunicator's own
) -> str:
    """Collect frames until one contains needle (pushes for panel counts etc. may come first)."""
    seen = []
    while True:
        frame = await communicator.receive_from(timeout=timeout)
        seen.append(frame)
        if needle in frame:
            return frame


async def drain(communicator: WebsocketCommunicator, quiet: float = 1.5) -> list[str]:
    frames = []
    while not await communicator.receive_nothing(timeout=quiet):
        frames.append(await communicator.receive_from())
    return frames


async def test_an_anonymous_socket_is_closed_with_a_4xxx_code() -> None:
    from django.contrib.auth.models import AnonymousUser

    communicator = WebsocketCommunicator(
        application, "/ws/command-center/?view=list", headers=[(b"origin", b"http://127.0.0.1")]
    )
    communicator.scope["user"] = AnonymousUser()
    connected, _ = await communicator.connect(timeout=10)
    assert connected  # accepted only so the close code reaches the browser
    closed = await communicator.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": 4401}


async def test_a_foreign_origin_is_refused(world) -> None:
    communicator = WebsocketCommunicator(
        application, "/ws/command-center/?view=list", headers=[(b"origin", b"http://evil.example")]
    )
    communicator.scope["user"] = world.owner
    connected, _ = await communicator.connect(timeout=10)
    assert not connected


async def test_connect_sends_a_snapshot_of_list_and_panel(world) -> None:
    mine = await sync_to_async(f.make_session)(
        world.agent, world.owner, Kind.FLOW_RUN, title="Snapshot me"
    )
    communicator = await connect(world.owner, "view=list")
    snapshot = await communicator.receive_from(timeout=5)
    assert 'id="session-list"' in snapshot
    assert 'id="cc-panel-body"' in snapshot
    assert f'id="session-{mine.pk}"' in snapshot
    assert "Snapshot me" in snapshot
    await communicator.disconnect()


async def test_a_new_visible_session_is_pushed_as_a_row_insert(world) -> None:
    communicator = await connect(world.owner, "view=list")
    await communicator.receive_from(timeout=5)
    s = await sync_to_async(f.make_session)(
        world.agent, world.owner, Kind.FLOW_RUN, title="Fresh run"
    )
    frame = await receive_until(communicator, f'id="session-{s.pk}"')
    assert 'data-op="insert" data-target="rows-live"' in frame
    assert "Fresh run" in frame
    await communicator.disconnect()


async def test_a_filter_hides_a_non_matching_session(world) -> None:
    communicator = await connect(world.owner, "view=list&kind=chat")
    await communicator.receive_from(timeout=5)
    flow = await sync_to_async(f.make_session)(
        world.agent, world.owner, Kind.FLOW_RUN, title="Not a chat"
    )
    chat = await sync_to_async(f.make_session)(world.agent, world.owner, Kind.CHAT, title="A chat")
    frames = "".join(await drain(communicator))
    # The flow reaches the (unfiltered) panel but never the filtered list.
    assert 'data-target="rows-live"' in frames
    assert 'class="row' in frames
    rows_inserted = re.findall(
        r'data-op="insert" data-target="rows-(?:live|rest)">\s*<a id="session-([0-9a-f-]+)"',
        frames,
    )
    assert rows_inserted == [str(chat.pk)]
    assert str(flow.pk) in frames  # as a panel item and a row delete only
    await communicator.disconnect()


async def test_another_tenants_session_is_never_pushed(world) -> None:
    communicator = await connect(world.owner, "view=list")
    await communicator.receive_from(timeout=5)
    theirs = await sync_to_async(f.make_session)(
        world.other_agent, world.other_admin, Kind.FLOW_RUN
    )
    frames = "".join(await drain(communicator))
    assert str(theirs.pk) not in frames
    await communicator.disconnect()


async def test_someone_elses_chat_is_not_pushed_to_a_project_developer(world) -> None:
    communicator = await connect(world.developer, "view=list")
    await communicator.receive_from(timeout=5)
    chat = await sync_to_async(f.make_session)(world.agent, world.owner, Kind.CHAT, title="Private")
    flow = await sync_to_async(f.make_session)(
        world.agent, world.owner, Kind.FLOW_RUN, title="Shared"
    )
    frames = "".join(await drain(communicator))
    assert str(chat.pk) not in frames
    assert "Private" not in frames
    assert str(flow.pk) in frames
    await communicator.disconnect()


async def test_a_status_change_moves_the_row_between_sections(world) -> None:
    s = await sync_to_async(f.make_session)(
        world.agent, world.owner, Kind.FLOW_RUN, status="running"
    )
    communicator = await connect(world.owner, "view=list")
    await communicator.receive_from(timeout=5)
    await sync_to_async(f.walk_to)(s, "completed")
    frame = await receive_until(communicator, 'data-target="rows-rest"')
    assert f'data-op="remove" data-target="session-{s.pk}"' in frame
    assert f'id="cc-recent-{s.pk}"' in frame
    await communicator.disconnect()


async def test_a_paged_viewer_gets_a_banner_instead_of_inserts(world) -> None:
    communicator = await connect(world.owner, "view=list")
    await communicator.receive_from(timeout=5)
    await communicator.send_json_to({"type": "paged"})
    s = await sync_to_async(f.make_session)(world.agent, world.owner, Kind.FLOW_RUN)
    frame = await receive_until(communicator, 'id="new-banner"')
    assert "1 new or updated session" in frame
    assert 'data-op="insert" data-target="rows-live"' not in frame
    assert f'id="session-{s.pk}"' in frame  # updated in place if it is on screen
    await communicator.disconnect()


async def test_a_list_sorted_by_cost_is_updated_in_place_not_moved(world) -> None:
    s = await sync_to_async(f.make_session)(world.agent, world.owner, Kind.FLOW_RUN)
    communicator = await connect(world.owner, "view=list&sort=cost")
    snapshot = await communicator.receive_from(timeout=5)
    assert "By cost, most first" in snapshot
    await sync_to_async(services.events_record)(
        session=s, events=[services.EventIn("u1", "usage", {"tokens_in": 5, "cost": "1"})]
    )
    frame = await receive_until(communicator, "$1.00")
    # The page cannot keep a usage order by itself: the row changes where it is, and the
    # banner offers the re-sorted list.
    assert f'data-op="replace" data-target="session-{s.pk}"' in frame
    assert 'data-op="insert" data-target="rows-' not in frame
    await communicator.disconnect()


async def test_detail_view_appends_new_events(world) -> None:
    s = await sync_to_async(f.make_session)(world.agent, world.owner, Kind.CHAT)
    communicator = await connect(world.owner, f"view=detail&session={s.pk}")
    snapshot = await communicator.receive_from(timeout=5)
    assert 'id="detail-header"' in snapshot
    assert 'id="transcript"' in snapshot
    await sync_to_async(services.events_record)(
        session=s,
        events=[
            services.EventIn("m1", "message", {"role": "agent", "text": "Hello from the agent"})
        ],
        actor="rt",
    )
    frame = await receive_until(communicator, "Hello from the agent")
    assert 'hx-swap-oob="beforeend:#transcript"' in frame
    assert 'id="ev-2"' in frame
    await communicator.disconnect()


async def test_detail_view_of_an_invisible_session_is_closed(world) -> None:
    s = await sync_to_async(f.make_session)(world.other_agent, world.other_admin, Kind.CHAT)
    communicator = await connect(world.owner, f"view=detail&session={s.pk}")
    closed = await communicator.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": 4404}


async def test_a_bad_filter_is_closed_with_4400(world) -> None:
    communicator = await connect(world.owner, "view=list&kind=meeting")
    closed = await communicator.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": 4400}


async def test_dashboards_of_one_person_share_one_counts_read(world, monkeypatch) -> None:
    # A push that moves a session between panel sections makes every dashboard re-read its
    # counts a second later; the dashboards of one person (same access) share that read.
    from command_center import fragments, panel_upkeep

    reads: list[str] = []
    real = fragments.panel_counts_html

    def counted(user: Any) -> str:
        reads.append(user.username)
        return real(user)

    monkeypatch.setattr(fragments, "panel_counts_html", counted)
    monkeypatch.setattr(panel_upkeep, "COUNTS_DEBOUNCE_SECONDS", 0.3)
    s = await sync_to_async(f.make_session)(
        world.agent, world.owner, Kind.FLOW_RUN, status="running"
    )
    owners = [await connect(world.owner, "view=list") for _ in range(3)]
    admin = await connect(world.admin, "view=list")
    for socket in [*owners, admin]:
        await socket.receive_from(timeout=5)
    reads.clear()  # the snapshots' own
    await sync_to_async(f.walk_to)(s, "completed")
    for socket in [*owners, admin]:
        frame = await receive_until(socket, 'id="cc-count-recent"')
        assert re.search(r'id="cc-count-recent" class="count">1<', frame), frame
    # Positive control beside the sharing: another person's dashboard reads its own.
    assert sorted(reads) == ["admin", "owner"]
    for socket in [*owners, admin]:
        await socket.disconnect()

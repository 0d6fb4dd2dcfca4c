"""Panel sections change with time alone: a chat quiet for 30 minutes leaves Active Now, a
session a day old leaves Recent, with no other change and no reconnect."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from sessions_app.models import AgentSession
from sessions_app.states import ACTIVE_CHAT_WINDOW, RECENT_WINDOW, Kind
from tests import factories as f
from tests.command_center.test_consumers import connect, receive_until

# Seconds of work each: in `make test` and CI, not in the `make check` inner loop.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _section_of(frame: str, pk: Any) -> str | None:
    found = re.search(rf'id="cc-(needs|active|recent)-{pk}"', frame)
    return found.group(1) if found else None


def _quiet_since(pk: Any, ago: timedelta) -> None:
    AgentSession.objects.filter(pk=pk).update(last_activity_at=timezone.now() - ago)


async def test_a_quiet_chat_leaves_active_now_when_its_30_minutes_pass(world: Any) -> None:
    chat = await sync_to_async(f.make_session)(world.agent, world.owner, Kind.CHAT, title="Quiet")
    lively = await sync_to_async(f.make_session)(
        world.agent, world.owner, Kind.CHAT, title="Lively"
    )
    await sync_to_async(_quiet_since)(chat.pk, ACTIVE_CHAT_WINDOW - timedelta(seconds=2))
    communicator = await connect(world.owner, "view=none")
    snapshot = await communicator.receive_from(timeout=10)
    assert _section_of(snapshot, chat.pk) == "active"
    assert _section_of(snapshot, lively.pk) == "active"  # positive control
    moved = await receive_until(communicator, 'id="cc-panel-body"', timeout=8)
    assert _section_of(moved, chat.pk) == "recent"
    assert _section_of(moved, lively.pk) == "active"  # not yet its time
    await communicator.disconnect()


async def test_recent_lets_go_after_a_day(world: Any) -> None:
    old = await sync_to_async(f.make_session)(
        world.agent, world.owner, Kind.FLOW_RUN, status="completed", title="Yesterday"
    )
    await sync_to_async(_quiet_since)(old.pk, RECENT_WINDOW - timedelta(seconds=2))
    communicator = await connect(world.owner, "view=none")
    snapshot = await communicator.receive_from(timeout=10)
    assert _section_of(snapshot, old.pk) == "recent"
    moved = await receive_until(communicator, 'id="cc-panel-body"', timeout=8)
    assert _section_of(moved, old.pk) is None
    await communicator.disconnect()

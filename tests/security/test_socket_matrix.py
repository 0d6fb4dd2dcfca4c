"""The authorisation matrix over the sockets: dashboard snapshots (list and detail) and pushes,
the runtime command socket. Negative push assertions have their positive control in the same
test (the owner's socket, the runtime of the sessions' agent)."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import AnonymousUser

from sessions_app import services
from sessions_app.selectors import HIDDEN_TITLE
from tests.security import sockets
from tests.security.world import OBJECTS, PEOPLE, Cells, MatrixWorld, build

# Seconds of work each: in `make test` and CI, not in the `make check` inner loop.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _fast_broadcast(settings: Any) -> None:
    settings.SCC_BROADCAST_COALESCE_MS = 10


def leaks(text: str, w: MatrixWorld, sees: frozenset[str]) -> list[str]:
    return [
        name
        for name in OBJECTS
        if name not in sees and (str(w.objects[name].pk) in text or w.objects[name].title in text)
    ]


async def test_dashboard_snapshots_and_pushes(w_async: MatrixWorld) -> None:
    w = w_async
    cells = Cells()
    lists: dict[str, Any] = {}
    for persona, (sees, _acts) in PEOPLE.items():
        user = w.users[persona]
        if user is None:
            socket = await sockets.dashboard(AnonymousUser(), "view=list")
            got = await socket.receive_output(timeout=5)
            cells.expect("anonymous list socket", got.get("code"), 4401)
            continue
        socket = await sockets.dashboard(user, "view=list")
        snapshot = await socket.receive_from(timeout=5)
        for name, s in w.objects.items():
            cells.expect(f"{persona} snapshot {name}", f"session-{s.pk}" in snapshot, name in sees)
        cells.expect(f"{persona} snapshot leaks", leaks(snapshot, w, sees), [])
        lists[persona] = socket
        for name, s in w.objects.items():
            detail = await sockets.dashboard(user, f"view=detail&session={s.pk}")
            first = await detail.receive_output(timeout=5)
            where = f"{persona} detail socket {name}"
            if name in sees:
                text = first.get("text", "")
                cells.require(where, 'id="detail-header"' in text, f"no snapshot: {first}")
                cells.expect(f"{where} leaks", leaks(text, w, sees), [])
                await detail.disconnect()
            else:
                cells.expect(where, first.get("code"), 4404)
    # A detail view of the spawned task, open for a developer, while its parent chat is hidden.
    developer_detail = await sockets.dashboard(
        w.users["developer"], f"view=detail&session={w.objects['spawned'].pk}"
    )
    await developer_detail.receive_from(timeout=5)

    for s in w.objects.values():
        await sync_to_async(services.events_record)(
            session=s,
            events=[services.EventIn(f"push-{s.pk}", "message", {"role": "agent", "text": "tick"})],
            actor="rt",
        )
    heard: dict[str, str] = {}
    for persona, socket in lists.items():
        sees = PEOPLE[persona][0]
        text = "".join(t for t in await sockets.frames(socket) if isinstance(t, str))
        heard[persona] = text
        for name, s in w.objects.items():
            cells.expect(f"{persona} push {name}", str(s.pk) in text, name in sees)
        cells.expect(f"{persona} push leaks", leaks(text, w, sees), [])
        await socket.disconnect()
    # The positive control of every negative above: the same pushes reached the owner.
    assert all(str(s.pk) in heard["owner"] for s in w.objects.values())
    pushed = "".join(t for t in await sockets.frames(developer_detail) if isinstance(t, str))
    cells.require("developer detail push", "tick" in pushed, "the detail push did not arrive")
    cells.require("developer detail push", HIDDEN_TITLE in pushed, "no hidden placeholder")
    cells.expect("developer detail push leaks", leaks(pushed, w, PEOPLE["developer"][0]), [])
    await developer_detail.disconnect()
    cells.done()


async def test_runtime_socket(w_async: MatrixWorld) -> None:
    w = w_async
    cells = Cells()
    refused = {"rt_revoked": 4401, "owner": 4403, "anonymous": 4401, "stranger": 4401}
    for persona, code in refused.items():
        socket = await sockets.runtime(w.tokens[persona])
        got = await socket.receive_output(timeout=5)
        cells.expect(f"{persona} runtime socket", got.get("code"), code)
    this = await sockets.runtime(w.tokens["rt_this"])
    other = await sockets.runtime(w.tokens["rt_other"])
    for s in w.objects.values():
        await sync_to_async(services.message_send)(session=s, user=w.users["owner"], text="hello")
    got_this = {c["session_id"] for c in sockets.commands(await sockets.frames(this))}
    got_other = sockets.commands(await sockets.frames(other))
    # Positive control first: the runtime of the sessions' agent hears every command.
    cells.expect("rt_this commands", got_this, {str(s.pk) for s in w.objects.values()})
    cells.expect("rt_other commands", got_other, [])
    await this.disconnect()
    await other.disconnect()
    cells.done()


@pytest.fixture
def w_async(transactional_db: Any) -> MatrixWorld:
    return build()

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from sessions_app import services, states
from tests import factories as f
from tests.api.conftest import error

pytestmark = pytest.mark.django_db


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [s["id"] for s in response.json()["items"]]


def test_it_lists_live_sessions_first_then_most_recently_active(world: Any, personal: Any) -> None:
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        old_live = f.make_session(world.agent, world.owner, status="running")
    with time_machine.travel(start + timedelta(minutes=1), tick=False):
        ended = f.make_session(world.agent, world.owner, status="completed")
    with time_machine.travel(start + timedelta(minutes=2), tick=False):
        new_live = f.make_session(world.agent, world.owner)
    assert ids(personal(world.owner).get("/sessions")) == [
        str(new_live.pk),
        str(old_live.pk),
        str(ended.pk),
    ]


def test_it_pages_with_a_keyset_cursor(world: Any, personal: Any) -> None:
    made = [f.make_session(world.agent, world.owner) for _ in range(5)]
    api = personal(world.owner)
    seen: list[str] = []
    cursor = ""
    for _ in range(5):
        page = api.get("/sessions", {"limit": 2, "cursor": cursor}).json()
        seen += [s["id"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(str(s.pk) for s in made)
    assert len(seen) == 5


@pytest.mark.parametrize(
    "cursor", ["garbage", "WzEsMiwzXQ", "W3RydWUsICIyMDI0LTAxLTAxVDAwOjAwOjAwKzAwOjAwIiwgNV0"]
)
def test_a_bad_cursor_is_a_422(world: Any, personal: Any, cursor: str) -> None:
    response = personal(world.owner).get("/sessions", {"cursor": cursor})
    assert response.status_code == 422
    assert error(response)["field"] == "cursor"


def test_it_filters_by_every_facet(world: Any, personal: Any) -> None:
    initiative = f.make_initiative(world.tenant)
    other_agent = f.make_agent(world.other_project, world.agent_owner, name="searcher")
    flow = f.make_session(world.agent, world.owner, title="Nightly sync", initiative=initiative)
    task = f.make_session(world.agent, world.developer, "background_task")
    chat = f.make_session(world.agent, world.owner, "chat")
    failed = f.make_session(world.agent, world.owner, status="failed")
    elsewhere = f.make_session(other_agent, world.admin)
    api = personal(world.admin)

    assert set(ids(api.get("/sessions", {"kind": "background_task"}))) == {str(task.pk)}
    assert set(ids(api.get("/sessions", {"owner": str(world.developer.pk)}))) == {str(task.pk)}
    assert set(ids(api.get("/sessions", {"owner": "me"}))) == {str(elsewhere.pk)}
    assert set(ids(api.get("/sessions", {"initiative": initiative.pk}))) == {str(flow.pk)}
    assert set(ids(api.get("/sessions", {"group": "problem"}))) == {str(failed.pk)}
    assert set(ids(api.get("/sessions", {"agent": other_agent.pk}))) == {str(elsewhere.pk)}
    assert set(ids(api.get("/sessions", {"project": world.other_project.pk}))) == {
        str(elsewhere.pk)
    }
    assert set(ids(api.get("/sessions", {"q": "nightly"}))) == {str(flow.pk)}
    assert set(ids(api.get("/sessions", {"q": f"#{chat.short_id}"}))) == {str(chat.pk)}
    active = set(ids(api.get("/sessions", {"active": "true"})))
    assert str(failed.pk) not in active
    assert str(flow.pk) in active


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"kind": "meeting"}, "kind"),
        ({"group": "sad"}, "group"),
        ({"owner": "someone"}, "owner"),
        ({"agent": "x"}, "agent"),
        ({"agent": str(10**40)}, "agent"),
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"q": "nul\x00"}, "q"),
        ({"active": "maybe"}, "active"),
    ],
)
def test_bad_list_parameters_are_422(
    world: Any, personal: Any, params: dict[str, Any], field: str
) -> None:
    response = personal(world.owner).get("/sessions", params)
    assert response.status_code == 422
    assert error(response)["field"] == field


def test_personas_see_what_design_section_7_says(world: Any, personal: Any) -> None:
    flow = f.make_session(world.agent, world.owner)
    chat = f.make_session(world.agent, world.owner, "chat")
    everything = {str(flow.pk), str(chat.pk)}
    assert set(ids(personal(world.owner).get("/sessions"))) == everything
    assert set(ids(personal(world.agent_owner).get("/sessions"))) == everything
    assert set(ids(personal(world.admin).get("/sessions"))) == everything
    # Project developers see flow runs and tasks, not chats.
    assert set(ids(personal(world.developer).get("/sessions"))) == {str(flow.pk)}
    assert ids(personal(world.outsider).get("/sessions")) == []
    assert personal(world.developer).get(f"/sessions/{chat.pk}").status_code == 404
    assert personal(world.outsider).get(f"/sessions/{flow.pk}").status_code == 404


def test_it_reads_one_session(world: Any, personal: Any) -> None:
    session = f.make_session(world.agent, world.owner, status="running")
    data = personal(world.owner).get(f"/sessions/{session.pk}").json()
    assert data["id"] == str(session.pk)
    assert data["status"] == "running"
    assert data["progress"]["text"] == "Not started"


@pytest.mark.parametrize("session_id", ["not-a-uuid", "1", "00000000-0000-0000-0000-00000000000g"])
def test_a_malformed_session_id_is_a_422(world: Any, personal: Any, session_id: str) -> None:
    response = personal(world.owner).get(f"/sessions/{session_id}")
    assert response.status_code == 422
    assert error(response)["field"] == "session_id"


def test_an_unknown_session_is_a_404(world: Any, personal: Any) -> None:
    response = personal(world.owner).get("/sessions/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404
    assert error(response)["code"] == "not_found"


def test_it_reads_the_transcript_after_a_seq(world: Any, personal: Any) -> None:
    session = f.make_session(world.agent, world.owner, status="running")
    services.events_record(
        session=session,
        events=[services.EventIn(f"e{i}", "thinking", {"text": f"t{i}"}) for i in range(5)],
        actor="test",
    )
    api = personal(world.owner)
    data = api.get(f"/sessions/{session.pk}/events").json()
    seqs = [e["seq"] for e in data["items"]]
    # created (pending), running, then the five thoughts
    assert seqs == [1, 2, 3, 4, 5, 6, 7]
    assert [e["payload"].get("text") for e in data["items"][2:4]] == ["t0", "t1"]
    assert data["last_seq"] == 7
    assert data["next_after"] is None
    page = api.get(f"/sessions/{session.pk}/events", {"after": 3, "limit": 2}).json()
    assert [e["seq"] for e in page["items"]] == [4, 5]
    assert page["next_after"] == 5
    assert api.get(f"/sessions/{session.pk}/events", {"after": 10**30}).status_code == 422
    assert api.get(f"/sessions/{session.pk}/events", {"after": -1}).status_code == 422


def test_it_lists_a_sessions_commands(world: Any, personal: Any) -> None:
    session = f.make_session(world.agent, world.owner, status="running")
    services.session_pause(session=session, user=world.owner)
    items = personal(world.owner).get(f"/sessions/{session.pk}/commands").json()["items"]
    assert [(c["kind"], c["status"]) for c in items] == [("pause", "queued")]
    assert session.status == states.Status.PAUSED

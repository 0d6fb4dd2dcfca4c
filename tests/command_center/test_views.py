from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from sessions_app import services
from sessions_app.models import AgentSession, RuntimeCommand, SessionEvent
from sessions_app.states import Kind
from tests import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner_client(client, world):
    client.force_login(world.owner)
    return client


def test_the_home_page_needs_a_login(client) -> None:
    resp = client.get("/", follow=True)
    assert resp.redirect_chain[-1][0].startswith("/accounts/login/")


def test_the_sessions_page_lists_visible_sessions_only(owner_client, world) -> None:
    mine = f.make_session(world.agent, world.owner, Kind.FLOW_RUN, title="Mine to see")
    f.make_session(world.other_agent, world.other_admin, Kind.FLOW_RUN, title="Other tenant")
    f.make_session(world.agent, world.developer, Kind.CHAT, title="Someone's chat")
    body = owner_client.get(reverse("sessions")).content.decode()
    assert "Mine to see" in body
    assert f"#{mine.short_id}" in body
    assert "Other tenant" not in body
    assert "Someone&#x27;s chat" not in body


def test_rows_show_progress_status_and_error(owner_client, world) -> None:
    s = f.make_session(world.agent, world.owner, Kind.FLOW_RUN, status="running")
    services.events_record(
        session=s,
        events=[
            services.EventIn(
                "s", "step", {"state": "started", "name": "Build", "index": 2, "total": 5}
            ),
            services.EventIn(
                "x",
                "status_change",
                {"to": "failed", "error": {"code": "boom", "message": "Disk full on runner"}},
            ),
        ],
        actor="rt",
    )
    body = owner_client.get(reverse("sessions")).content.decode()
    assert "Step 2 of 5" in body
    assert 'value="40"' in body
    assert "badge-problem" in body
    assert "Disk full on runner" in body


def test_filters_live_in_the_url(owner_client, world) -> None:
    f.make_session(world.agent, world.owner, Kind.FLOW_RUN, title="A flow")
    f.make_session(world.agent, world.owner, Kind.CHAT, title="A chat")
    body = owner_client.get(reverse("sessions") + "?kind=chat").content.decode()
    assert "A chat" in body
    assert "A flow" not in body
    assert "ws/command-center/?kind=chat&amp;view=list" in body


@pytest.mark.parametrize("query", ["kind=meeting", "group=weird", "agent=abc", "owner=-1"])
def test_a_bad_filter_is_a_400_that_says_what_is_wrong(owner_client, query) -> None:
    resp = owner_client.get(reverse("sessions") + "?" + query)
    assert resp.status_code == 400
    assert query.split("=")[0] in resp.content.decode()


def test_load_more_pages_by_keyset(owner_client, world) -> None:
    for i in range(55):
        f.make_session(world.agent, world.owner, Kind.BACKGROUND_TASK, title=f"task {i:02d}")
    first = owner_client.get(reverse("sessions")).content.decode()
    assert first.count('class="row ') == 50
    cursor = first.split("cursor=")[1].split('"')[0]
    more = owner_client.get(
        reverse("sessions") + f"?cursor={cursor}", HTTP_HX_REQUEST="true"
    ).content.decode()
    assert more.count('class="row ') == 5
    assert "That is everything" in more
    bad = owner_client.get(reverse("sessions") + "?cursor=zzz", HTTP_HX_REQUEST="true")
    assert bad.status_code == 400


def _queries(client: Any, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize("url_name", ["sessions", "panel"])
def test_query_count_does_not_grow_with_rows(owner_client, world, url_name) -> None:
    url = reverse(url_name)
    for kind in (Kind.FLOW_RUN, Kind.CHAT, Kind.BACKGROUND_TASK):
        f.make_session(world.agent, world.owner, kind, status="running")
    few = _queries(owner_client, url)
    for i in range(30):
        kind = (Kind.FLOW_RUN, Kind.CHAT, Kind.BACKGROUND_TASK)[i % 3]
        f.make_session(world.agent, world.owner, kind, status="running" if i % 2 else None)
    many = _queries(owner_client, url)
    assert many == few


def test_detail_views_render_each_kind(owner_client, world) -> None:
    flow = f.make_session(world.agent, world.owner, Kind.FLOW_RUN, status="running")
    services.events_record(
        session=flow,
        events=[
            services.EventIn(
                "a", "step", {"state": "completed", "name": "Fetch", "index": 1, "total": 3}
            ),
            services.EventIn(
                "b", "step", {"state": "started", "name": "Build", "index": 2, "total": 3}
            ),
        ],
        actor="rt",
    )
    body = owner_client.get(reverse("session_detail", args=[flow.pk])).content.decode()
    assert "step-done" in body
    assert "Fetch" in body
    assert "step-current" in body
    assert "Build" in body

    parent = f.make_session(world.agent, world.owner, Kind.CHAT)
    task = f.make_session(
        world.agent, world.owner, Kind.BACKGROUND_TASK, status="running", parent=parent
    )
    body = owner_client.get(reverse("session_detail", args=[task.pk])).content.decode()
    assert "State history" in body
    assert "Spawned from" in body

    services.events_record(
        session=parent,
        events=[
            services.EventIn("m", "message", {"role": "user", "text": "Fix the timeout"}),
            services.EventIn(
                "t", "tool_call", {"name": "grep", "arguments": {"q": "timeout"}, "call_id": "c1"}
            ),
            services.EventIn("r", "tool_result", {"call_id": "c1", "output": "config.yaml:3"}),
            services.EventIn(
                "e", "file_edit", {"path": "config.yaml", "before": "t: 5\n", "after": "t: 15\n"}
            ),
        ],
        actor="rt",
    )
    body = owner_client.get(reverse("session_detail", args=[parent.pk])).content.decode()
    assert "Fix the timeout" in body
    assert 'id="composer"' in body
    assert "config.yaml:3" in body  # the result is folded into its call's block
    assert body.count("Tool result") == 0
    assert 'class="d-del">-t: 5' in body
    assert 'class="d-add">+t: 15' in body
    assert "Spawned sessions" in body
    assert task.title in body


def test_an_invisible_session_is_a_404(owner_client, world) -> None:
    theirs = f.make_session(world.other_agent, world.other_admin, Kind.FLOW_RUN)
    chat = f.make_session(world.agent, world.developer, Kind.CHAT)
    for s in (theirs, chat):
        assert owner_client.get(reverse("session_detail", args=[s.pk])).status_code == 404
        assert owner_client.post(reverse("session_action", args=[s.pk, "pause"])).status_code == 404
    assert owner_client.get(reverse("session_detail", args=["nope"])).status_code == 404


def test_actions_change_state_and_return_the_header(owner_client, world) -> None:
    s = f.make_session(world.agent, world.owner, Kind.FLOW_RUN, status="running")
    resp = owner_client.post(
        reverse("session_action", args=[s.pk, "pause"]), HTTP_HX_REQUEST="true"
    )
    assert resp.status_code == 200
    assert 'id="detail-header"' in resp.content.decode()
    assert "Resume" in resp.content.decode()
    s.refresh_from_db()
    assert s.status == "paused"
    assert RuntimeCommand.objects.filter(session=s, kind="pause").exists()


def test_an_illegal_action_is_a_409_with_a_message(owner_client, world) -> None:
    s = f.make_session(world.agent, world.owner, Kind.FLOW_RUN, status="completed")
    resp = owner_client.post(
        reverse("session_action", args=[s.pk, "pause"]), HTTP_HX_REQUEST="true"
    )
    assert resp.status_code == 409
    assert "cannot go from completed to paused" in resp.content.decode()


def test_a_viewer_who_may_not_act_gets_a_403_and_no_buttons(client, world) -> None:
    client.force_login(world.developer)
    s = f.make_session(world.agent, world.owner, Kind.FLOW_RUN, status="running")
    body = client.get(reverse("session_detail", args=[s.pk])).content.decode()
    assert "Pause</button>" not in body
    resp = client.post(reverse("session_action", args=[s.pk, "cancel"]), HTTP_HX_REQUEST="true")
    assert resp.status_code == 403
    s.refresh_from_db()
    assert s.status == "running"


def test_the_composer_sends_a_message_as_a_runtime_command(owner_client, world) -> None:
    s = f.make_session(world.agent, world.owner, Kind.CHAT)
    resp = owner_client.post(
        reverse("session_message", args=[s.pk]), {"text": "Ship it"}, HTTP_HX_REQUEST="true"
    )
    assert resp.status_code == 200
    assert "Sent to the runtime" in resp.content.decode()
    assert RuntimeCommand.objects.get(session=s).payload == {"text": "Ship it"}
    assert SessionEvent.objects.filter(session=s, type="message", payload__text="Ship it").exists()
    empty = owner_client.post(
        reverse("session_message", args=[s.pk]), {"text": "  "}, HTTP_HX_REQUEST="true"
    )
    assert empty.status_code == 422
    assert "must not be empty" in empty.content.decode()


def test_long_transcripts_are_paged_by_seq(owner_client, world) -> None:
    s = f.make_session(world.agent, world.owner, Kind.CHAT)
    services.events_record(
        session=s,
        events=[
            services.EventIn(f"e{i}", "thinking", {"text": f"thought {i}"}) for i in range(250)
        ],
        actor="rt",
    )
    body = owner_client.get(reverse("session_detail", args=[s.pk])).content.decode()
    assert body.count('class="ev ') == 100
    assert "Load earlier events" in body
    first_shown = min(int(x.split('"')[0]) for x in body.split('data-seq="')[1:])
    older = owner_client.get(
        reverse("session_events", args=[s.pk]) + f"?before={first_shown}"
    ).content.decode()
    assert older.count('class="ev ') == 100
    assert owner_client.get(reverse("session_events", args=[s.pk]) + "?before=x").status_code == 400


def test_export_is_the_redacted_transcript(owner_client, world) -> None:
    s = f.make_session(world.agent, world.owner, Kind.CHAT)
    secret = "sk-ant-" + "api03-" + "x1Y2" * 12
    services.events_record(
        session=s,
        events=[services.EventIn("k", "tool_result", {"output": f"key {secret}"})],
        actor="rt",
    )
    resp = owner_client.get(reverse("session_export", args=[s.pk]))
    text = b"".join(resp.streaming_content).decode()
    data = json.loads(text)
    assert resp["Content-Disposition"].startswith("attachment;")
    assert [e["seq"] for e in data["events"]] == [1, 2]
    assert "[REDACTED:anthropic_key]" in text
    assert secret not in text


def test_a_deleted_session_is_gone_with_its_events(owner_client, world) -> None:
    s = f.make_session(world.agent, world.owner, Kind.CHAT)
    services.session_delete(session=s, user=world.owner)
    assert not AgentSession.objects.filter(pk=s.pk).exists()
    assert not SessionEvent.objects.filter(session_id=s.pk).exists()


def test_clone_opens_a_fresh_session_with_the_same_settings(owner_client, world) -> None:
    s = f.make_session(world.agent, world.owner, Kind.FLOW_RUN, status="completed", title="Nightly")
    resp = owner_client.post(reverse("session_clone", args=[s.pk]), HTTP_HX_REQUEST="true")
    clone = AgentSession.objects.get(cloned_from=s)
    assert resp["HX-Redirect"] == reverse("session_detail", args=[clone.pk])
    assert (clone.status, clone.title, clone.owner) == ("pending", "Nightly (clone)", world.owner)


def test_transfer_hands_the_session_to_a_named_member(owner_client, world) -> None:
    s = f.make_session(world.agent, world.owner, Kind.FLOW_RUN, status="running")
    resp = owner_client.post(
        reverse("session_transfer", args=[s.pk]), {"to": "developer"}, HTTP_HX_REQUEST="true"
    )
    successor = AgentSession.objects.get(transferred_from=s)
    assert resp["HX-Redirect"] == reverse("session_detail", args=[successor.pk])
    assert successor.owner == world.developer
    s.refresh_from_db()
    assert (s.status, s.stop_reason) == ("stopped", "transfer")


def test_transfer_to_a_stranger_is_a_422_naming_them(owner_client, world) -> None:
    s = f.make_session(world.agent, world.owner, Kind.FLOW_RUN, status="running")
    resp = owner_client.post(
        reverse("session_transfer", args=[s.pk]), {"to": "other_admin"}, HTTP_HX_REQUEST="true"
    )
    assert resp.status_code == 422
    assert "other_admin" in resp.content.decode()
    assert not AgentSession.objects.filter(transferred_from=s).exists()


def test_delete_needs_the_right_to_act(client, world) -> None:
    s = f.make_session(world.agent, world.owner, Kind.FLOW_RUN, status="running")
    client.force_login(world.developer)
    resp = client.post(reverse("session_delete", args=[s.pk]), HTTP_HX_REQUEST="true")
    assert resp.status_code == 403
    assert AgentSession.objects.filter(pk=s.pk).exists()
    client.force_login(world.owner)
    resp = client.post(reverse("session_delete", args=[s.pk]), HTTP_HX_REQUEST="true")
    assert resp["HX-Redirect"] == reverse("sessions")
    assert not AgentSession.objects.filter(pk=s.pk).exists()


def test_usage_shows_on_rows_detail_and_export(owner_client, world) -> None:
    s = f.make_session(world.agent, world.owner, Kind.FLOW_RUN, status="running")
    quiet = f.make_session(world.agent, world.owner, Kind.FLOW_RUN, title="No usage yet")
    services.events_record(
        session=s,
        events=[
            services.EventIn("u1", "usage", {"tokens_in": 12000, "tokens_out": 345, "cost": "1.5"})
        ],
    )
    listing = owner_client.get(reverse("sessions")).content.decode()
    row = listing.split(f'id="session-{s.pk}"')[1].split("</a>")[0]
    assert "$1.50" in row
    assert "12.3k tok" in row
    quiet_row = listing.split(f'id="session-{quiet.pk}"')[1].split("</a>")[0]
    assert "tok</span>" not in quiet_row  # control: no usage, no figure
    detail = owner_client.get(reverse("session_detail", args=[s.pk])).content.decode()
    assert "<dt>Tokens in</dt><dd>12000</dd>" in detail
    assert "<dt>Cost</dt>" in detail
    assert "Usage · 12000 tokens in · 345 out" in detail  # the transcript line
    export = owner_client.get(reverse("session_export", args=[s.pk])).json()
    assert export["session"]["usage"] == {"tokens_in": 12000, "tokens_out": 345, "cost": "1.500000"}


def test_the_list_sorts_by_cost(owner_client, world) -> None:
    dear = f.make_session(world.agent, world.owner, Kind.FLOW_RUN, title="Dear one")
    cheap = f.make_session(world.agent, world.owner, Kind.FLOW_RUN, title="Cheap one")
    AgentSession.objects.filter(pk=cheap.pk).update(cost="0.10")
    AgentSession.objects.filter(pk=dear.pk).update(cost="9.00")
    body = owner_client.get(reverse("sessions"), {"sort": "cost"}).content.decode()
    assert body.index("Dear one") < body.index("Cheap one")
    default = owner_client.get(reverse("sessions")).content.decode()
    assert default.index("Cheap one") < default.index("Dear one")  # control: most recent first
    assert owner_client.get(reverse("sessions"), {"sort": "price"}).status_code == 400

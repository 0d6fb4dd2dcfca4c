"""What keeps the dashboard usable on a busy session (issue: a live dashboard that holds still):
dialogs outside the pushed header, what matters on the row, readable lines, a real 404."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from command_center import fragments
from sessions_app import services
from sessions_app.models import AgentSession
from sessions_app.states import Kind
from tests import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client: Any, world: Any) -> Any:
    client.force_login(world.admin)
    return client


def test_dialogs_live_outside_the_header_that_pushes_replace(admin_client: Any, world: Any) -> None:
    s = f.make_session(world.agent, world.owner, Kind.FLOW_RUN, status="running")
    page = admin_client.get(reverse("session_detail", args=[s.pk])).content.decode()
    header = re.search(r'<header id="detail-header".*?</header>', page, re.S)
    assert header is not None
    for dialog in ("cancel-dialog", "transfer-dialog", "delete-dialog"):
        assert f'<dialog id="{dialog}"' in page
        assert f'<dialog id="{dialog}"' not in header.group(0)
        assert f'data-dialog="{dialog}"' in header.group(0)  # the button that opens it
    pushed = fragments.header_html(world.admin, s)
    assert "<dialog" not in pushed
    assert 'data-dialog="cancel-dialog"' in pushed


def test_a_running_sessions_row_shows_its_error_and_stall_reason(
    admin_client: Any, world: Any
) -> None:
    s = f.make_session(world.agent, world.owner, Kind.FLOW_RUN, status="running")
    services.events_record(
        session=s,
        events=[
            services.EventIn("e", "error", {"code": "rate", "message": "Rate limited, retrying"})
        ],
    )
    quiet = f.make_session(world.agent, world.owner, Kind.BACKGROUND_TASK, status="running")
    AgentSession.objects.filter(pk=quiet.pk).update(stalled=True, stall_reason="no event for 2 min")
    body = admin_client.get(reverse("sessions")).content.decode()
    assert "Rate limited, retrying" in body
    assert "stalled: no event for 2 min" in body


def test_agent_status_reads_as_words(admin_client: Any, world: Any) -> None:
    s = f.make_session(world.agent, world.owner, Kind.CHAT)
    services.events_record(
        session=s, events=[services.EventIn("a", "agent_status", {"status": "waiting_input"})]
    )
    page = admin_client.get(reverse("session_detail", args=[s.pk])).content.decode()
    assert "Agent is <strong>waiting for input</strong>" in page
    assert "waitinginput" not in page


def test_the_expiry_window_is_a_setting(admin_client: Any, world: Any, settings: Any) -> None:
    s = f.make_session(world.agent, world.owner, Kind.FLOW_RUN)
    AgentSession.objects.filter(pk=s.pk).update(
        expires_at=timezone.now() + timedelta(days=29, hours=23)
    )
    url = reverse("session_detail", args=[s.pk])
    assert "expires in" not in admin_client.get(url).content.decode()  # default: a week
    settings.SCC_EXPIRY_WARNING_DAYS = 30
    assert "expires in 30 days" in admin_client.get(url).content.decode()


def test_a_missing_page_is_the_styled_404(admin_client: Any) -> None:
    response = admin_client.get("/sessions/00000000-0000-0000-0000-000000000000/")
    assert response.status_code == 404
    body = response.content.decode()
    assert "Back to sessions" in body
    assert 'class="topbar"' in body


def _sections(user: Any) -> dict[str, set[Any]]:
    from sessions_app import selectors

    panel = selectors.command_center_panel(user)
    return {name: {s.pk for s in section.items} for name, section in panel.items()}


def test_needs_you_is_exactly_what_the_viewer_may_act_on(world: Any) -> None:
    from command_center.broadcast import summary_for
    from command_center.filters import panel_section
    from sessions_app import selectors

    waiting = f.make_session(world.agent, world.owner, Kind.FLOW_RUN, status="waiting_input")
    paused = f.make_session(world.agent, world.owner, Kind.BACKGROUND_TASK, status="paused")
    stalled = f.make_session(world.agent, world.owner, Kind.BACKGROUND_TASK, status="running")
    AgentSession.objects.filter(pk=stalled.pk).update(stalled=True, stall_reason="no event")
    idle_chat = f.make_session(world.agent, world.owner, Kind.CHAT, status="idle")
    asking = f.make_session(world.agent, world.owner, Kind.CHAT)
    services.events_record(
        session=asking, events=[services.EventIn("q", "agent_status", {"status": "waiting_input"})]
    )
    working = f.make_session(world.agent, world.owner, Kind.FLOW_RUN, status="running")
    waits = {waiting.pk, paused.pk, stalled.pk, idle_chat.pk, asking.pk}

    owner = _sections(world.owner)  # owns them all: may act on every one
    assert owner["needs"] == waits
    assert working.pk in owner["active"]
    # A developer sees the project's runs and tasks but may not act: nothing needs them.
    developer = _sections(world.developer)
    assert developer["needs"] == set()
    assert {waiting.pk, paused.pk, stalled.pk} <= developer["active"]
    # A maintainer may act on runs and tasks, not on someone's chats (which they cannot see).
    maintainer = _sections(world.maintainer)
    assert maintainer["needs"] == {waiting.pk, paused.pk, stalled.pk}
    assert selectors.command_center_counts(world.maintainer)["needs"] == 3

    # The live push places each session where a reload would, for each viewer.
    for viewer in (world.owner, world.developer, world.maintainer, world.admin):
        access = selectors.access_for(viewer)
        shown = _sections(viewer)
        for s in AgentSession.objects.all():
            summary = summary_for(s)
            if not selectors.may_view(access, **selectors.session_facts(s)):
                continue
            can_act = selectors.may_act(access, **selectors.session_facts(s))
            section = panel_section(summary, can_act=can_act)
            expected = next((name for name, ids in shown.items() if s.pk in ids), None)
            assert section == expected, (viewer, s.title, section, expected)


def test_reply_shows_for_a_chat_whose_agent_waits_for_an_answer(world: Any) -> None:
    chat = f.make_session(world.agent, world.owner, Kind.CHAT)
    services.events_record(
        session=chat, events=[services.EventIn("q", "agent_status", {"status": "waiting_input"})]
    )
    body = fragments.panel_body_html(world.owner)
    item = re.search(rf'<div id="cc-needs-{chat.pk}".*?</div>\s*</div>', body, re.S)
    assert item is not None
    assert "Reply" in item.group(0)

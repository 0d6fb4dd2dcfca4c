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

"""The bulk endpoints of the Sessions page: dry run, start, progress, abort."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.urls import reverse

from sessions_app import services, tasks
from sessions_app.models import AgentSession, BulkRun, BulkStatus
from sessions_app.states import Kind
from tests import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client: Any, world: Any) -> Any:
    client.force_login(world.admin)
    return client


def _cells(body: str, action: str) -> tuple[int, int]:
    row = re.search(rf'data-action="{action}">(.*?)</tr>', body, re.S)
    assert row is not None, body
    change = re.search(r"data-change>(\d+)<", row.group(1))
    skip = re.search(r"data-skip>(\d+)<", row.group(1))
    assert change is not None
    assert skip is not None
    return int(change.group(1)), int(skip.group(1))


def test_the_page_counts_what_the_filter_matches(admin_client: Any, world: Any) -> None:
    for _ in range(3):
        f.make_session(world.agent, world.owner, Kind.FLOW_RUN, status="running")
    f.make_session(world.agent, world.owner, Kind.CHAT)
    body = admin_client.get(reverse("sessions"), {"kind": "flow_run"}).content.decode()
    assert re.search(r'id="match-count">3<', body)
    assert 'name="filter" value="kind=flow_run"' in body


def test_the_dry_run_counts_changes_and_skips_with_reasons(admin_client: Any, world: Any) -> None:
    f.make_session(world.agent, world.owner, Kind.FLOW_RUN, status="running")
    f.make_session(world.agent, world.owner, Kind.FLOW_RUN, status="failed")
    f.make_session(world.agent, world.owner, Kind.CHAT)
    resp = admin_client.post(reverse("bulk_preview"), {"scope": "filter", "filter": ""})
    body = resp.content.decode()
    assert resp.status_code == 200
    assert "3 sessions" in body
    assert _cells(body, "cancel") == (1, 2)  # the failed run (status) and the chat (kind)
    assert 'data-reason="kind"' in body
    assert 'data-reason="status"' in body
    assert _cells(body, "delete") == (3, 0)


def test_selected_rows_are_the_scope(admin_client: Any, world: Any) -> None:
    a = f.make_session(world.agent, world.owner, Kind.FLOW_RUN, status="running")
    f.make_session(world.agent, world.owner, Kind.FLOW_RUN, status="running")
    resp = admin_client.post(reverse("bulk_preview"), {"scope": "selected", "ids": [str(a.pk)]})
    assert _cells(resp.content.decode(), "pause") == (1, 0)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"scope": "selected"}, "ids"),
        ({"scope": "selected", "ids": ["nope"]}, "ids"),
        ({"scope": "filter", "filter": "kind=boat"}, "kind"),
    ],
)
def test_bad_scopes_are_400_naming_the_field(
    admin_client: Any, data: dict[str, Any], field: str
) -> None:
    resp = admin_client.post(reverse("bulk_preview"), data)
    assert resp.status_code == 400
    assert field in resp.content.decode()


def test_starting_a_run_queues_it_and_shows_progress(
    admin_client: Any,
    world: Any,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    s = f.make_session(world.agent, world.owner, Kind.FLOW_RUN, status="running")
    queued: list[str] = []
    monkeypatch.setattr(tasks.bulk_run, "delay", queued.append)
    with django_capture_on_commit_callbacks(execute=True):
        resp = admin_client.post(
            reverse("bulk_start"), {"action": "pause", "scope": "filter", "filter": ""}
        )
    assert resp.status_code == 200
    run = BulkRun.objects.get()
    assert queued == [str(run.pk)]
    assert 'hx-trigger="every 1s"' in resp.content.decode()  # polls while it runs
    services.bulk_execute(run_id=run.pk)
    done = admin_client.get(reverse("bulk_progress", args=[run.pk])).content.decode()
    assert 'data-status="done"' in done
    assert "every 1s" not in done  # and stops polling when done
    assert re.search(r"data-changed>1<", done)
    assert AgentSession.objects.get(pk=s.pk).status == "paused"


def test_abort_and_other_peoples_runs(admin_client: Any, client: Any, world: Any) -> None:
    f.make_session(world.agent, world.owner, Kind.FLOW_RUN, status="running")
    run = services.bulk_start(user=world.admin, action="pause", flt=None, ids=[])
    resp = admin_client.post(reverse("bulk_abort", args=[run.pk]))
    assert resp.status_code == 200
    assert BulkRun.objects.get(pk=run.pk).status == BulkStatus.ABORTED
    client.force_login(world.owner)
    assert client.get(reverse("bulk_progress", args=[run.pk])).status_code == 404
    assert client.post(reverse("bulk_abort", args=[run.pk])).status_code == 404


def test_an_unknown_action_is_400(admin_client: Any) -> None:
    resp = admin_client.post(reverse("bulk_start"), {"action": "explode", "scope": "filter"})
    assert resp.status_code == 400
    assert "action" in resp.content.decode()

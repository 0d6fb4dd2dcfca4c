"""Bulk actions and Insights in a real browser: an operator cancels every stalled run of one
agent after seeing the count and watches the run's progress live; the Insights page draws its
plots (light and dark) and follows new sessions without a reload."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
from playwright.sync_api import Page, expect

from config.celery import app as celery_app
from sessions_app import services
from sessions_app.models import AgentSession, BulkRun
from sessions_app.states import Kind
from tests import factories as f
from tests.browser.conftest import screenshot, wait_until_live
from tests.conftest import World

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

OpenPage = Callable[..., Page]


@pytest.fixture(autouse=True)
def _no_leftover_tasks() -> Iterator[None]:
    # The page queues the run on the broker; no worker runs in these tests (the test does the
    # worker's part, step by step), so take the queued message away afterwards.
    yield
    celery_app.control.purge()


def _usage(session: AgentSession, eid: str, cost: str) -> None:
    services.events_record(
        session=session,
        events=[
            services.EventIn(eid, "usage", {"tokens_in": 900, "tokens_out": 100, "cost": cost})
        ],
    )


def test_cancel_every_stalled_run_of_an_agent_with_live_progress(
    open_page: OpenPage, world: World
) -> None:
    stalled = []
    for i in range(6):
        s = f.make_session(
            world.agent, world.owner, Kind.FLOW_RUN, status="running", title=f"Import {i}"
        )
        AgentSession.objects.filter(pk=s.pk).update(stalled=True, stall_reason="no output")
        stalled.append(s)
    other = f.make_agent(world.project, world.agent_owner, name="other")
    f.make_session(other, world.owner, Kind.FLOW_RUN, status="running")  # another agent
    f.make_session(world.agent, world.owner, Kind.FLOW_RUN, status="running")  # not stalled
    page = open_page(world.admin)
    page.goto(f"/sessions/?agent={world.agent.pk}&stalled=1")
    wait_until_live(page)
    expect(page.locator("#match-count")).to_have_text("6")
    expect(page.locator(".row")).to_have_count(6)

    # Ticking a row selects it without opening it; unticking goes back to the whole filter.
    page.locator(f"#session-{stalled[0].pk} .row-select").check()
    expect(page.locator("[data-selected-count]")).to_have_text("1")
    assert page.url.endswith("stalled=1")
    page.locator(f"#session-{stalled[0].pk} .row-select").uncheck()
    expect(page.locator('[data-bulk-scope="filter"]')).to_be_checked()

    # Two clicks: the dry run, then the action with its count.
    page.get_by_role("button", name="Bulk actions…").click()
    cancel_row = page.locator('tr[data-action="cancel"]')
    expect(cancel_row.locator("[data-change]")).to_have_text("6")
    expect(cancel_row.locator("[data-skip]")).to_have_text("0")
    expect(page.locator('tr[data-action="end"] [data-reason="kind"]')).to_contain_text("6")
    page.get_by_role("button", name="Cancel 6").click()
    progress = page.locator(".bulk-run")
    expect(progress.locator("[data-done]")).to_have_text("0")
    run = BulkRun.objects.get()
    assert run.total == 6

    # The worker's part, in two passes; the page follows each without a reload.
    services.bulk_execute(run_id=run.pk, max_items=3)
    expect(progress.locator("[data-done]")).to_have_text("3")
    expect(progress).to_have_attribute("data-status", "running")
    services.bulk_execute(run_id=run.pk)
    expect(progress).to_have_attribute("data-status", "done")
    expect(progress.locator("[data-changed]")).to_have_text("6")
    expect(progress.get_by_role("button", name="Abort")).to_have_count(0)
    # Cancelled runs are no longer stalled: they leave this filtered list live.
    expect(page.locator(".row")).to_have_count(0)
    assert AgentSession.objects.filter(status="cancelled").count() == 6


def test_abort_from_the_page_stops_the_run(open_page: OpenPage, world: World) -> None:
    for _ in range(4):
        f.make_session(world.agent, world.owner, Kind.FLOW_RUN, status="running")
    page = open_page(world.admin)
    page.goto("/sessions/")
    wait_until_live(page)
    page.get_by_role("button", name="Bulk actions…").click()
    page.get_by_role("button", name="Pause 4").click()
    expect(page.locator(".bulk-run [data-done]")).to_have_text("0")
    run = BulkRun.objects.get()
    services.bulk_execute(run_id=run.pk, max_items=1)
    expect(page.locator(".bulk-run [data-done]")).to_have_text("1")
    page.locator(".bulk-run").get_by_role("button", name="Abort").click()
    expect(page.locator(".bulk-run")).to_contain_text("(aborting)")
    services.bulk_execute(run_id=run.pk)
    expect(page.locator(".bulk-run")).to_have_attribute("data-status", "aborted")
    expect(page.locator(".bulk-run [data-done]")).to_have_text("1")
    assert AgentSession.objects.filter(status="paused").count() == 1


def test_the_insights_page_draws_and_follows_new_sessions(
    open_page: OpenPage, world: World
) -> None:
    done = f.make_session(world.agent, world.owner, Kind.FLOW_RUN, status="completed")
    failed = f.make_session(world.agent, world.owner, Kind.BACKGROUND_TASK, status="failed")
    chat = f.make_session(world.agent, world.owner, Kind.CHAT)
    f.make_session(world.agent, world.owner, Kind.FLOW_RUN, status="paused")
    _usage(done, "u1", "1.25")
    _usage(failed, "u2", "0.50")
    _usage(chat, "u3", "0.05")
    page = open_page(world.admin)
    page.goto("/insights/")
    expect(page.locator('[data-total="started"]')).to_have_attribute("data-value", "4")
    expect(page.locator('[data-total="failure_rate"]')).to_have_text("50%")
    expect(page.locator('[data-total="cost"]')).to_have_text("$1.80")
    expect(page.locator("figure.plot")).to_have_count(9)
    expect(page.locator("#plot-started svg rect")).to_have_count(3)
    expect(page.locator("#plot-failure svg text.value").last).to_have_text("50%")
    expect(page.locator("#plot-cost svg text.value").last).to_have_text("$1.80")
    # Every plot has its table.
    expect(page.locator("table.plot-table")).to_have_count(9)
    screenshot(page, "insights-light", full_page=True)

    # A new session with usage shows up within a refresh, without a reload.
    page.evaluate("window.__sameDocument = true")
    late = f.make_session(world.agent, world.owner, Kind.FLOW_RUN, status="running")
    _usage(late, "u4", "2")
    expect(page.locator('[data-total="started"]')).to_have_attribute("data-value", "5")
    cost = page.locator('[data-total="cost"]')
    expect(cost).to_have_text("$3.80")
    assert Decimal(cost.get_attribute("data-value") or "0") == Decimal("3.8")
    assert page.evaluate("window.__sameDocument === true")

    dark = open_page(world.admin, dark=True)
    dark.goto("/insights/")
    expect(dark.locator("figure.plot")).to_have_count(9)
    light_fill = page.evaluate(
        "getComputedStyle(document.querySelector('#plot-started rect')).fill"
    )
    dark_fill = dark.evaluate("getComputedStyle(document.querySelector('#plot-started rect')).fill")
    assert light_fill != dark_fill  # the plots follow the theme
    screenshot(dark, "insights-dark", full_page=True)

    # The strip on the Sessions page shows today's figures.
    page.goto("/sessions/")
    expect(page.locator('#insights-strip [data-strip="cost"]')).to_have_text("$3.80")
    expect(page.locator('#insights-strip [data-strip="failure_rate"]')).to_have_text(
        re.compile("50%")
    )

"""The main views with a realistic workspace reported through the API, checked and saved as
screenshots (test-artifacts/screenshots/; the reviewed set is copied to docs/screenshots/)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from playwright.sync_api import Page, expect

from sessions_app.runtime.client import RuntimeClient
from tests.browser.conftest import screenshot, wait_until_live
from tests.conftest import World

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

OpenPage = Callable[..., Page]

RELEASE_STEPS = [
    "Check out the release branch",
    "Run the test suite",
    "Build images",
    "Deploy to staging",
    "Deploy to production",
]


@dataclass
class Workspace:
    release: str  # a flow run waiting at a checkpoint, three of five steps done
    refund_chat: str  # a running chat
    reindex: str  # a running background task
    failed: str  # a failed flow run


def report_workspace(runtime: RuntimeClient, world: World) -> Workspace:
    """What a busy morning looks like, told by the runtime through the API."""
    agent = world.agent.pk

    def create(kind: str, owner: str, title: str, **metadata: str) -> str:
        created = runtime.create_session(
            kind=kind, agent=agent, owner=owner, title=title, metadata=metadata or None
        )
        return str(created["id"])

    nightly = create("flow_run", "maintainer", "Nightly warehouse import", origin="scheduled")
    b = runtime.batch(nightly)
    b.status("running")
    for i, name in enumerate(["Extract", "Transform", "Load"], start=1):
        b.step("started", name, index=i, total=3)
        b.step("completed", name, index=i, total=3)
    b.status("completed")
    b.usage(tokens_in=48210, tokens_out=5120, cost="0.221430")
    b.flush()

    failed = create("flow_run", "developer", "Migrate customer notes", repo="acme/crm")
    b = runtime.batch(failed)
    b.status("running")
    b.step("started", "Copy notes", index=1, total=2)
    b.status("failed", error={"code": "timeout", "message": "The CRM did not answer in 300 s."})
    b.usage(tokens_in=9120, tokens_out=800, cost="0.039360")
    b.flush()

    rotate = create("background_task", "admin", "Rotate API keys")
    b = runtime.batch(rotate)
    b.status("running")
    b.status("stopping")
    b.status("stopped")
    b.flush()

    notes = create("chat", "owner", "Draft the 2.4 release notes")
    b = runtime.batch(notes)
    b.message("user", "Draft release notes for 2.4 from the merged PRs.")
    b.message("agent", "Here is a draft with 14 changes grouped by area.")
    b.status("ended")
    b.flush()

    create("background_task", "developer", "Backfill invoice PDFs", origin="trigger")

    reindex = create("background_task", "owner", "Reindex the search cluster", runtime="k8s-runner")
    b = runtime.batch(reindex)
    b.status("provisioning")
    b.status("running", reason="sandbox ready")
    b.message("agent", "Reindexing 3 of 12 shards.")
    b.progress(turns=12)
    b.agent_status("working")
    b.usage(tokens_in=131000, tokens_out=22400, cost="0.729000")
    b.flush()

    refund = create("chat", "owner", "Refund window for annual plans")
    b = runtime.batch(refund)
    b.message("user", "What is the refund window for annual plans?")
    b.thinking("The policy lives in the billing handbook; look it up.")
    call = b.tool_call("search_docs", {"query": "refund annual plan"})
    b.tool_result(call, "Annual plans: full refund within 30 days.", name="search_docs")
    b.message("agent", "Annual plans can be refunded in full within 30 days of purchase.")
    b.message("user", "And after 30 days?")
    b.agent_status("working")
    b.usage(tokens_in=6300, tokens_out=1900, cost="0.047400")
    b.flush()

    release = create(
        "flow_run",
        "owner",
        "Release 2.4 to production",
        repo="acme/payments",
        branch="release/2.4",
        runtime="k8s-runner",
        origin="web",
    )
    b = runtime.batch(release)
    b.status("running")
    for i, name in enumerate(RELEASE_STEPS[:3], start=1):
        b.step("started", name, index=i, total=len(RELEASE_STEPS))
        if i == 2:
            call = b.tool_call("shell", {"cmd": "make test"})
            b.tool_result(call, "412 passed in 61.2s", name="shell")
        if i == 3:
            b.file_edit("deploy/values.yaml", "image: payments:2.3.9\n", "image: payments:2.4.0\n")
        b.step("completed", name, index=i, total=len(RELEASE_STEPS))
    b.step("started", RELEASE_STEPS[3], index=4, total=len(RELEASE_STEPS))
    b.checkpoint("awaiting", "Approve the production deploy")
    b.status("waiting_input", reason="checkpoint")
    b.usage(tokens_in=88400, tokens_out=12700, cost="0.455700")
    b.flush()

    return Workspace(release=release, refund_chat=refund, reindex=reindex, failed=failed)


def background_of(page: Page) -> str:
    return str(page.evaluate("getComputedStyle(document.body).backgroundColor"))


def test_the_main_views_show_a_realistic_workspace(
    open_page: OpenPage, world: World, runtime: RuntimeClient
) -> None:
    ws = report_workspace(runtime, world)
    page = open_page(world.admin)

    page.goto("/sessions/")
    wait_until_live(page)
    expect(page.locator("#rows-live .row")).to_have_count(4)
    expect(page.locator("#rows-rest .row")).to_have_count(4)
    expect(page.locator(f"#session-{ws.failed} .row-error")).to_contain_text("did not answer")
    expect(page.locator("#cc-badge")).to_have_text("1")  # the release waits on a person
    expect(page.locator("#insights-strip .strip-title")).to_be_visible()
    screenshot(page, "sessions-light")
    light = background_of(page)

    page.get_by_role("button", name=re.compile(r"^Command Center")).click()
    panel = page.locator("#cc-panel")
    expect(panel.locator(f"#cc-needs-{ws.release}")).to_contain_text("Release 2.4")
    expect(
        panel.locator(f"#cc-needs-{ws.release}").get_by_role("button", name="Approve")
    ).to_be_visible()
    expect(panel.locator(f"#cc-active-{ws.reindex}")).to_be_visible()
    expect(panel.locator("#cc-count-recent")).to_have_text("4")
    expect(panel.locator("#cc-insights .strip-title")).to_be_visible()
    screenshot(page, "panel")

    page.goto(f"/sessions/{ws.release}/")
    wait_until_live(page)
    expect(page.locator(".timeline .step")).to_have_count(len(RELEASE_STEPS))
    expect(page.get_by_role("region", name="Checkpoint")).to_contain_text(
        "Approve the production deploy"
    )
    expect(page.locator("#detail-side")).to_contain_text("release/2.4")
    screenshot(page, "flow-detail", full_page=True)

    page.goto(f"/sessions/{ws.refund_chat}/")
    wait_until_live(page)
    expect(page.locator("#transcript .msg")).to_have_count(3)
    expect(page.locator("#transcript .tool")).to_contain_text("search_docs")
    expect(page.get_by_label("Message")).to_be_enabled()
    screenshot(page, "chat-detail", full_page=True)

    page.goto(f"/sessions/{ws.reindex}/")
    wait_until_live(page)
    expect(page.locator("#detail-side")).to_contain_text("12 turns")
    # queued (created), provisioning, running
    expect(page.locator("#detail-side .history li")).to_have_count(3)
    screenshot(page, "task-detail", full_page=True)

    dark = open_page(world.admin, dark=True)
    dark.goto("/sessions/")
    wait_until_live(dark)
    expect(dark.locator("#rows-live .row")).to_have_count(4)
    assert background_of(dark) != light, "the dark color scheme did not change the page"
    screenshot(dark, "sessions-dark")

"""New session from the Sessions page in a real browser: the dialog opens with the defaults,
survives live pushes while it is being filled in, creates the session, and a runtime starts it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from sessions_app import services
from sessions_app.models import AgentSession, TokenKind
from sessions_app.runtime.client import Backoff, RuntimeClient
from sessions_app.states import Kind
from tests import factories as f
from tests.browser.conftest import FakeRuntime, wait_until_live
from tests.conftest import World
from tests.integration.live_server import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

OpenPage = Callable[..., Page]


def test_a_session_created_from_the_page_is_started_by_a_runtime(
    open_page: OpenPage, world: World, runtime: RuntimeClient
) -> None:
    busy = f.make_session(world.agent, world.owner, Kind.FLOW_RUN, title="Busy run")
    f.walk_to(busy, "running")
    page = open_page(world.owner)
    page.goto("/sessions/")
    wait_until_live(page)

    page.get_by_role("button", name="New session").first.click()
    dialog = page.locator("#new-session-dialog")
    expect(dialog).to_be_visible()
    form = dialog.locator("#new-session-form")
    expect(form.locator("input[name=temperature]")).to_have_value("0.7")
    expect(form.locator("input[name=max_tokens]")).to_have_value("4000")
    expect(form.locator("input[name=timeout_seconds]")).to_have_value("300")
    expect(form.locator("input[name=model-shown]")).to_have_value(world.agent.default_model)
    form.locator("select[name=kind]").select_option("flow_run")
    form.locator("input[name=title]").fill("Release notes from the page")

    # A live push while the form is being filled in leaves the dialog and its text alone.
    runtime.post_events(str(busy.pk), [{"type": "progress", "payload": {"current_step": 1}}])
    expect(page.locator(f"#session-{busy.pk}")).to_contain_text("Busy run")
    expect(dialog).to_be_visible()
    expect(form.locator("input[name=title]")).to_have_value("Release notes from the page")

    form.locator("textarea[name=input]").fill("Write the release notes for 2.4")
    with FakeRuntime(runtime) as fake:
        form.get_by_role("button", name="Create session").click()
        expect(page.locator("#detail-header h1")).to_contain_text("Release notes from the page")
        expect(page.locator("#detail-header")).to_have_attribute("data-status", "running")
        expect(page.locator("#waiting-reason")).to_have_count(0)
    session = AgentSession.objects.get(title="Release notes from the page")
    assert (session.status, session.origin, session.owner_id) == ("running", "web", world.owner.pk)
    assert [c["kind"] for c in fake.received if c["session_id"] == str(session.pk)] == ["start"]


def test_a_chat_handed_to_another_agent_from_the_transfer_dialog(
    open_page: OpenPage, world: World, server: LiveServer
) -> None:
    reviewer = f.make_agent(world.project, world.agent_owner, name="reviewer")
    _, token = services.token_create(
        tenant=world.tenant,
        kind=TokenKind.RUNTIME,
        name="reviewer runtime",
        user=world.agent_owner,
        agents=[reviewer],
    )
    runtime = RuntimeClient(server.url, token, backoff=Backoff(attempts=3))
    chat = f.make_session(world.agent, world.owner, Kind.CHAT, title="Refund question")
    page = open_page(world.owner)
    page.goto(f"/sessions/{chat.pk}/")
    wait_until_live(page)

    page.locator("#more-actions summary").click()
    page.get_by_role("menuitem", name="Transfer…").click()
    dialog = page.locator("#transfer-dialog")
    expect(dialog).to_be_visible()
    dialog.locator("select[name=to_agent]").select_option(label="reviewer")
    with FakeRuntime(runtime):
        dialog.get_by_role("button", name="Transfer").click()
        expect(page.locator("#detail-header")).to_contain_text("reviewer")
        expect(page.locator(".lineage")).to_contain_text("Refund question")
        expect(page.locator("#waiting-reason")).to_have_count(0)
    successor = AgentSession.objects.get(transferred_from=chat)
    assert (successor.agent_id, successor.owner_id) == (reviewer.pk, world.owner.pk)
    page.goto(f"/sessions/{chat.pk}/")
    expect(page.locator(".lineage")).to_contain_text("Transferred to")
    expect(page.locator("#detail-header")).to_contain_text("stop reason: Transferred")
    runtime.close()

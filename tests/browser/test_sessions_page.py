"""The Sessions page in a real browser: logging in, and a list that follows the runtime's
reports without a reload."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from sessions_app.runtime.client import RuntimeClient
from sessions_app.states import Kind
from tests import factories as f
from tests.browser.conftest import wait_until_live
from tests.conftest import World
from tests.integration.live_server import give_password

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

OpenPage = Callable[..., Page]


def mark_page(page: Page) -> None:
    """Tag the document, so a later check can tell it was never reloaded."""
    page.evaluate("window.__sameDocument = true")


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate("window.__sameDocument === true"), "the page was reloaded"


def test_logging_in_shows_the_sessions_of_my_workspace(open_page: OpenPage, world: World) -> None:
    running = f.make_session(
        world.agent, world.owner, Kind.FLOW_RUN, title="Nightly import", status="running"
    )
    chat = f.make_session(world.agent, world.owner, Kind.CHAT, title="Ask about invoices")
    done = f.make_session(
        world.agent, world.owner, Kind.BACKGROUND_TASK, title="Reindex search", status="completed"
    )
    f.make_session(world.other_agent, world.other_admin, Kind.FLOW_RUN, title="Globex plans")
    password = give_password(world.owner)
    page = open_page(None)

    page.goto("/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.get_by_label("Username").fill("owner")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()

    expect(page).to_have_url(re.compile(r"/sessions/$"))
    expect(page.get_by_role("button", name="Log out owner")).to_be_visible()
    expect(page.locator(f"#rows-live #session-{running.pk}")).to_contain_text("Nightly import")
    expect(page.locator(f"#rows-live #session-{chat.pk}")).to_contain_text("Ask about invoices")
    expect(page.locator(f"#rows-rest #session-{done.pk}")).to_contain_text("Reindex search")
    expect(page.locator("#session-list")).not_to_contain_text("Globex plans")
    wait_until_live(page)


def test_a_wrong_password_keeps_me_on_the_login_page(open_page: OpenPage, world: World) -> None:
    give_password(world.owner)
    page = open_page(None)

    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("owner")
    page.get_by_label("Password").fill("not my password")
    page.get_by_role("button", name="Log in").click()

    expect(page.get_by_role("alert")).to_contain_text("didn't match")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))


def test_a_session_reported_through_the_api_appears_changes_status_and_leaves_active(
    open_page: OpenPage, world: World, runtime: RuntimeClient
) -> None:
    page = open_page(world.owner)
    page.goto("/sessions/")
    wait_until_live(page)
    mark_page(page)
    page.get_by_role("button", name=re.compile(r"^Command Center")).click()

    session = runtime.create_session(
        kind="flow_run", agent=world.agent.pk, owner="owner", title="Deploy to staging"
    )
    sid = session["id"]
    row = page.locator(f"#session-{sid}")
    expect(page.locator(f"#rows-live #session-{sid}")).to_contain_text("Pending")
    expect(page.locator(f"#cc-active #cc-active-{sid}")).to_contain_text("Deploy to staging")

    batch = runtime.batch(sid)
    batch.status("running")
    batch.step("started", "Build", index=1, total=2)
    batch.flush()
    expect(row.locator(".badge")).to_have_text("Running")
    expect(row.locator(".progress")).to_contain_text("Step 1 of 2")
    expect(page.locator(f"#cc-active-{sid}")).to_contain_text("Running")

    batch.step("started", "Deploy", index=2, total=2)
    batch.status("completed")
    batch.flush()
    expect(page.locator(f"#rows-rest #session-{sid} .badge")).to_have_text("Completed")
    expect(page.locator(f"#rows-live #session-{sid}")).to_have_count(0)
    expect(page.locator(f"#cc-recent #cc-recent-{sid}")).to_contain_text("Completed")
    expect(page.locator(f"#cc-active-{sid}")).to_have_count(0)
    assert_not_reloaded(page)


def test_a_filter_in_the_url_keeps_a_new_session_that_does_not_match_out_of_the_list(
    open_page: OpenPage, world: World, runtime: RuntimeClient
) -> None:
    page = open_page(world.owner)
    page.goto("/sessions/?kind=chat")
    wait_until_live(page)
    mark_page(page)

    flow = runtime.create_session(
        kind="flow_run", agent=world.agent.pk, owner="owner", title="Not a chat"
    )
    chat = runtime.create_session(kind="chat", agent=world.agent.pk, owner="owner", title="A chat")

    expect(page.locator(f"#session-list #session-{chat['id']}")).to_contain_text("A chat")
    # The unfiltered panel shows the flow, so its push has been handled: the list left it out.
    expect(page.locator(f"#cc-active-{flow['id']}")).to_be_attached()
    expect(page.locator(f"#session-list #session-{flow['id']}")).to_have_count(0)
    expect(page.locator("#session-list")).not_to_contain_text("Not a chat")
    assert_not_reloaded(page)

"""Session detail pages in a real browser: the Command Center panel on any page, and a chat
that round-trips through a runtime."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from sessions_app.runtime.client import RuntimeClient
from sessions_app.states import Kind
from tests import factories as f
from tests.browser.conftest import FakeRuntime, wait_until_live
from tests.conftest import World

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

OpenPage = Callable[..., Page]


def test_the_command_center_opens_on_a_session_page_with_the_button_and_the_c_key(
    open_page: OpenPage, world: World
) -> None:
    task = f.make_session(
        world.agent, world.owner, Kind.BACKGROUND_TASK, title="Backfill invoices", status="running"
    )
    f.make_session(
        world.agent, world.owner, Kind.FLOW_RUN, title="Approve the rollout", status="waiting_input"
    )
    page = open_page(world.owner)
    page.goto(f"/sessions/{task.pk}/")
    wait_until_live(page)
    panel = page.locator("#cc-panel")
    toggle = page.get_by_role("button", name=re.compile(r"^Command Center"))
    expect(panel).to_be_hidden()

    toggle.click()
    expect(panel).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(panel.locator("#cc-needs")).to_contain_text("Approve the rollout")
    expect(panel.locator("#cc-active")).to_contain_text("Backfill invoices")

    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(toggle).to_have_attribute("aria-expanded", "false")

    page.keyboard.press("c")
    expect(panel).to_be_visible()
    expect(panel.locator("#cc-needs")).to_contain_text("Approve the rollout")
    page.keyboard.press("c")
    expect(panel).to_be_hidden()


def test_the_c_key_types_a_c_in_the_composer_instead_of_opening_the_panel(
    open_page: OpenPage, world: World
) -> None:
    chat = f.make_session(world.agent, world.owner, Kind.CHAT, title="Typing test")
    page = open_page(world.owner)
    page.goto(f"/sessions/{chat.pk}/")
    wait_until_live(page)

    page.get_by_label("Message").press_sequentially("cc")

    expect(page.get_by_label("Message")).to_have_value("cc")
    expect(page.locator("#cc-panel")).to_be_hidden()


def test_a_message_from_the_composer_reaches_the_runtime_and_its_reply_appears(
    open_page: OpenPage, world: World, runtime: RuntimeClient
) -> None:
    chat = runtime.create_session(
        kind="chat", agent=world.agent.pk, owner="owner", title="Refund question"
    )
    page = open_page(world.owner)
    page.goto(f"/sessions/{chat['id']}/")
    wait_until_live(page)
    page.evaluate("window.__sameDocument = true")
    transcript = page.locator("#transcript")

    with FakeRuntime(runtime) as fake:
        page.get_by_label("Message").fill("What is the refund window?")
        page.get_by_role("button", name="Send").click()

        expect(page.locator("#composer")).to_contain_text("Sent to the runtime.")
        expect(transcript.locator(".msg-user")).to_contain_text("What is the refund window?")
        expect(transcript.locator(".msg-agent")).to_contain_text(
            "You asked: What is the refund window?"
        )

    assert [(c["kind"], c["payload"]["text"]) for c in fake.received] == [
        ("message", "What is the refund window?")
    ]
    commands = runtime.request("GET", f"/sessions/{chat['id']}/commands")["items"]
    assert [c["status"] for c in commands] == ["applied"]
    # The agent's reply came in after the operator's message, without a reload.
    messages = transcript.locator(".msg .msg-text").all_inner_texts()
    assert messages == ["What is the refund window?", "You asked: What is the refund window?"]
    assert page.evaluate("window.__sameDocument === true")


def test_steps_and_tool_calls_reported_through_the_api_show_on_the_flow_page(
    open_page: OpenPage, world: World, runtime: RuntimeClient
) -> None:
    flow = runtime.create_session(kind="flow_run", agent=world.agent.pk, owner="owner")
    batch = runtime.batch(flow["id"])
    batch.status("running")
    batch.step("started", "Run the tests", index=1, total=2)
    batch.tool_call("shell", {"cmd": "make test"})
    batch.step("completed", "Run the tests", index=1, total=2)
    batch.step("started", "Deploy", index=2, total=2)
    batch.flush()
    page = open_page(world.owner)
    page.goto(f"/sessions/{flow['id']}/")
    wait_until_live(page)

    # The page is rendered and its snapshot applied: nothing is left to wait for.
    rendered = 2_000
    expect(page.locator(".timeline .step-done")).to_have_text(
        re.compile("Run the tests"), timeout=rendered
    )
    expect(page.locator(".timeline .step-current")).to_have_text(
        re.compile("Deploy"), timeout=rendered
    )
    expect(page.locator("#transcript")).to_contain_text(
        "Step 1 of 2 completed: Run the tests", timeout=rendered
    )
    page.locator("#transcript .tool summary").click()
    expect(page.locator("#transcript .tool pre").first).to_contain_text(
        "make test", timeout=rendered
    )

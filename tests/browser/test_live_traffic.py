"""A live dashboard that holds still under a human hand: dialogs, half-typed values, the list
order and the "N new" banner while a runtime keeps posting events (issue 12)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import ConsoleMessage, Error, Page, expect

from sessions_app.models import AgentSession, RuntimeCommand
from sessions_app.runtime.client import RuntimeClient
from sessions_app.states import Kind
from sessions_app.sweeps import policy_sweep
from tests import factories as f
from tests.browser.conftest import screenshot, wait_until_live
from tests.browser.test_gallery import report_workspace
from tests.conftest import World

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

OpenPage = Callable[..., Page]

INTERVAL = 0.2  # seconds between two events of the background runtime


class Streamer:
    """A runtime in a thread posting one event to a session every INTERVAL seconds, until
    stopped. Refusals (the session ended under it) and transport hiccups are counted, not
    raised: the traffic is the background, not what is tested."""

    def __init__(self, client: RuntimeClient, session_id: str, *, kind: str = "message") -> None:
        # Its own HTTP client: the thread must not share connections with the test's.
        self.client = RuntimeClient(client.base_url, client.token, backoff=client.backoff)
        self.session_id = str(session_id)
        self.kind = kind
        self.posted = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="streamer", daemon=True)

    def start(self) -> Streamer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)
        self.client.close()

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            batch = self.client.batch(self.session_id)
            if self.kind == "progress":
                batch.progress(turns=n)
            else:
                batch.message("agent", f"Working on it, update {n}.")
            try:
                batch.flush()
                self.posted += 1
            except Exception:  # counted: see the class docstring
                self.failures += 1
            self._stop.wait(INTERVAL)


@contextmanager
def streaming(client: RuntimeClient, session_id: Any, *, kind: str = "message") -> Iterator[Any]:
    streamer = Streamer(client, session_id, kind=kind).start()
    try:
        yield streamer
    finally:
        streamer.stop()


def wait_for_pushes(page: Page, count: int) -> None:
    """At least `count` more websocket frames reach the page from now on."""
    start = page.evaluate("window.__framesSinceOpen")
    page.wait_for_function(f"window.__framesSinceOpen >= {start + count}", timeout=15_000)


def row_ids(page: Page) -> list[str]:
    ids: list[str] = page.evaluate(
        "Array.from(document.querySelectorAll('#rows-live > a.row, #rows-rest > a.row'))"
        ".map(a => a.id)"
    )
    return ids


def running_flow(runtime: RuntimeClient, world: World, title: str) -> str:
    flow = runtime.create_session(kind="flow_run", agent=world.agent.pk, owner="owner", title=title)
    batch = runtime.batch(flow["id"])
    batch.status("running")
    batch.step("started", "Build", index=1, total=2)
    batch.flush()
    return str(flow["id"])


def test_the_cancel_dialog_stays_open_under_pushes_and_cancels(
    open_page: OpenPage, world: World, runtime: RuntimeClient
) -> None:
    sid = running_flow(runtime, world, "Deploy under load")
    page = open_page(world.owner)
    page.goto(f"/sessions/{sid}/")
    wait_until_live(page)

    with streaming(runtime, sid) as streamer:
        page.get_by_role("button", name="Cancel…").click()
        dialog = page.locator("dialog#cancel-dialog[open]")
        expect(dialog).to_be_visible()
        started = streamer.posted
        time.sleep(10)
        wait_for_pushes(page, 1)
        assert streamer.posted - started >= 20, "the runtime did not keep posting"
        expect(dialog).to_be_visible()
        expect(page.locator("#transcript")).to_contain_text("Working on it")

        dialog.get_by_role("button", name="Cancel session").click()
        expect(page.locator("dialog#cancel-dialog")).not_to_have_attribute("open", "")
        expect(page.locator("#detail-header")).to_contain_text("Cancelled")

    assert AgentSession.objects.get(pk=sid).status == "cancelled"


def test_the_transfer_dialog_keeps_a_half_typed_username_under_pushes(
    open_page: OpenPage, world: World, runtime: RuntimeClient
) -> None:
    sid = running_flow(runtime, world, "Hand this over")
    page = open_page(world.owner)
    page.goto(f"/sessions/{sid}/")
    wait_until_live(page)

    with streaming(runtime, sid):
        page.locator("#more-actions > summary").click()
        page.get_by_role("menuitem", name="Transfer…").click()
        dialog = page.locator("dialog#transfer-dialog[open]")
        expect(dialog).to_be_visible()
        username = dialog.get_by_label("Username of a workspace member")
        username.press_sequentially("devel", delay=150)
        time.sleep(5)
        wait_for_pushes(page, 1)
        expect(dialog).to_be_visible()
        expect(username).to_have_value("devel")
        expect(username).to_be_focused()
        username.press_sequentially("oper", delay=50)
        expect(username).to_have_value("developer")


def test_after_load_more_pushes_show_a_banner_instead_of_moving_the_list(
    open_page: OpenPage, world: World, runtime: RuntimeClient
) -> None:
    sessions = [
        f.make_session(world.agent, world.owner, Kind.FLOW_RUN, title=f"Run {i:02d}")
        for i in range(56)
    ]
    oldest = sessions[0]
    page = open_page(world.owner)
    page.goto("/sessions/")
    wait_until_live(page)
    expect(page.locator(f"#session-{oldest.pk}")).to_have_count(0)

    page.get_by_role("button", name="Load more").click()
    expect(page.locator(f"#session-{oldest.pk}")).to_be_attached()
    expect(page.locator("a.row")).to_have_count(56)
    first = row_ids(page)[0]
    assert first != f"session-{oldest.pk}"
    old_sort = page.locator(f"#session-{oldest.pk}").get_attribute("data-sort")
    # The "paged" frame goes out after the request; let the server read it before any push.
    time.sleep(1)

    with streaming(runtime, oldest.pk):
        banner = page.locator("#new-banner")
        expect(banner).to_be_visible()
        expect(banner).to_have_text(re.compile(r"\d+ new or updated session"))
        for _ in range(6):  # three seconds of pushes: the list holds still
            assert row_ids(page)[0] == first
            time.sleep(0.5)
        # The row shown further down is updated in place.
        expect(page.locator(f"#session-{oldest.pk}")).not_to_have_attribute(
            "data-sort", old_sort or ""
        )

        page.locator("[data-show-new]").click()
        expect(page.locator("#rows-live > a.row").first).to_have_id(f"session-{oldest.pk}")
        expect(banner).to_be_hidden()


def test_the_live_order_after_a_burst_of_changes_is_the_reload_order(
    open_page: OpenPage, world: World, runtime: RuntimeClient
) -> None:
    ids = [running_flow(runtime, world, f"Flow {i}") for i in range(5)]
    chat = runtime.create_session(kind="chat", agent=world.agent.pk, owner="owner", title="Chat")
    done = f.make_session(world.agent, world.owner, Kind.BACKGROUND_TASK, status="completed")
    # A run not heard from for hours: the sweep flags it stalled without touching its recency.
    aged = ids[1]
    AgentSession.objects.filter(pk=aged).update(
        last_activity_at=timezone.now() - timedelta(hours=3)
    )
    page = open_page(world.owner)
    page.goto("/sessions/")
    wait_until_live(page)
    expect(page.locator(f"#rows-rest #session-{done.pk}")).to_be_attached()

    with streaming(runtime, ids[3]):
        time.sleep(1)
        for sid in (ids[0], chat["id"]):
            batch = runtime.batch(sid)
            batch.message("agent", "A burst.")
            batch.flush()
        batch = runtime.batch(ids[4])
        batch.status("completed")
        batch.flush()
        policy_sweep()
        assert AgentSession.objects.get(pk=aged).stalled
        time.sleep(1)

    expect(page.locator(f"#session-{aged} .row-stall")).to_be_visible()
    expect(page.locator(f"#rows-rest #session-{ids[4]}")).to_be_attached()
    expect(page.locator("#rows-live > a.row").first).to_have_id(f"session-{ids[3]}")
    time.sleep(1.5)  # the last pushes of the streamer settle
    live = row_ids(page)

    page.reload()
    wait_until_live(page)
    assert row_ids(page) == live


def test_a_reply_typed_in_the_panel_under_pushes_queues_a_message(
    open_page: OpenPage, world: World, runtime: RuntimeClient
) -> None:
    chat = runtime.create_session(
        kind="chat", agent=world.agent.pk, owner="owner", title="Which region?"
    )
    sid = chat["id"]
    batch = runtime.batch(sid)
    batch.message("agent", "Which region should I deploy to?")
    batch.agent_status("waiting_input")
    batch.flush()
    page = open_page(world.owner)
    page.goto("/sessions/")
    wait_until_live(page)
    page.get_by_role("button", name=re.compile(r"^Command Center")).click()
    item = page.locator(f"#cc-needs-{sid}")
    expect(item).to_contain_text("Which region?")
    reply = item.locator(".cc-reply input[name=text]")

    with streaming(runtime, sid, kind="progress"):
        reply.press_sequentially("eu-west-1, please", delay=120)
        wait_for_pushes(page, 2)
        expect(reply).to_have_value("eu-west-1, please")
        item.locator(".cc-reply").get_by_role("button", name="Reply").click()
        expect(reply).to_have_value("")

    commands = RuntimeCommand.objects.filter(session_id=sid, kind="message")
    assert [c.payload.get("text") for c in commands] == ["eu-west-1, please"]
    assert commands[0].status == "queued"


def test_no_console_errors_under_sustained_pushes_and_screenshots(
    open_page: OpenPage, world: World, runtime: RuntimeClient
) -> None:
    ws = report_workspace(runtime, world)
    page = open_page(world.owner)
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" or "htmx:oobErrorNoTarget" in message.text:
            problems.append(f"console {message.type}: {message.text}")

    def on_page_error(error: Error) -> None:
        problems.append(f"pageerror: {error}")

    page.on("console", on_console)
    page.on("pageerror", on_page_error)

    with streaming(runtime, ws.release) as streamer:
        page.goto(f"/sessions/{ws.release}/")
        wait_until_live(page)
        time.sleep(12)
        wait_for_pushes(page, 1)
        page.locator("#more-actions > summary").click()
        time.sleep(1)
        expect(page.locator("#more-actions")).to_have_attribute("open", "")
        expect(page.locator("main")).not_to_contain_text("{#")
        screenshot(page, "live-flow-detail")

        page.goto("/sessions/")
        wait_until_live(page)
        time.sleep(12)
        wait_for_pushes(page, 1)
        expect(page.locator(f"#rows-live > #session-{ws.release}")).to_be_attached()
        screenshot(page, "live-sessions")

        page.get_by_role("button", name=re.compile(r"^Command Center")).click()
        expect(page.locator(f"#cc-needs-{ws.release}")).to_be_visible()
        time.sleep(2)
        screenshot(page, "live-panel")
        posted = streamer.posted

    with streaming(runtime, ws.refund_chat):
        page.goto(f"/sessions/{ws.refund_chat}/")
        wait_until_live(page)
        time.sleep(3)
        wait_for_pushes(page, 1)
        expect(page.get_by_label("Message")).to_be_enabled()
        # A template comment that spans lines must not leak onto the page.
        expect(page.locator("main")).not_to_contain_text("{#")
        screenshot(page, "live-chat-detail")

    assert posted >= 80, f"only {posted} events were posted"
    assert problems == []


def test_a_quiet_chat_leaves_active_now_on_its_own_at_30_minutes(
    open_page: OpenPage, world: World, runtime: RuntimeClient
) -> None:
    quiet = runtime.create_session(kind="chat", agent=world.agent.pk, owner="owner", title="Quiet")
    busy = running_flow(runtime, world, "Busy neighbour")
    # Its 30 minutes of Active Now end a few seconds from now, with nothing else happening to it.
    AgentSession.objects.filter(pk=quiet["id"]).update(
        last_activity_at=timezone.now() - timedelta(minutes=30) + timedelta(seconds=4)
    )
    page = open_page(world.owner)
    page.goto("/sessions/")
    wait_until_live(page)
    page.get_by_role("button", name=re.compile(r"^Command Center")).click()
    with streaming(runtime, busy):
        expect(page.locator(f"#cc-active-{quiet['id']}")).to_be_attached()
        expect(page.locator(f"#cc-recent-{quiet['id']}")).to_be_attached(timeout=20_000)
        expect(page.locator(f"#cc-active-{quiet['id']}")).to_have_count(0)
        expect(page.locator(f"#cc-active-{busy}")).to_be_attached()  # the neighbour stays

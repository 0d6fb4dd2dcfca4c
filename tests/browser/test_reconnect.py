"""A page outlives a restart of the server it is connected to: the htmx ws extension
reconnects, and the consumer's snapshot on connect brings the page up to date."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Page, expect

from sessions_app.runtime.client import RuntimeClient
from tests.browser.conftest import wait_until_live
from tests.conftest import World
from tests.integration.live_server import LiveServer, free_port, server_env

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def restartable(django_db_setup: None) -> Iterator[LiveServer]:
    """A server of this test's own, so stopping it disturbs no other test."""
    live = LiveServer(free_port(), server_env(), name="daphne-restart")
    live.start()
    yield live
    live.stop()


def record_close_codes(page: Page) -> None:
    page.evaluate(
        """window.__closeCodes = [];
        document.addEventListener("htmx:wsClose", (e) => window.__closeCodes.push(e.detail.event.code));"""
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["stopped", "killed"])
def test_after_a_server_restart_the_page_catches_up_by_itself(
    open_page: Callable[..., Page],
    world: World,
    runtime: RuntimeClient,
    restartable: LiveServer,
    sig: int,
) -> None:
    # The runtime talks to the other server, which stays up the whole time.
    running = runtime.create_session(
        kind="flow_run", agent=world.agent.pk, owner="owner", title="Survives restarts"
    )
    batch = runtime.batch(running["id"])
    batch.status("running")
    batch.flush()
    page = open_page(world.owner, on=restartable)
    page.goto("/sessions/")
    wait_until_live(page)
    record_close_codes(page)
    page.evaluate("window.__sameDocument = true")
    expect(page.locator(f"#rows-live #session-{running['id']} .badge")).to_have_text("Running")

    restartable.stop(sig=sig)
    expect(page.locator("#conn-state")).not_to_have_attribute("data-state", "live")

    batch.status("completed")
    batch.flush()
    created = runtime.create_session(
        kind="chat", agent=world.agent.pk, owner="owner", title="Started while you were away"
    )
    restartable.start()

    wait_until_live(page)
    expect(page.locator(f"#rows-rest #session-{running['id']} .badge")).to_have_text("Completed")
    expect(page.locator(f"#rows-live #session-{created['id']}")).to_contain_text(
        "Started while you were away"
    )
    assert page.evaluate("window.__sameDocument === true"), "the page was reloaded"
    # The htmx ws extension retries only abnormal closes (1006) and "restart"/"try later"
    # (1011-1013); a server going away must look like one of those.
    codes = page.evaluate("window.__closeCodes")
    assert codes, "the page never saw its socket close"
    assert set(codes) <= {1006, 1011, 1012, 1013}, codes

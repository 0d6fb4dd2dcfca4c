"""Browser tests: Playwright (sync API) driving Debian's chromium against a real daphne.

The server is a subprocess on the pytest-django test database, so every test that drives it is
`django_db(transaction=True)`: what the test writes is committed and visible to the server, and
the tables are flushed after each test (the server caches nothing between requests).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    ViewportSize,
    expect,
    sync_playwright,
)

from sessions_app.runtime.client import Backoff, RuntimeClient
from tests.integration.live_server import (
    ARTIFACTS,
    LiveServer,
    free_port,
    runtime_token,
    server_env,
    session_cookie,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ARTIFACTS / "screenshots"
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}

# Long enough for a loaded 2-core machine; an expectation that holds returns at once.
expect.set_options(timeout=15_000)

# Counts the frames received since the page's websocket last opened, so a test can wait for the
# snapshot the server sends on every (re)connect.
WS_PROBE = """
window.__framesSinceOpen = 0;
document.addEventListener("htmx:wsOpen", () => { window.__framesSinceOpen = 0; });
document.addEventListener("htmx:wsAfterMessage", () => { window.__framesSinceOpen += 1; });
"""


@pytest.fixture(scope="session")
def chromium() -> str:
    if not CHROMIUM.exists():
        if os.environ.get("SCC_REQUIRE_BROWSER") == "1":
            pytest.fail(f"chromium is not installed at {CHROMIUM} and SCC_REQUIRE_BROWSER=1")
        pytest.skip(f"chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    return str(CHROMIUM)


@pytest.fixture(scope="package")
def browser(chromium: str) -> Iterator[Browser]:
    # Playwright's sync API leaves its event loop marked as running in this thread, which makes
    # Django refuse ORM calls here; the test code is plain sequential code, so allow them.
    # Package scope: the loop must be gone before later packages' asyncio tests start.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="package")
def server(django_db_setup: None) -> Iterator[LiveServer]:
    """The daphne every browser test talks to (started once; the data is per test)."""
    live = LiveServer(free_port(), server_env(), name="daphne-browser")
    live.start()
    yield live
    live.stop()


@pytest.fixture
def open_page(browser: Browser, server: LiveServer) -> Iterator[Callable[..., Page]]:
    """open_page(user, server=...) -> a page in a fresh browser context, logged in as `user`
    (None: anonymous), with relative URLs resolving against the server."""
    contexts: list[BrowserContext] = []

    def open_page(user: Any, *, on: LiveServer | None = None, dark: bool = False) -> Page:
        target = on or server
        context = browser.new_context(
            base_url=target.url,
            viewport=VIEWPORT,
            color_scheme="dark" if dark else "light",
        )
        context.set_default_timeout(15_000)
        context.add_init_script(WS_PROBE)
        contexts.append(context)
        if user is not None:
            context.add_cookies(
                [{"name": "sessionid", "value": session_cookie(user), "url": target.url}]
            )
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def runtime(world: Any, server: LiveServer) -> Iterator[RuntimeClient]:
    """The agent runtime of `world.agent`, talking to the server's API with a runtime token."""
    client = RuntimeClient(server.url, runtime_token(world), backoff=Backoff(attempts=3))
    yield client
    client.close()


def wait_until_live(page: Page) -> None:
    """The page's websocket is open and the snapshot sent on connect has been swapped in."""
    expect(page.locator("#conn-state")).to_have_attribute("data-state", "live")
    page.wait_for_function("window.__framesSinceOpen > 0")


def screenshot(page: Page, name: str, *, full_page: bool = False) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    # Relative times and the live dot keep moving; nothing else should differ between runs.
    page.screenshot(path=path, full_page=full_page, animations="disabled")
    return path


class FakeRuntime:
    """An agent runtime in a thread: receives commands over /ws/runtime/ with the runtime
    client, answers each message command with an agent message posted through the API, accepts
    each `start` and reports the session running, and acknowledges every command."""

    def __init__(self, client: RuntimeClient) -> None:
        # Its own HTTP client: the thread must not share connections with the test's.
        self.client = RuntimeClient(client.base_url, client.token, backoff=client.backoff)
        self.received: list[dict[str, Any]] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-runtime", daemon=True)

    def __enter__(self) -> FakeRuntime:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.client.close()
        if self.errors:
            raise self.errors[0]

    def _run(self) -> None:
        try:
            for command in self.client.commands(stop=self._stop, transport="websocket"):
                self.received.append(command)
                if command["kind"] == "start":
                    if self.client.accept_start(command):
                        batch = self.client.batch(command["session_id"])
                        batch.status("running")
                        batch.agent_status("working")
                        batch.flush()
                    continue
                if command["kind"] == "message":
                    batch = self.client.batch(command["session_id"])
                    batch.message("agent", f"You asked: {command['payload']['text']}")
                    batch.flush()
                self.client.ack(command["id"], "applied")
        except BaseException as exc:  # surfaced in __exit__
            self.errors.append(exc)

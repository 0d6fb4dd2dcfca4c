"""Clients for the real-process fault tests: a dashboard that behaves like the browser's (it
reconnects after a drop and keeps every frame), and a runtime that posts events one by one and
retries each with the same `event_id` until it is answered 2xx, as the runtime client does.

Both record everything they saw, so a test can check the invariants after the fault: every
answer was 2xx or 503 with Retry-After and a JSON body, every event answered 2xx is stored
exactly once with gap-free seqs, and every dashboard converged on the final state."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import httpx
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import connect
from websockets.typing import Origin

from sessions_app.models import SessionEvent
from tests.integration.live_server import LiveServer

# The close codes the htmx ws extension reconnects on (static/js/app.js keeps the delays short).
RECONNECT_CODES = {1006, 1012, 1013}


@dataclass
class Dashboard:
    """One dashboard socket in a thread of its own: connects, keeps every frame, and after a
    close the browser would retry (or a failed connect) connects again after `retry` s."""

    server: LiveServer
    cookie: str
    query: str
    retry: float = 0.3
    frames: list[tuple[float, str]] = field(default_factory=list)
    closes: list[int | None] = field(default_factory=list)
    connects: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Dashboard:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with connect(
                    f"{self.server.ws_url}/ws/command-center/?{self.query}",
                    additional_headers={"Cookie": f"sessionid={self.cookie}"},
                    origin=Origin(self.server.url),
                    open_timeout=5,
                ) as ws:
                    with self._lock:
                        self.connects += 1
                    while not self._stop.is_set():
                        try:
                            frame = ws.recv(timeout=0.2)
                        except TimeoutError:
                            continue
                        with self._lock:
                            self.frames.append((time.monotonic(), str(frame)))
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd is not None else 1006
                with self._lock:
                    self.closes.append(code)
                if code not in RECONNECT_CODES:
                    return  # the browser would not retry either
            except (OSError, InvalidHandshake, TimeoutError):
                with self._lock:
                    self.closes.append(None)  # the server is not there (yet)
            self._stop.wait(self.retry)

    def wait_for(self, needle: str, *, since: float = 0.0, timeout: float = 10.0) -> float:
        """When a frame containing `needle` arrived after `since` (monotonic); fails after
        `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for at, frame in self.frames:
                    if at >= since and needle in frame:
                        return at
            time.sleep(0.05)
        raise AssertionError(
            f"dashboard {self.query!r}: no frame with {needle!r} within {timeout} s "
            f"(connects {self.connects}, closes {self.closes})"
        )


def wait_until(predicate: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)


@dataclass
class Answer:
    event_id: str
    status: int | None  # None: no answer at all (connection refused or dropped)
    retry_after: str | None = None
    content_type: str = ""
    body: Any = None


@dataclass
class Ingest:
    """Posts one event per request to one session, `interval` s apart, from a thread. Each
    event is retried with its own id until it is answered 2xx, as the runtime client does."""

    server: LiveServer
    token: str
    session_id: str
    interval: float = 0.05
    prefix: str = "ev"
    answers: list[Answer] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    problems: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Ingest:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self, *, drain_timeout: float = 30.0) -> None:
        """Stop starting new events; the one being retried is finished first."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=drain_timeout)
            assert not self._thread.is_alive(), "an event was still unanswered"

    def _run(self) -> None:
        n = 0
        with httpx.Client(
            base_url=f"{self.server.url}/api/v1",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10,
        ) as http:
            while not self._stop.is_set():
                n += 1
                event_id = f"{self.prefix}{n}"
                body = {
                    "events": [
                        {
                            "event_id": event_id,
                            "type": "message",
                            "payload": {"role": "agent", "text": f"text of {event_id}"},
                        }
                    ]
                }
                while True:
                    answer = self._post(http, event_id, body)
                    self.answers.append(answer)
                    if answer.status is not None and 200 <= answer.status < 300:
                        # Stored now, or by an attempt whose answer was lost: same answer.
                        if answer.body["results"][0]["status"] != "stored":
                            self.problems.append(answer)
                        self.accepted.append(event_id)
                        break
                    time.sleep(0.2)
                self._stop.wait(self.interval)

    def _post(self, http: httpx.Client, event_id: str, body: dict[str, Any]) -> Answer:
        try:
            response = http.post(f"/sessions/{self.session_id}/events", json=body)
        except httpx.TransportError:
            return Answer(event_id, None)
        try:
            parsed = response.json()
        except ValueError:
            parsed = response.text[:200]
        return Answer(
            event_id,
            response.status_code,
            response.headers.get("Retry-After"),
            response.headers.get("Content-Type", ""),
            parsed,
        )

    @property
    def last_text(self) -> str:
        return f"text of {self.accepted[-1]}"

    def statuses(self) -> set[int | None]:
        return {a.status for a in self.answers}


def assert_answers_are_2xx_or_503(ingest: Ingest) -> None:
    assert not ingest.problems, ingest.problems
    for answer in ingest.answers:
        if answer.status is None or 200 <= answer.status < 300:
            continue
        assert answer.status == 503, answer
        assert answer.retry_after, answer
        assert int(answer.retry_after) > 0, answer
        assert answer.content_type.startswith("application/json"), answer
        assert answer.body["code"] == "unavailable", answer


def assert_stored_exactly_once(ingest: Ingest, session_id: str) -> None:
    """Every event answered 2xx is stored once, nothing else is, and seqs have no gap."""
    stored = list(
        SessionEvent.objects.filter(session_id=UUID(session_id), event_id__startswith=ingest.prefix)
        .order_by("seq")
        .values_list("event_id", "seq")
    )
    ids = [event_id for event_id, _ in stored]
    assert len(ids) == len(set(ids)), "an event was stored twice"
    assert set(ids) == set(ingest.accepted), "an accepted event is missing or extra"
    all_seqs = list(
        SessionEvent.objects.filter(session_id=UUID(session_id))
        .order_by("seq")
        .values_list("seq", flat=True)
    )
    assert all_seqs == list(range(1, len(all_seqs) + 1)), "seqs have a gap"

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from sessions_app.runtime import client as rc
from sessions_app.runtime.client import Backoff, EventBatch, RuntimeClient

BASE_DIR = Path(__file__).resolve().parents[2]


def test_importing_the_client_does_not_import_django() -> None:
    code = (
        "import sys\n"
        "import sessions_app.runtime.client, sessions_app.runtime.demo.engine\n"
        "loaded = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'))\n"
        "print(loaded)\n"
        "sys.exit(1 if loaded else 0)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(BASE_DIR)}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- against a scripted transport ---------------------------------------------------------------


class Server:
    """A scripted HTTP server: answers from a list, records every request."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if self.answers else (200, {})
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            return answer(request)
        status, body = answer
        return httpx.Response(status, json=body)

    def bodies(self) -> list[Any]:
        return [json.loads(r.content) for r in self.requests]


def client_for(
    server: Server, *, attempts: int = 5, sleeps: list[float] | None = None
) -> RuntimeClient:
    return RuntimeClient(
        "http://runtime.test",
        "scc_token",
        transport=httpx.MockTransport(server),
        backoff=Backoff(initial=0.01, factor=2, maximum=0.05, jitter=0, attempts=attempts),
        sleep=(sleeps.append if sleeps is not None else lambda s: None),
    )


def ok_results(request: httpx.Request) -> httpx.Response:
    events = json.loads(request.content)["events"]
    results = [{"event_id": e["event_id"], "seq": i} for i, e in enumerate(events, 1)]
    return httpx.Response(200, json={"results": results, "created": len(events), "duplicates": 0})


def test_it_sends_the_token_as_a_bearer_header() -> None:
    server = Server((200, {"kind": "runtime"}))
    client_for(server).whoami()
    assert server.requests[0].headers["Authorization"] == "Bearer scc_token"
    assert str(server.requests[0].url) == "http://runtime.test/api/v1/token"


def test_a_retried_batch_reuses_its_event_ids() -> None:
    sleeps: list[float] = []
    server = Server(httpx.ConnectError("refused"), (503, {}), httpx.ReadTimeout("slow"), ok_results)
    client = client_for(server, sleeps=sleeps)
    batch = client.batch("s1")
    batch.message("agent", "hello")
    batch.thinking("hmm")
    results = batch.flush()
    assert len(server.requests) == 4
    ids = [[e["event_id"] for e in body["events"]] for body in server.bodies()]
    assert ids[0] == ids[1] == ids[2] == ids[3]
    assert [r["event_id"] for r in results] == ids[0]
    assert sleeps == [0.01, 0.02, 0.04]
    assert len(batch) == 0


def test_it_gives_up_after_its_attempts_and_keeps_the_batch() -> None:
    server = Server(*[(502, {})] * 3)
    client = client_for(server, attempts=3)
    batch = client.batch("s1")
    batch.thinking("x")
    with pytest.raises(rc.Unavailable, match="HTTP 502"):
        batch.flush()
    assert len(server.requests) == 3
    pending_id = batch.pending[0]["event_id"]
    server.answers = [ok_results]
    batch.flush()
    assert server.bodies()[-1]["events"][0]["event_id"] == pending_id


def test_backoff_grows_to_its_maximum_and_forever_means_forever() -> None:
    delays = Backoff(initial=1, factor=3, maximum=10, jitter=0, attempts=None).delays()
    assert [next(delays) for _ in range(5)] == [1, 3, 9, 10, 10]
    assert list(Backoff(attempts=1).delays()) == []


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, rc.InvalidInput),
        (401, rc.Unauthorized),
        (403, rc.Forbidden),
        (404, rc.NotFound),
        (409, rc.Conflict),
        (413, rc.PayloadTooLarge),
        (422, rc.InvalidInput),
    ],
)
def test_client_errors_raise_at_once_with_the_servers_message(
    status: int, error: type[rc.ApiError]
) -> None:
    body = {
        "code": "x",
        "message": "what went wrong",
        "field": "temperature",
        "details": {"limit": 2},
    }
    server = Server((status, body))
    with pytest.raises(error) as info:
        client_for(server).create_session(kind="chat", agent=1, owner="alice")
    assert len(server.requests) == 1
    assert (info.value.status, info.value.message, info.value.field) == (
        status,
        "what went wrong",
        "temperature",
    )
    assert info.value.details == {"limit": 2}


def test_create_session_leaves_out_what_was_not_given() -> None:
    server = Server((201, {"id": "s1"}))
    client_for(server).create_session(kind="chat", agent=3, owner="alice", temperature=0.2)
    assert server.bodies() == [
        {"kind": "chat", "agent": 3, "title": "", "owner": "alice", "temperature": 0.2}
    ]


def test_large_posts_are_split_within_the_servers_limits() -> None:
    server = Server(*[ok_results] * 10)
    client = client_for(server)
    many = [rc.event("thinking", {"text": "x"}) for _ in range(1200)]
    results = client.post_events("s1", many)
    assert [len(b["events"]) for b in server.bodies()] == [500, 500, 200]
    assert [r["event_id"] for r in results] == [e["event_id"] for e in many]

    server.requests.clear()
    big = [rc.event("thinking", {"text": "y" * (200 * 1024)}) for _ in range(12)]
    client.post_events("s1", big)
    sizes = [len(r.content) for r in server.requests]
    assert len(sizes) > 1
    assert max(sizes) <= rc.MAX_BATCH_BYTES


def test_an_event_over_the_servers_limit_fails_before_sending() -> None:
    server = Server()
    with pytest.raises(rc.PayloadTooLarge):
        client_for(server).post_events("s1", [rc.event("thinking", {"text": "z" * (300 * 1024)})])
    assert server.requests == []


def test_text_the_server_cannot_store_is_replaced() -> None:
    cleaned = rc.storable(
        {"out": "a\x00b", "half": "x\ud800y", "ok": ["fine", 1, None], "k\x00": 1}
    )
    assert cleaned == {"out": "a\ufffdb", "half": "x\ufffdy", "ok": ["fine", 1, None], "k\ufffd": 1}
    assert rc.event("thinking", {"text": "a\x00"})["payload"]["text"] == "a\ufffd"


def test_the_batch_helpers_build_the_documented_payloads() -> None:
    batch = EventBatch(client_for(Server()), "s1")
    call_id = batch.tool_call("run_shell", {"command": "ls"})
    batch.tool_result(call_id, "a.txt", name="run_shell")
    batch.step("started", "Build", index=1, total=3)
    batch.status("failed", reason="boom", error={"code": "E", "message": "broke"})
    batch.file_edit("a.py", None, "x = 1\n")
    batch.progress(turns=3)
    batch.artifact("r.md", size_bytes=3)
    types = [e["type"] for e in batch.pending]
    assert types == [
        "tool_call",
        "tool_result",
        "step",
        "status_change",
        "file_edit",
        "progress",
        "artifact",
    ]
    assert batch.pending[1]["payload"]["call_id"] == call_id
    assert batch.pending[3]["payload"] == {
        "to": "failed",
        "reason": "boom",
        "error": {"code": "E", "message": "broke"},
    }
    batch.discard()
    assert batch.flush() == []


@pytest.mark.parametrize(
    ("base", "ws"),
    [
        ("http://127.0.0.1:8000", "ws://127.0.0.1:8000/ws/runtime/"),
        ("https://scc.example/", "wss://scc.example/ws/runtime/"),
    ],
)
def test_the_websocket_url_follows_the_base_url(base: str, ws: str) -> None:
    assert RuntimeClient(base, "t").websocket_url() == ws


def command(n: int) -> dict[str, Any]:
    return {"id": f"c{n}", "kind": "pause", "session_id": "s1"}


def test_polled_commands_arrive_once_each() -> None:
    stop = threading.Event()
    server = Server(
        (200, {"items": [command(1), command(2)]}),
        (200, {"items": [command(2), command(3)]}),  # c2 handed out again (unacknowledged)
        (503, {}),
        (200, {"items": [command(3), command(4)]}),
    )
    got: list[str] = []
    for c in client_for(server).commands(stop=stop, transport="poll"):
        got.append(c["id"])
        if c["id"] == "c4":
            stop.set()
    assert got == ["c1", "c2", "c3", "c4"]
    assert all(r.url.params["wait"] == "20" for r in server.requests)


def test_polling_with_a_refused_token_raises() -> None:
    server = Server((401, {"code": "unauthorized", "message": "no"}))
    with pytest.raises(rc.Unauthorized):
        next(client_for(server).commands(transport="poll"))


# --- the websocket path, against a fake connection -----------------------------------------------


class FakeSocket:
    def __init__(self, frames: list[Any]) -> None:
        self.frames = frames
        self.sent: list[dict[str, Any]] = []

    def __enter__(self) -> FakeSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def recv(self, timeout: float | None = None) -> str:
        frame = self.frames.pop(0)
        if isinstance(frame, BaseException):
            raise frame
        return json.dumps(frame)

    def send(self, text: str) -> None:
        self.sent.append(json.loads(text))


def closed(code: int) -> Exception:
    from websockets.exceptions import ConnectionClosedError
    from websockets.frames import Close

    return ConnectionClosedError(Close(code, "bye"), None)


def refused(status: int) -> Exception:
    from websockets.datastructures import Headers
    from websockets.exceptions import InvalidStatus
    from websockets.http11 import Response

    return InvalidStatus(Response(status, "no", Headers()))


@pytest.fixture
def sockets(monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[dict[str, Any]]]:
    """sockets(*connections): each connect() gets the next scripted socket (or raises)."""
    script: list[Any] = []
    calls: list[dict[str, Any]] = []

    def fake_connect(url: str, **kwargs: Any) -> Any:
        calls.append({"url": url, **kwargs})
        item = script.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item

    import websockets.sync.client

    monkeypatch.setattr(websockets.sync.client, "connect", fake_connect)

    def load(*connections: Any) -> list[dict[str, Any]]:
        script.extend(connections)
        return calls

    return load


def test_websocket_commands_are_acknowledged_as_delivered_and_survive_a_reconnect(
    sockets: Callable[..., list[dict[str, Any]]],
) -> None:
    stop = threading.Event()
    first = FakeSocket([{"type": "command", **command(1)}, TimeoutError(), closed(1006)])
    second = FakeSocket(
        [{"type": "command", **command(1)}, {"type": "ack_ok"}, {"type": "command", **command(2)}]
    )
    calls = sockets(first, OSError("refused"), second)
    got = []
    for c in client_for(Server()).commands(stop=stop, transport="websocket"):
        got.append(c)
        if c["id"] == "c2":
            stop.set()
    assert [c["id"] for c in got] == ["c1", "c2"]
    assert got[0] == command(1)
    assert first.sent == [{"type": "ack", "id": "c1", "status": "delivered"}]
    assert calls[0]["url"] == "ws://runtime.test/ws/runtime/"
    assert calls[0]["additional_headers"] == {"Authorization": "Bearer scc_token"}
    assert "origin" not in calls[0]  # token auth: runtimes need no Origin header


@pytest.mark.parametrize(("code", "error"), [(4401, rc.Unauthorized), (4403, rc.Forbidden)])
def test_a_websocket_refusing_the_token_raises_instead_of_retrying(
    sockets: Callable[..., list[dict[str, Any]]], code: int, error: type[Exception]
) -> None:
    sockets(FakeSocket([closed(code)]))
    with pytest.raises(error):
        next(client_for(Server()).commands(transport="websocket"))


def test_auto_falls_back_to_long_poll_without_a_websocket_route(
    sockets: Callable[..., list[dict[str, Any]]],
) -> None:
    sockets(refused(404))
    stop = threading.Event()
    server = Server((200, {"items": [command(7)]}))
    for c in client_for(server).commands(stop=stop, transport="auto"):
        assert c["id"] == "c7"
        stop.set()
    assert server.requests[0].url.path == "/api/v1/runtime/commands"

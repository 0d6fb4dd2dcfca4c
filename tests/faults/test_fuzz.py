"""Property-based fuzz of the edges: whatever the body, parameters or frames, no 5xx, no 1011,
and a refused request leaves the store as it was."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.asgi import application
from sessions_app.models import AgentSession, RuntimeCommand, SessionEvent
from tests import factories as f
from tests.api.conftest import URL, Api

# Seconds of work each: in `make test` and CI, not in the `make check` inner loop.
pytestmark = pytest.mark.slow

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# Text that includes what databases and encoders choke on: NUL, lone surrogates, odd digits.
def _query(params: dict[str, str]) -> str:
    """Percent-encode as a hostile client can: a lone surrogate goes out as the bytes UTF-8
    would give it (the test client itself refuses to encode one)."""
    return urlencode(params, errors="surrogatepass")


nasty_text = st.text(
    alphabet=st.one_of(
        st.characters(codec=None),
        st.sampled_from(["\x00", "\ud800", "\udfff", "²", "٣", "'", '"', "\\", "%"]),
    ),
    max_size=20,
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | nasty_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(nasty_text, children, max_size=4)
    ),
    max_leaves=30,
)
EVENT_TYPES = ["message", "thinking", "tool_call", "tool_result", "status_change", "error", "x"]
event = st.fixed_dictionaries(
    {
        "event_id": nasty_text,
        "type": st.sampled_from(EVENT_TYPES),
        "payload": st.dictionaries(nasty_text, json_values, max_size=4)
        | st.fixed_dictionaries({"role": st.just("agent"), "text": nasty_text}),
    }
)


def dumps(value: Any) -> bytes:
    # surrogatepass: send the bytes a hostile client would, not what json.dumps allows.
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def state() -> tuple[int, int, int]:
    return (
        AgentSession.objects.count(),
        SessionEvent.objects.count(),
        RuntimeCommand.objects.count(),
    )


@pytest.fixture
def running(world: Any) -> AgentSession:
    return f.make_session(world.agent, world.owner, status="running")


@FUZZ
@given(batch=st.lists(event, max_size=4) | json_values)
def test_event_batches(runtime: Api, running: AgentSession, batch: Any) -> None:
    before = state()
    body = {"events": batch} if isinstance(batch, list) else batch
    response = runtime.post(f"/sessions/{running.pk}/events", raw=dumps(body))
    assert response.status_code < 500, response.content
    response.json()
    if response.status_code >= 400:
        assert state() == before


@FUZZ
@given(body=json_values | st.dictionaries(st.sampled_from(["kind", "agent", "title"]), json_values))
def test_session_create_bodies(runtime: Api, body: Any) -> None:
    before = state()
    response = runtime.post("/sessions", raw=dumps(body))
    assert response.status_code < 500, response.content
    if response.status_code >= 400:
        assert state() == before


@FUZZ
@given(
    verb=st.sampled_from(["cancel", "stop", "pause", "resume", "end", "messages"]),
    body=json_values,
    key=st.none() | nasty_text,
)
def test_actions(
    world: Any, personal: Any, running: AgentSession, verb: str, body: Any, key: Any
) -> None:
    api = personal(world.owner)
    headers = {}
    if key is not None and "\x00" not in key and key.isascii():
        headers["HTTP_IDEMPOTENCY_KEY"] = key
    response = api.client.post(
        f"{URL}/sessions/{running.pk}/{verb}",
        data=dumps(body),
        content_type="application/json",
        **headers,
    )
    assert response.status_code < 500, response.content


API_PARAMS = [
    "owner",
    "kind",
    "initiative",
    "group",
    "agent",
    "project",
    "q",
    "active",
    "cursor",
    "limit",
]
PAGE_PARAMS = [*API_PARAMS[:8], "archived", "cursor", "fragment"]


@FUZZ
@given(params=st.dictionaries(st.sampled_from(API_PARAMS), nasty_text, max_size=4))
def test_api_list_parameters(runtime: Api, params: dict[str, str]) -> None:
    assert runtime.get(f"/sessions?{_query(params)}").status_code < 500


@FUZZ
@given(params=st.dictionaries(st.sampled_from(PAGE_PARAMS), nasty_text, max_size=4))
def test_page_parameters(world: Any, running: AgentSession, params: dict[str, str]) -> None:
    client = Client(raise_request_exception=False)
    client.force_login(world.owner)
    assert client.get(f"/sessions/?{_query(params)}").status_code < 500
    before = _query({"before": params.get("q", "1")})
    assert client.get(f"/sessions/{running.pk}/events/?{before}").status_code < 500


@FUZZ
@given(
    form=st.dictionaries(st.sampled_from(["text", "to", "csrfmiddlewaretoken"]), nasty_text),
    action=st.sampled_from(["message", "transfer", "pause", "clone"]),
)
def test_page_forms(world: Any, action: str, form: dict[str, str]) -> None:
    chat = f.make_session(world.agent, world.owner, "chat")
    client = Client(raise_request_exception=False)
    client.force_login(world.owner)
    before = state()
    response = client.post(
        f"/sessions/{chat.pk}/{action}/",
        _query(form),
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code < 500
    if response.status_code >= 400:
        assert state() == before


frames = st.one_of(
    json_values.map(lambda v: json.dumps(v)),
    nasty_text,
    st.integers(1, 200_000).map(lambda n: "[" * n + "]" * n),
    st.sampled_from(['{"type": "unpaged"}', '{"type": "paged"}', '{"type": "ping"}']),
)


async def _frames_never_kill(
    path: str, scope_user: Any, headers: list[Any], sent: list[str]
) -> None:
    ws = WebsocketCommunicator(application, path, headers=headers)
    if scope_user is not None:
        ws.scope["user"] = scope_user
    connected, _ = await ws.connect(timeout=10)
    assert connected
    for frame in sent:
        await ws.send_to(text_data=frame)
    # Whatever came back, the socket never ended with 1011 (an exception).
    while not await ws.receive_nothing(timeout=0.3):
        output = await ws.receive_output()
        if output["type"] == "websocket.close":
            assert output.get("code") != 1011
            break
    await ws.disconnect()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(sent=st.lists(frames.filter(bool), min_size=1, max_size=4))
def test_dashboard_frames(world: Any, sent: list[str]) -> None:
    async_to_sync(_frames_never_kill)(
        "/ws/command-center/?view=list", world.owner, [(b"origin", b"http://127.0.0.1")], sent
    )


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(sent=st.lists(frames.filter(bool), min_size=1, max_size=4))
def test_runtime_frames(runtime_token: str, sent: list[str]) -> None:
    before = RuntimeCommand.objects.filter(status="applied").count()
    async_to_sync(_frames_never_kill)(
        "/ws/runtime/", None, [(b"authorization", f"Bearer {runtime_token}".encode())], sent
    )
    assert RuntimeCommand.objects.filter(status="applied").count() == before


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(query=st.dictionaries(st.sampled_from([*PAGE_PARAMS, "view", "session"]), nasty_text))
def test_dashboard_handshake_filters(world: Any, query: dict[str, str]) -> None:
    from urllib.parse import urlencode

    qs = urlencode({k: v.encode("utf-8", "surrogatepass") for k, v in query.items()})
    async_to_sync(_frames_never_kill)(
        f"/ws/command-center/?{qs}", world.owner, [(b"origin", b"http://127.0.0.1")], []
    )

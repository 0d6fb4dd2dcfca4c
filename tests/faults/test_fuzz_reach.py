"""The fuzz of test_fuzz.py carried to the remaining doors: the runtime's command
acknowledgement and long-poll, the transcript export, and the admin changelists' query
parameters. Whatever is sent: no 5xx, and a refused request leaves the store as it was."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from django.test import Client
from hypothesis import given
from hypothesis import strategies as st

from sessions_app import services
from sessions_app.api.runtime import MAX_WAIT_SECONDS
from sessions_app.models import AgentSession, RuntimeCommand
from tests import factories as f
from tests.api.conftest import Api
from tests.faults.test_fuzz import FUZZ, _query, dumps, json_values, nasty_text, state

pytestmark = pytest.mark.slow


def segment(text: str) -> str:
    """A path segment as a hostile client can send it (lone surrogates as their raw bytes)."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def commands() -> list[tuple[Any, ...]]:
    """Everything an acknowledgement or a long-poll could change, in a comparable form."""
    return list(
        RuntimeCommand.objects.order_by("pk").values_list(
            "pk", "status", "result", "acked_at", "delivered_at"
        )
    )


@pytest.fixture
def queued(world: Any) -> RuntimeCommand:
    """A running session with a pause command queued for the runtime."""
    run = f.make_session(world.agent, world.owner, status="running")
    services.session_pause(session=run, user=world.owner)
    return RuntimeCommand.objects.get(session=run)


# --- the runtime: acknowledgements and the long-poll ---------------------------------------------

ack_status = st.sampled_from(["delivered", "applied", "rejected"]) | nasty_text
ack_body = (
    st.fixed_dictionaries(
        {"status": ack_status}, optional={"result": nasty_text | json_values, "x": json_values}
    )
    | json_values
)


@FUZZ
@given(which=st.sampled_from(["queued", "unknown", "garbage"]), garbage=nasty_text, body=ack_body)
def test_command_acks(
    runtime: Api, queued: RuntimeCommand, which: str, garbage: str, body: Any
) -> None:
    command_id = {
        "queued": str(queued.pk),
        "unknown": "00000000-0000-4000-8000-000000000000",
        "garbage": segment(garbage),
    }[which]
    before = commands()
    response = runtime.post(f"/runtime/commands/{command_id}/ack", raw=dumps(body))
    assert response.status_code < 500, response.content
    response.json()
    if response.status_code >= 400:
        assert commands() == before


def harmless_wait(value: str) -> str:
    # A valid wait would make the example sleep; everything else is fair game.
    try:
        number = int(value)
    except ValueError:
        return value
    return "0" if 0 < number <= MAX_WAIT_SECONDS else value


@FUZZ
@given(
    params=st.dictionaries(
        st.sampled_from(["wait", "cursor", "limit", "agent"]) | nasty_text,
        nasty_text | st.integers(-(2**70), 2**70).map(str),
        max_size=3,
    )
)
def test_long_poll_parameters(runtime: Api, queued: RuntimeCommand, params: dict[str, str]) -> None:
    if "wait" in params:
        params["wait"] = harmless_wait(params["wait"])
    before = commands()
    response = runtime.client.get(f"/api/v1/runtime/commands?{_query(params)}")
    assert response.status_code < 500, response.content
    response.json()
    if response.status_code >= 400:
        assert commands() == before


# --- the export ---------------------------------------------------------------------------------


@pytest.fixture
def exportable(world: Any) -> dict[str, str]:
    own = f.make_session(world.agent, world.owner, "chat", status="running")
    services.events_record(
        session=own,
        events=[services.EventIn("e1", "message", {"role": "agent", "text": "exported ²٣"})],
    )
    foreign = f.make_session(world.other_agent, world.other_admin, title="Theirs")
    return {"own": str(own.pk), "foreign": str(foreign.pk)}


@FUZZ
@given(
    which=st.sampled_from(["own", "foreign", "garbage"]),
    garbage=nasty_text,
    params=st.dictionaries(nasty_text, nasty_text, max_size=3),
)
def test_export(
    world: Any, exportable: dict[str, str], which: str, garbage: str, params: dict[str, str]
) -> None:
    session_id = {**exportable, "garbage": segment(garbage)}
    client = Client(raise_request_exception=False)
    client.force_login(world.owner)
    before = state()
    response: Any = client.get(f"/sessions/{session_id[which]}/export.json?{_query(params)}")
    assert response.status_code < 500
    body = b"".join(response.streaming_content) if response.streaming else response.content
    if which == "foreign":  # never another tenant's transcript (a NUL in the query is a 400)
        assert response.status_code in (400, 404)
        assert b"Theirs" not in body
    if response.status_code >= 400:
        assert state() == before
    else:
        # An export that happened is audited: one action line on the exported session.
        assert response.status_code == 200
        assert which == "own"
        assert state()[1] == before[1] + 1


# --- the admin changelists ----------------------------------------------------------------------

CHANGELISTS = [
    "agentsession",
    "runtimecommand",
    "accesschange",
    "apitoken",
    "agent",
    "policychange",
    "project",
    "membership",
    "tenantmembership",
    "tenant",
]
FIELDS = ["title", "status", "kind", "version", "created_at", "id", "pk", "owner", "tenant", "x"]
LOOKUPS = ["", "__exact", "__in", "__gt", "__isnull", "__year", "__regex", "__iregex", "__id"]
admin_keys = st.one_of(
    st.sampled_from(["q", "o", "p", "all", "e", "_to_field", "_popup", "_changelist_filters"]),
    st.tuples(st.sampled_from(FIELDS), st.sampled_from(LOOKUPS)).map("".join),
    nasty_text,
)
admin_values = nasty_text | st.integers(-(2**70), 2**70).map(str) | st.sampled_from(["(", "[", "*"])


@pytest.fixture
def admins(world: Any) -> list[Any]:
    """A tenant admin (scoped changelists) and a superuser (unscoped), with rows to list."""
    f.make_session(world.agent, world.owner, title="Listed")
    root = f.make_user("root", is_superuser=True, is_staff=True)
    return [world.admin, root]


@FUZZ
@given(
    model=st.sampled_from(CHANGELISTS),
    params=st.dictionaries(admin_keys, admin_values, max_size=3),
    superuser=st.booleans(),
)
def test_admin_changelist_parameters(
    admins: list[Any], model: str, params: dict[str, str], superuser: bool
) -> None:
    client = Client(raise_request_exception=False)
    client.force_login(admins[superuser])
    before = (state(), AgentSession.objects.filter(title="Listed").count())
    response = client.get(f"/admin/sessions_app/{model}/?{_query(params)}")
    assert response.status_code < 500, (model, params)
    assert (state(), AgentSession.objects.filter(title="Listed").count()) == before

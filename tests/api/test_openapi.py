"""The OpenAPI document, the docs page, and schemathesis fuzzing every operation in-process."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from sessions_app import services
from sessions_app.models import RuntimeCommand, TokenKind
from tests import factories as f
from tests.api.conftest import Api, make_token

pytestmark = pytest.mark.django_db


def test_the_openapi_document_lists_every_endpoint(world: Any) -> None:
    response = Api(None).get("/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) >= {
        "/api/v1/sessions",
        "/api/v1/sessions/{session_id}",
        "/api/v1/sessions/{session_id}/events",
        "/api/v1/sessions/{session_id}/cancel",
        "/api/v1/sessions/{session_id}/stop",
        "/api/v1/sessions/{session_id}/pause",
        "/api/v1/sessions/{session_id}/resume",
        "/api/v1/sessions/{session_id}/end",
        "/api/v1/sessions/{session_id}/checkpoint/approve",
        "/api/v1/sessions/{session_id}/checkpoint/reject",
        "/api/v1/sessions/{session_id}/messages",
        "/api/v1/sessions/{session_id}/pin",
        "/api/v1/sessions/{session_id}/unpin",
        "/api/v1/sessions/{session_id}/clone",
        "/api/v1/sessions/{session_id}/transfer",
        "/api/v1/sessions/{session_id}/export",
        "/api/v1/runtime/commands",
        "/api/v1/runtime/commands/{command_id}/ack",
    }
    assert "delete" in doc["paths"]["/api/v1/sessions/{session_id}"]
    assert doc["components"]["securitySchemes"]["TokenAuth"]["scheme"] == "bearer"


def test_the_interactive_docs_are_served(world: Any) -> None:
    response = Api(None).client.get("/api/v1/docs")
    assert response.status_code == 200
    assert b"openapi.json" in response.content


# --- schemathesis ---------------------------------------------------------------------------------


class Fixtures:
    def __init__(self, world: Any) -> None:
        self.agent_id = world.agent.pk
        self.runtime = make_token(world, TokenKind.RUNTIME, world.agent_owner, [world.agent])
        self.personal = make_token(world, TokenKind.PERSONAL, world.admin)
        self.sessions = [
            str(f.make_session(world.agent, world.owner, kind, status=status).pk)
            for kind, status in (
                ("flow_run", "running"),
                ("background_task", "queued"),
                ("chat", "running"),
                ("flow_run", "completed"),
            )
        ]
        paused = f.make_session(world.agent, world.owner, status="running")
        services.session_pause(session=paused, user=world.admin)
        self.sessions.append(str(paused.pk))
        self.commands = [str(pk) for pk in RuntimeCommand.objects.values_list("pk", flat=True)]
        self.turn = itertools.count()


@pytest.fixture
def fuzz_data(world: Any) -> Fixtures:
    return Fixtures(world)


# Loaded at collection: the document needs no database. In-process WSGI calls share the test's
# database connection, so the fixtures below are visible to every case.
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", get_wsgi_application())


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@pytest.mark.slow
def test_the_api_never_answers_5xx_and_matches_its_schema(
    case: Any, fuzz_data: Fixtures, shared_connection: None
) -> None:
    path, method = case.operation.path, case.method.upper()
    runtime_op = "/runtime/" in path or (
        method == "POST" and (path.endswith("/events") or path == "/api/v1/sessions")
    )
    token = fuzz_data.runtime if runtime_op else fuzz_data.personal
    # Half the cases address real rows, so the fuzzing reaches past the 404s.
    turn = next(fuzz_data.turn)
    if turn % 2 and case.path_parameters:
        if "session_id" in case.path_parameters:
            case.path_parameters["session_id"] = fuzz_data.sessions[turn % len(fuzz_data.sessions)]
        if "command_id" in case.path_parameters and fuzz_data.commands:
            case.path_parameters["command_id"] = fuzz_data.commands[0]
    if turn % 2 and path == "/api/v1/sessions" and method == "POST" and isinstance(case.body, dict):
        case.body.update(agent=fuzz_data.agent_id, owner="owner", initiative=None, parent=None)
    if "wait" in (case.query or {}):
        case.query["wait"] = 0  # a long-poll would only slow the run down
    response = case.call(headers={"Authorization": f"Bearer {token}"})
    case.validate_response(
        response,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )

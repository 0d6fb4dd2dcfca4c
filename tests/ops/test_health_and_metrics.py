"""/healthz, /readyz and /metrics: what a load balancer, an orchestrator and Prometheus see."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.db import OperationalError
from django.test import Client

from config import health
from sessions_app.models import TokenKind
from tests.api.conftest import Api, events, make_token
from tests.conftest import World

pytestmark = pytest.mark.django_db
CLOSED = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def test_healthz_answers_without_touching_dependencies(monkeypatch: Any) -> None:
    def broken() -> None:
        raise OperationalError("database is down")

    monkeypatch.setitem(health.CHECKS, "database", broken)
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_ready_when_every_part_answers() -> None:
    response = Client().get("/readyz")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["failing"] == []
    assert set(body["checks"]) == {"database", "migrations", "channel_layer", "broker"}


def test_readyz_names_the_database_when_it_is_down(monkeypatch: Any) -> None:
    def down() -> None:
        raise OperationalError("connection refused")

    monkeypatch.setitem(health.CHECKS, "database", down)
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json()["failing"] == ["database"]
    assert "connection refused" in response.json()["checks"]["database"]["error"]
    monkeypatch.undo()
    assert Client().get("/readyz").status_code == 200  # back when it returns


def test_readyz_names_redis_parts_that_do_not_answer(settings: Any) -> None:
    layers = {**settings.CHANNEL_LAYERS}
    layers["default"] = {
        **layers["default"],
        "CONFIG": {**layers["default"]["CONFIG"], "hosts": [CLOSED]},
    }
    settings.CHANNEL_LAYERS = layers
    settings.CELERY_BROKER_URL = CLOSED
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["channel_layer", "broker"]
    assert response.json()["checks"]["database"]["ok"] is True


def _sample(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        metric, _, value = line.rpartition(" ")
        metric_name, _, label_text = metric.partition("{")
        got = ",".join(sorted(label_text.rstrip("}").split(","))) if label_text else ""
        if metric_name == name and got == want:
            return float(value)
    return 0.0


def test_metrics_change_as_sessions_work(world: World) -> None:
    scrape = Client()
    before = scrape.get("/metrics")
    assert before.status_code == 200
    assert before["Content-Type"].startswith("text/plain")
    runtime = Api(make_token(world, TokenKind.RUNTIME, world.agent_owner, [world.agent]))
    created = runtime.post(
        "/sessions",
        {"agent": world.agent.pk, "owner": world.owner.get_username(), "kind": "flow_run"},
    )
    sid = created.json()["id"]
    secret = "ghp_" + "R8dq2Lw7Xk9PzT4mVb6NcYe1Hs3Jf5Ga0Uo2"
    batch = events(
        ("message", {"role": "agent", "text": f"token {secret}"}), ("thinking", {"text": "hm"})
    )
    assert runtime.post(f"/sessions/{sid}/events", batch).status_code == 200
    assert runtime.post(f"/sessions/{sid}/events", batch).status_code == 200  # a retry
    after = scrape.get("/metrics").content.decode()
    text_before = before.content.decode()
    for name, labels, grew_by in [
        ("scc_ingest_events_total", {"outcome": "created"}, 2),
        ("scc_ingest_events_total", {"outcome": "duplicate"}, 2),
        ("scc_ingest_batches_total", {"outcome": "stored"}, 2),
        ("scc_redactions_total", {"rule": "github_token"}, 1),
    ]:
        delta = _sample(after, name, **labels) - _sample(text_before, name, **labels)
        assert delta == grew_by, (name, labels, delta)
    assert _sample(after, "scc_sessions", kind="flow_run", status_group="active") >= 1
    assert re.search(
        r'scc_api_request_duration_seconds_count\{[^}]*route="api/v1/sessions/<session_id>/events"',
        after,
    )
    assert "scc_command_oldest_undelivered_seconds" in after
    assert secret not in after


def test_metrics_are_for_the_scraper_only(settings: Any) -> None:
    settings.SCC_METRICS_ALLOW = []
    settings.SCC_METRICS_TOKEN = "s3cret-scrape-token-value"
    assert Client().get("/metrics").status_code == 404
    assert Client(headers={"Authorization": "Bearer wrong"}).get("/metrics").status_code == 404
    allowed = Client(headers={"Authorization": "Bearer s3cret-scrape-token-value"})
    assert allowed.get("/metrics").status_code == 200

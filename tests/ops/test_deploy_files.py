"""The deployment files name only things that exist: every command they run is one the test
suite or .ci/run runs too, so a renamed module or command breaks here, not in production."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core.management import get_commands

ROOT = Path(__file__).resolve().parent.parent.parent
DEPLOY = ROOT / "config" / "deploy"


def test_every_manage_py_command_exists() -> None:
    text = (DEPLOY / "compose.yaml").read_text() + (DEPLOY / "Procfile").read_text()
    used = set(re.findall(r"manage\.py (\w+)", text))
    assert used >= {"migrate", "seed_demo", "demo_runtime", "collectstatic"}
    assert used <= set(get_commands())


def test_the_asgi_and_celery_apps_they_name_import() -> None:
    text = (DEPLOY / "compose.yaml").read_text() + (DEPLOY / "Procfile").read_text()
    assert "config.asgi:application" in text
    assert re.search(r"celery -A config (worker|beat)", text)
    from config.asgi import application
    from config.celery import app

    assert application is not None
    assert app.main == "scc"


@pytest.mark.parametrize("service", ["web1", "web2", "worker", "beat", "demo", "setup"])
def test_compose_defines_each_service(service: str) -> None:
    assert re.search(rf"^  {service}:$", (DEPLOY / "compose.yaml").read_text(), re.M)


def test_exactly_one_beat() -> None:
    procfile = (DEPLOY / "Procfile").read_text()
    assert len(re.findall(r"^beat:", procfile, re.M)) == 1
    compose = (DEPLOY / "compose.yaml").read_text()
    assert len(re.findall(r"celery -A config beat", compose)) == 1

"""A malformed environment value stops start-up with a message naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


# Each case starts a fresh Python process to watch settings refuse a bad value.
pytestmark = pytest.mark.integration


def _start(env_overrides: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DJANGO_DEBUG", "maybe", "DJANGO_DEBUG must be a boolean"),
        ("DATABASE_URL", "mysql://x/y", "DATABASE_URL must start with one of"),
        ("DATABASE_URL", "postgres://host:notaport/db", "DATABASE_URL is not a valid URL"),
        ("REDIS_URL", "http://localhost", "REDIS_URL must start with one of"),
        ("REDIS_URL", "redis://", "REDIS_URL has no host"),
        ("EMBEDDED_REDIS_PORT", "six", "EMBEDDED_REDIS_PORT must be an integer"),
        ("DJANGO_SECRET_KEY", "short", "DJANGO_SECRET_KEY must be at least 32"),
        ("DB_CONN_MAX_AGE", "-1", "DB_CONN_MAX_AGE must be at least 0"),
        ("DJANGO_ALLOWED_HOSTS", " , ", "DJANGO_ALLOWED_HOSTS must be a comma-separated list"),
        ("SCC_METRICS_ALLOW", "10.0.0.0/33", "SCC_METRICS_ALLOW must list IP addresses"),
        ("SCC_HSTS_SECONDS", "-5", "SCC_HSTS_SECONDS must be at least 0"),
    ],
)
def test_a_malformed_value_stops_startup_naming_the_variable(
    name, value, message, tmp_path
) -> None:
    result = _start({name: value, "VAR_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr


def test_the_defaults_start(tmp_path) -> None:
    result = _start({"VAR_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr


def test_a_public_host_refuses_the_built_in_secret_key(tmp_path) -> None:
    public = {"VAR_DIR": str(tmp_path), "DJANGO_ALLOWED_HOSTS": "scc.example.com"}
    refused = _start(public)
    assert refused.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in refused.stderr
    started = _start({**public, "DJANGO_SECRET_KEY": "k" * 50})
    assert started.returncode == 0, started.stderr

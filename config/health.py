"""Liveness and readiness for load balancers and orchestrators: no auth, cheap, JSON.

`/healthz` says the process answers (no dependency is touched, so a database outage never gets
a healthy web process restarted). `/readyz` says whether this process can serve: the database
answers, the channel layer's Redis answers, the Celery broker answers and every migration is
applied; otherwise 503 naming each failing part, so traffic goes elsewhere until it recovers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

PROBE_TIMEOUT_SECONDS = 2.0
_migrated = False  # once every migration is applied it stays so for the process's life


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _database() -> None:
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT 1")


def _migrations() -> None:
    global _migrated
    if _migrated:
        return
    connection = connections[DEFAULT_DB_ALIAS]
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        raise RuntimeError(f"{len(plan)} migration(s) not applied")
    _migrated = True


def _ping(url: str) -> None:
    client = redis.Redis.from_url(
        url, socket_connect_timeout=PROBE_TIMEOUT_SECONDS, socket_timeout=PROBE_TIMEOUT_SECONDS
    )
    try:
        client.ping()
    finally:
        client.close()


def _channel_layer() -> None:
    layers: Any = settings.CHANNEL_LAYERS
    for host in layers["default"]["CONFIG"]["hosts"]:
        _ping(host if isinstance(host, str) else host["address"])


def _broker() -> None:
    _ping(settings.CELERY_BROKER_URL)


CHECKS: dict[str, Callable[[], None]] = {
    "database": _database,
    "migrations": _migrations,
    "channel_layer": _channel_layer,
    "broker": _broker,
}


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    results: dict[str, Any] = {}
    failing: list[str] = []
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            check()
        except Exception as exc:
            failing.append(name)
            results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
        else:
            results[name] = {"ok": True, "ms": round(1000 * (time.perf_counter() - started), 1)}
    body = {"status": "unavailable" if failing else "ready", "failing": failing, "checks": results}
    response = JsonResponse(body, status=503 if failing else 200)
    if failing:
        response["Retry-After"] = "5"
    return response

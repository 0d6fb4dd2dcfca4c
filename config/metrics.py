"""`/metrics` in Prometheus text format, for the operator's scraper only.

Access: a bearer token (`SCC_METRICS_TOKEN`) or a client address in `SCC_METRICS_ALLOW` (default
loopback only); anyone else gets 404, as if the route did not exist. With PROMETHEUS_MULTIPROC_DIR
set, the samples of every process on the host are aggregated; the database-backed gauges are
read at scrape time by this process alone.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import time
from collections.abc import Iterator
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.db import DatabaseError
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector

from sessions_app import metrics as metrics_
from sessions_app import selectors


class DatabaseCollector(Collector):
    """Sessions by kind and status group and the oldest undelivered command, read per scrape."""

    def collect(self) -> Iterator[Metric]:
        try:
            counts = selectors.session_counts_by_kind_and_group()
            oldest = selectors.oldest_undelivered_command_age()
        except DatabaseError:
            return  # the scrape still reports the process metrics; readiness reports the DB
        sessions = GaugeMetricFamily(
            "scc_sessions", "Sessions by kind and status group", labels=["kind", "status_group"]
        )
        for (kind, group), n in sorted(counts.items()):
            sessions.add_metric([kind, group], n)
        yield sessions
        yield GaugeMetricFamily(
            "scc_command_oldest_undelivered_seconds",
            "Age of the oldest queued command no runtime has taken yet (0 when none)",
            value=oldest,
        )


def _allowed(request: HttpRequest) -> bool:
    token = settings.SCC_METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(header.encode(), f"Bearer {token}".encode()):
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in network for network in settings.SCC_METRICS_ALLOW)


def _registry() -> Any:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # prometheus-client leaves this constructor unannotated.
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Process())
    registry.register(DatabaseCollector())
    return registry


class _Process(Collector):
    """This process's own metrics (the default registry) when not in multiprocess mode."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not _allowed(request):
        raise Http404
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)


class ApiMetricsMiddleware:
    """Times API requests by route pattern (not by URL, which would be one series per session).
    Sync and async capable, so it adds no thread hop under daphne."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        started = time.perf_counter()
        response = self.get_response(request)
        _observe(request, response, started)
        return response

    async def _acall(self, request: HttpRequest) -> Any:
        started = time.perf_counter()
        response = await self.get_response(request)
        _observe(request, response, started)
        return response


def _observe(request: HttpRequest, response: HttpResponse, started: float) -> None:
    if not request.path.startswith("/api/"):
        return
    match = request.resolver_match
    route = match.route if match is not None else "unmatched"
    metrics_.API_LATENCY.labels(
        route, request.method or "", f"{response.status_code // 100}xx"
    ).observe(time.perf_counter() - started)

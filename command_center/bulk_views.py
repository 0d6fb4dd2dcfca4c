"""Bulk actions on the Sessions page: the dry run, starting a run, its progress and abort.

The targets are the list's filter (as its query string) or the selected rows, always within
what the viewer may see; the rules live in `selectors.bulk_refusal` and the per-session
services."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from command_center import filters
from sessions_app import selectors, services, tasks
from sessions_app.models import BulkAction


class BadScope(ValueError):
    pass


def _scope(request: HttpRequest) -> dict[str, Any]:
    """What the operator chose, from the bulk form: every session matching the filter, or
    the selected ones. Raises BadScope naming the field."""
    if request.POST.get("scope") == "selected":
        raw = request.POST.getlist("ids")
        if not raw:
            raise BadScope("ids: select at least one session")
        if len(raw) > selectors.bulk.MAX_SELECTED:
            raise BadScope(f"ids: at most {selectors.bulk.MAX_SELECTED} sessions at once")
        try:
            ids = sorted({str(uuid.UUID(i)) for i in raw})
        except ValueError:
            raise BadScope("ids must be session ids") from None
        return {"ids": ids}
    query = request.POST.get("filter", "")[:2000]
    try:
        flt = filters.parse_filter(QueryDict(query))
    except filters.BadFilter as exc:
        raise BadScope(f"filter: {exc}") from None
    return {"filter": filters.filter_query(flt), "flt": flt}


def _targets(request: HttpRequest, scope: dict[str, Any]) -> Any:
    if "ids" in scope:
        return selectors.bulk_targets(request.user, ids=scope["ids"])
    return selectors.bulk_targets(request.user, flt=scope["flt"])


def _bad(message: str) -> HttpResponse:
    return HttpResponse(message, status=400, content_type="text/plain")


@require_POST
@login_required
def bulk_preview(request: HttpRequest) -> HttpResponse:
    """The dry run: what each action would change and skip, and why."""
    try:
        scope = _scope(request)
    except BadScope as exc:
        return _bad(str(exc))
    preview = selectors.bulk_preview(request.user, _targets(request, scope))
    ctx = {"preview": preview, "scope": scope}
    return render(request, "command_center/bulk.html#preview", ctx)


@require_POST
@login_required
def bulk_start(request: HttpRequest) -> HttpResponse:
    action = request.POST.get("action", "")
    if action not in BulkAction.values:
        return _bad(f"action must be one of {', '.join(BulkAction.values)}")
    try:
        scope = _scope(request)
    except BadScope as exc:
        return _bad(str(exc))
    run = services.bulk_start(
        user=request.user,
        action=action,
        flt=scope.get("flt"),
        ids=scope.get("ids", ()),
        scope={k: v for k, v in scope.items() if k != "flt"},
        enqueue=tasks.bulk_run.delay,
    )
    return render(request, "command_center/bulk.html#progress", {"p": selectors.bulk_progress(run)})


def _run_or_404(request: HttpRequest, run_id: str) -> Any:
    try:
        run = selectors.bulk_run_for(request.user, uuid.UUID(run_id))
    except ValueError:
        run = None
    if run is None:
        raise Http404("No such bulk run.")
    return run


@require_GET
@login_required
def bulk_progress(request: HttpRequest, run_id: str) -> HttpResponse:
    run = _run_or_404(request, run_id)
    return render(request, "command_center/bulk.html#progress", {"p": selectors.bulk_progress(run)})


@require_POST
@login_required
def bulk_abort(request: HttpRequest, run_id: str) -> HttpResponse:
    run = services.bulk_abort(user=request.user, run=_run_or_404(request, run_id))
    return render(request, "command_center/bulk.html#progress", {"p": selectors.bulk_progress(run)})

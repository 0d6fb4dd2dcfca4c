"""The Insights page, its live body and the strip on the Sessions page and the Command Center
panel. The figures come from `selectors.insights_for`; `insight_plots` lays them out."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from command_center import filters, insight_plots
from sessions_app import selectors, states

PAGE_REFRESH_SECONDS = 5
STRIP_REFRESH_SECONDS = 10


def _days(request: HttpRequest) -> int:
    raw = request.GET.get("days", "")
    if raw.isascii() and raw.isdigit() and int(raw) in selectors.WINDOW_DAYS:
        return int(raw)
    if raw:
        raise filters.BadFilter(
            f"days must be one of {', '.join(str(d) for d in selectors.WINDOW_DAYS)}"
        )
    return 7


@require_GET
@login_required
def insights_page(request: HttpRequest) -> HttpResponse:
    try:
        flt = filters.parse_filter(request.GET)
        days = _days(request)
    except filters.BadFilter as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain")
    ins = selectors.insights_for(request.user, flt, days=days)
    filter_qs = filters.filter_query(flt)
    ctx = {
        "ins": ins,
        "plots": insight_plots.plots(ins),
        "flt": flt,
        "filter_qs": filter_qs,
        "days": days,
        "window_days": selectors.WINDOW_DAYS,
        "refresh": PAGE_REFRESH_SECONDS,
        "nav": "insights",
    }
    if request.GET.get("fragment") == "body":
        return render(request, "command_center/insights.html#body", ctx)
    ctx.update(
        kinds=states.Kind.choices,
        groups=states.Group.choices,
        **selectors.filter_facets(request.user),
    )
    return render(request, "command_center/insights.html", ctx)


@require_GET
@login_required
def insights_strip(request: HttpRequest) -> HttpResponse:
    try:
        flt = filters.parse_filter(request.GET)
    except filters.BadFilter as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain")
    ins = selectors.insights_for(request.user, flt, days=1)
    ctx = {"strip": insight_plots.strip(ins), "filter_qs": filters.filter_query(flt)}
    return render(request, "command_center/insights.html#strip", ctx)

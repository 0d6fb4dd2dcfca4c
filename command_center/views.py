"""Pages and htmx endpoints. Views parse input, call one selector or service, and render;
the rules live in sessions_app."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails

from command_center import filters, fragments
from sessions_app import exports, selectors, services, states
from sessions_app.api.download import download
from sessions_app.errors import DomainError, InvalidCursor, NotFound


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _session_or_404(request: HttpRequest, session_id: Any) -> Any:
    try:
        return selectors.session_get_for_user(request.user, session_id)
    except NotFound:
        raise Http404("No such session, or you may not see it.") from None


@require_GET
def home(request: HtmxHttpRequest) -> HttpResponse:
    return redirect("sessions")


@require_GET
@login_required
def sessions_page(request: HtmxHttpRequest) -> HttpResponse:
    try:
        flt = filters.parse_filter(request.GET)
    except filters.BadFilter as exc:
        return render(
            request,
            "command_center/sessions.html",
            {
                **_facet_context(request),
                "flt": selectors.SessionFilter(),
                "filter_error": str(exc),
                "page": selectors.Page([], None),
                "nav": "sessions",
            },
            status=400,
        )
    cursor = request.GET.get("cursor") or None
    try:
        page = selectors.session_page(request.user, flt, cursor=cursor, limit=50)
    except InvalidCursor as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain")
    filter_qs = filters.filter_query(flt)
    ctx = {"page": page, "flt": flt, "filter_qs": filter_qs}
    if cursor and request.htmx:
        return render(request, "command_center/sessions.html#more-rows", ctx)
    if request.htmx and request.GET.get("fragment") == "list":
        return render(request, "command_center/sessions.html#list", ctx)
    ctx.update(
        _facet_context(request),
        match_count=selectors.match_count(request.user, flt),
        bulk_runs=selectors.bulk_runs_in_progress(request.user),
        nav="sessions",
        filter_active=bool(filter_qs),
        ws_query=filters.filter_query(flt, view="list"),
    )
    return render(request, "command_center/sessions.html", ctx)


def _facet_context(request: HttpRequest) -> dict[str, Any]:
    return {
        "kinds": states.Kind.choices,
        "groups": states.Group.choices,
        **selectors.filter_facets(request.user),
    }


@require_GET
@login_required
def panel(request: HtmxHttpRequest) -> HttpResponse:
    return HttpResponse(fragments.panel_body_html(request.user))


@require_GET
@login_required
def session_detail(request: HtmxHttpRequest, session_id: str) -> HttpResponse:
    session = _session_or_404(request, session_id)
    ctx = fragments.detail_context(request.user, session, **fragments.transcript_page(session))
    ctx["ws_query"] = f"view=detail&session={session.pk}"
    ctx["transfer_agents"] = selectors.agents_usable_by(request.user).exclude(pk=session.agent_id)
    return render(request, "command_center/detail.html", ctx)


@require_GET
@login_required
def session_events(request: HtmxHttpRequest, session_id: str) -> HttpResponse:
    """Older transcript pages ("Load earlier"): keyset by seq, never the whole transcript."""
    session = _session_or_404(request, session_id)
    raw = request.GET.get("before", "")
    # isascii: str.isdigit() also accepts digits such as "²" that int() refuses.
    if not (raw.isascii() and raw.isdigit()):
        return HttpResponse(
            "before must be a positive event number", status=400, content_type="text/plain"
        )
    ctx = {"s": session, **fragments.transcript_page(session, before=int(raw))}
    return render(request, "command_center/detail.html#older", ctx)


ACTIONS: dict[str, Callable[..., Any]] = {
    "cancel": services.session_cancel,
    "stop": services.session_stop,
    "pause": services.session_pause,
    "resume": services.session_resume,
    "end": services.session_end,
}


@require_POST
@login_required
def session_action(request: HtmxHttpRequest, session_id: str, verb: str) -> HttpResponse:
    session = _session_or_404(request, session_id)
    error = ""
    status = 200
    try:
        if verb in ACTIONS:
            ACTIONS[verb](session=session, user=request.user)
        elif verb in ("approve", "reject"):
            services.checkpoint_decide(
                session=session, user=request.user, approve=verb == "approve"
            )
        elif verb == "pin":
            services.session_set_pinned(
                session=session, user=request.user, pinned=not session.pinned
            )
        else:
            raise Http404(f"Unknown action {verb!r}.")
    except DomainError as exc:
        error, status = str(exc), exc.status
    session = _session_or_404(request, session_id)
    if not request.htmx:
        return redirect("session_detail", session_id=session.pk)
    return HttpResponse(
        fragments.header_html(request.user, session, action_error=error), status=status
    )


def _go(request: HtmxHttpRequest, url: str) -> HttpResponse:
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def _header_error(request: HtmxHttpRequest, session: Any, error: str, status: int) -> HttpResponse:
    if not request.htmx:
        return HttpResponse(error, status=status, content_type="text/plain")
    return HttpResponse(
        fragments.header_html(request.user, session, action_error=error), status=status
    )


@require_POST
@login_required
def session_clone(request: HtmxHttpRequest, session_id: str) -> HttpResponse:
    """A fresh session with the same agent and settings, owned by the viewer."""
    session = _session_or_404(request, session_id)
    try:
        clone = services.session_clone(session=session, user=request.user)
    except DomainError as exc:
        return _header_error(request, session, str(exc), exc.status)
    return _go(request, reverse("session_detail", args=[clone.pk]))


@require_POST
@login_required
def session_transfer(request: HtmxHttpRequest, session_id: str) -> HttpResponse:
    """Hand the session to another member of the workspace or to another agent; opens the
    successor."""
    session = _session_or_404(request, session_id)
    raw_agent = request.POST.get("to_agent", "").strip()
    if raw_agent and not (raw_agent.isascii() and raw_agent.isdigit()):
        return _header_error(request, session, "to_agent: must be an agent id", 422)
    try:
        successor = services.session_hand_over(
            session=session,
            user=request.user,
            to_user=request.POST.get("to", "").strip(),
            to_agent=int(raw_agent) if raw_agent else None,
        )
    except DomainError as exc:
        return _header_error(request, session, str(exc), exc.status)
    return _go(request, reverse("session_detail", args=[successor.pk]))


@require_POST
@login_required
def session_delete(request: HtmxHttpRequest, session_id: str) -> HttpResponse:
    session = _session_or_404(request, session_id)
    try:
        services.session_delete(session=session, user=request.user)
    except DomainError as exc:
        return _header_error(request, session, str(exc), exc.status)
    return _go(request, reverse("sessions"))


@require_POST
@login_required
def session_message(request: HtmxHttpRequest, session_id: str) -> HttpResponse:
    session = _session_or_404(request, session_id)
    text = request.POST.get("text", "")
    ctx: dict[str, Any] = {"s": session, "can_act": selectors.can_act(request.user, session)}
    status = 200
    try:
        services.message_send(session=session, user=request.user, text=text)
        ctx["composer_sent"] = True
    except DomainError as exc:
        ctx.update(composer_error=str(exc), composer_text=text)
        status = exc.status
    if not request.htmx:
        return redirect("session_detail", session_id=session.pk)
    return render(request, "command_center/detail.html#composer", ctx, status=status)


@require_GET
@login_required
def session_export(
    request: HtmxHttpRequest, session_id: str, ext: str = "json"
) -> HttpResponseBase:
    """The session as a download: export.json, .md, .pdf or .zip (the verifiable bundle)."""
    session = _session_or_404(request, session_id)
    export_format = exports.BY_EXTENSION.get(ext)
    if export_format is None:
        raise Http404(f"No export as .{ext}; try .json, .md, .pdf or .zip.")
    export = exports.session_export(
        session=session, viewer=request.user, user=request.user, fmt=export_format.key, via="web"
    )
    return download(request, export)


@require_GET
@login_required
def session_print(request: HtmxHttpRequest, session_id: str) -> HttpResponse:
    """The print view: the document the PDF export renders, for the browser's own printing."""
    session = _session_or_404(request, session_id)
    snapshot = exports.snapshot_of(session, viewer=request.user, user=request.user)
    return render(request, "sessions_app/export/print.html", exports.print_context(snapshot))

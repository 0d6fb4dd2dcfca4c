"""The New session dialog (Sessions page and Command Center): the form, re-rendered when the
agent changes (its model policy and max duration shape the fields), and the create. The rules
are `services.session_new`'s; this view puts its errors on the fields they name."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods
from django_htmx.http import HttpResponseClientRedirect

from sessions_app import selectors, services
from sessions_app.errors import DomainError, InvalidInput
from sessions_app.forms import NewSessionForm
from sessions_app.models import Agent, Origin
from sessions_app.policies import MAX_SESSION_TIMEOUT_SECONDS

# Service field names that are not form fields, and where their errors belong.
_FIELD_OF = {"owner": "agent", "metadata": None, "origin": None, "text": "input"}


def _form(request: HttpRequest, data: Any, initial: dict[str, Any] | None = None) -> NewSessionForm:
    return NewSessionForm(
        data,
        initial=initial,
        agents=list(selectors.agents_usable_by(request.user)),
        initiatives=list(selectors.initiatives_of(request.user)),
    )


def _render(request: HttpRequest, form: NewSessionForm, *, status: int = 200) -> HttpResponse:
    agent: Agent | None = form.chosen_agent()
    ctx: dict[str, Any] = {"form": form, "agent": agent}
    if agent is not None:
        ctx["model_editable"] = agent.allow_model_override and services.may_override_model(
            request.user, agent
        )
        ctx["timeout_max"] = min(MAX_SESSION_TIMEOUT_SECONDS, agent.max_duration_seconds)
    return render(request, "command_center/new_session.html#form", ctx, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def session_new(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        # Unbound, what was typed so far as initial values: a GET only re-shapes the form
        # (another agent was picked), so it shows no errors.
        return _render(request, _form(request, None, initial=request.GET.dict()))
    form = _form(request, request.POST)
    if not form.is_valid():
        return _render(request, form, status=422)
    data = form.cleaned_data
    initiatives = {i.pk: i for i in selectors.initiatives_of(request.user)}
    try:
        session = services.session_new(
            agent=form.agents[data["agent"]],
            user=request.user,
            kind=data["kind"],
            text=data["input"],
            title=data["title"],
            model=data["model"],
            temperature=data["temperature"],
            max_tokens=data["max_tokens"],
            timeout_seconds=data["timeout_seconds"],
            initiative=initiatives.get(data["initiative"]) if data["initiative"] else None,
            metadata={"repo": data["repo"], "branch": data["branch"], "origin": Origin.WEB},
        )
    except InvalidInput as exc:
        field = _FIELD_OF.get(exc.field, exc.field)
        form.add_error(field if field in form.fields else None, exc.reason)
        return _render(request, form, status=exc.status)
    except DomainError as exc:
        form.add_error(None, str(exc))
        return _render(request, form, status=exc.status)
    url = reverse("session_detail", args=[session.pk])
    htmx = getattr(request, "htmx", False)
    return HttpResponseClientRedirect(url) if htmx else redirect(url)

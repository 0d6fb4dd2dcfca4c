from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from sessions_app import selectors


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return redirect("sessions")


@require_GET
@login_required
def sessions_page(request: HttpRequest) -> HttpResponse:
    page = selectors.session_page(request.user, selectors.SessionFilter(), limit=50)
    return render(request, "command_center/sessions.html", {"page": page})

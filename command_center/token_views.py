"""Personal API tokens, self-service: a person mints and revokes their own. The raw value is
shown once, in the answer to the mint; only its hash is stored."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from sessions_app import selectors, services
from sessions_app.errors import DomainError
from sessions_app.models import TokenKind


@login_required
@require_http_methods(["GET", "POST"])
def tokens_page(request: HttpRequest) -> HttpResponse:
    tenants = selectors.token_tenants_for(request.user)
    ctx: dict[str, object] = {"nav": "tokens", "tenants": tenants}
    status = 200
    if request.method == "POST":
        name = request.POST.get("name", "")
        tenant_id = _int(request.POST.get("tenant"))
        tenant = tenants.filter(pk=tenant_id).first() if tenant_id is not None else None
        try:
            if tenant is None:
                raise Http404("No such workspace, or you are not a member.")
            _, raw = services.token_create(
                tenant=tenant,
                kind=TokenKind.PERSONAL,
                name=name,
                user=request.user,
                created_by=request.user,
            )
        except DomainError as exc:
            ctx.update(error=str(exc), name=name)
            status = exc.status
        else:
            # Shown in this answer only; reloading the page never shows it again.
            ctx["raw_token"] = raw
            status = 201
    ctx["tokens"] = selectors.tokens_of_user(request.user)
    return render(request, "command_center/tokens.html", ctx, status=status)


@login_required
@require_POST
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    token = selectors.tokens_of_user(request.user).filter(pk=token_id).first()
    if token is None:
        raise Http404("No such token.")
    if services.token_revoke(token=token, by=request.user):
        messages.success(request, f"Token {token.name} revoked.")
    return redirect("tokens")


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isascii() and value.isdigit() else None

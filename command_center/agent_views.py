"""Agent settings page: the session policy form for tenant admins and the agent's owner.

Saves through `services.agent_policy_update`, the same service the Django admin uses.
"""

from __future__ import annotations

import copy

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from sessions_app import selectors, services
from sessions_app.errors import NotAllowed, NotFound, PolicyInvalid
from sessions_app.forms import AgentPolicyForm

HISTORY_LIMIT = 20


@login_required
@require_http_methods(["GET", "POST"])
def agent_settings(request: HttpRequest, agent_id: int) -> HttpResponse:
    try:
        agent = selectors.agent_for_policy_edit(request.user, agent_id)
    except NotFound:
        raise Http404("No such agent.") from None
    except NotAllowed as exc:
        raise PermissionDenied(str(exc)) from None
    # The form validates a copy so `agent` keeps the saved policy until the service changes it.
    form = AgentPolicyForm(
        request.POST if request.method == "POST" else None,
        instance=copy.copy(agent),
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.agent_policy_update(
                agent=agent, user=request.user, changes=form.policy_changes()
            )
        except PolicyInvalid as exc:
            # The form checks the same rules; this only happens if the policy changed meanwhile.
            for field, message in exc.errors.items():
                form.add_error(field if field in form.fields else None, message)
        else:
            messages.success(request, f"Session policy of {agent.name} saved.")
            return redirect("agent_settings", agent_id=agent.pk)
    history = selectors.policy_history(agent, limit=HISTORY_LIMIT)
    return render(
        request,
        "command_center/agent_settings.html",
        {"agent": agent, "form": form, "history": history},
    )

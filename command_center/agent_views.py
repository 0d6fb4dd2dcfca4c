"""Agent settings page: the session policy form for tenant admins and the agent's owner.

Saves through `services.agent_policy_update`, the same service the Django admin uses.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from sessions_app import policies, selectors, services
from sessions_app.forms import AgentPolicyForm
from sessions_app.models import Agent, Membership, PolicyChange

HISTORY_LIMIT = 20


def _agent_for_policy_edit(request: HttpRequest, agent_id: int) -> Agent:
    """The agent if the viewer may edit its policy. Project members who may not get 403 (they
    know the agent: its sessions are in their list); everyone else gets 404, as if it did not
    exist, which is what another workspace's agent must look like."""
    agent = Agent.objects.select_related("project", "owner").filter(pk=agent_id).first()
    if agent is None:
        raise Http404("No such agent.")
    if policies.can_edit_policy(request.user, agent):
        return agent
    access = selectors.access_for(request.user)
    if (
        access.user_id is not None
        and agent.tenant_id in access.tenant_ids
        and Membership.objects.filter(project_id=agent.project_id, user_id=access.user_id).exists()
    ):
        raise PermissionDenied("Only tenant admins and the agent's owner may change its policy.")
    raise Http404("No such agent.")


@login_required
@require_http_methods(["GET", "POST"])
def agent_settings(request: HttpRequest, agent_id: int) -> HttpResponse:
    agent = _agent_for_policy_edit(request, agent_id)
    # The form validates a copy so `agent` keeps the saved policy until the service changes it.
    form = AgentPolicyForm(
        request.POST if request.method == "POST" else None,
        instance=Agent.objects.get(pk=agent.pk),
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.agent_policy_update(
                agent=agent, user=request.user, changes=form.policy_changes()
            )
        except services.PolicyInvalid as exc:
            # The form checks the same rules; this only happens if the policy changed meanwhile.
            for field, message in exc.errors.items():
                form.add_error(field if field in form.fields else None, message)
        else:
            messages.success(request, f"Session policy of {agent.name} saved.")
            return redirect("agent_settings", agent_id=agent.pk)
    history = PolicyChange.objects.filter(agent=agent).select_related("changed_by")[:HISTORY_LIMIT]
    return render(
        request,
        "command_center/agent_settings.html",
        {"agent": agent, "form": form, "history": history},
    )

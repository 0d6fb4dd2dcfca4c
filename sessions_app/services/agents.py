"""Agents' session policies: the one path the admin and the agent settings page save through."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import transaction

from sessions_app import policies, selectors
from sessions_app.errors import InvalidInput, NotAllowed, PolicyInvalid
from sessions_app.models import Agent, PolicyChange


def agent_policy_update(*, agent: Agent, user: Any, changes: Mapping[str, Any]) -> Agent:
    """Change an agent's session policy: check the user may, validate the resulting policy, save
    it and record a PolicyChange {field: [old, new]} when anything changed. Sweeps read the
    current policy, so open sessions follow the new one from the next sweep on."""
    unknown = set(changes) - set(policies.POLICY_FIELDS)
    if unknown:
        raise InvalidInput("changes", f"not policy fields: {', '.join(sorted(unknown))}")
    if not selectors.can_edit_policy(user, agent):
        raise NotAllowed("Only tenant admins and the agent's owner may change its session policy.")
    with transaction.atomic():
        # Lock so two editors at once each see (and audit) the other's result as "old".
        current = Agent.objects.select_for_update().get(pk=agent.pk)
        values = {f: getattr(current, f) for f in policies.POLICY_FIELDS}
        values.update(changes)
        errors = policies.policy_errors(values)
        if errors:
            raise PolicyInvalid(errors)
        diff = {
            f: [getattr(current, f), values[f]]
            for f in policies.POLICY_FIELDS
            if getattr(current, f) != values[f]
        }
        if diff:
            for field, (_old, new) in diff.items():
                setattr(current, field, new)
            current.save(update_fields=list(diff))
            PolicyChange.objects.create(
                tenant_id=current.tenant_id, agent=current, changed_by=user, changes=diff
            )
    for field in policies.POLICY_FIELDS:
        setattr(agent, field, getattr(current, field))
    return agent

"""The session policy form, shared by the Django admin (AgentAdmin) and the agent settings page.

Validation rules live in `policies.policy_errors`; the form only puts their messages on the
right fields. Saving goes through `services.agent_policy_update`, never `form.save()`, so both
paths validate, save and audit the same way.
"""

from __future__ import annotations

from typing import Any

from django import forms

from sessions_app import policies
from sessions_app.models import Agent


class AgentPolicyForm(forms.ModelForm[Agent]):
    class Meta:
        model = Agent
        fields = list(policies.POLICY_FIELDS)
        labels = {
            "idle_timeout_seconds": "Idle timeout (seconds)",
            "max_duration_seconds": "Max duration (seconds)",
            "max_concurrent_sessions_per_user": "Max concurrent sessions per user",
            "auto_archive_days": "Auto-archive after (days)",
            "retention_days": "Retention (days)",
            "allow_model_override": "Allow per-session model override",
        }
        help_texts = {
            "idle_timeout_seconds": "A chat with no activity this long goes idle, and ends after "
            "as long again; a flow run or background task is flagged stalled. 1800 = 30 min.",
            "max_duration_seconds": "Sessions are stopped (chats end) this long after they "
            "started, or sooner when a session's own timeout is shorter. 14400 = 4 h.",
            "max_concurrent_sessions_per_user": "Open sessions one person may have on this "
            "agent; blank for unlimited.",
            "auto_archive_days": "Ended sessions leave the default list after this many days.",
            "retention_days": "Sessions nobody touched for this many days are deleted, unless "
            "pinned.",
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        # A field that failed to parse is missing from `cleaned`: None keeps the cross-field rule
        # (max duration above idle timeout) from judging it by a value nobody typed.
        values = {
            f: cleaned.get(f) if f in self.fields else getattr(self.instance, f)
            for f in policies.POLICY_FIELDS
        }
        for field, message in policies.policy_errors(values).items():
            # A field that failed its own parsing already says why.
            if field in self.fields and field not in self.errors:
                self.add_error(field, message)
        return cleaned

    def policy_changes(self) -> dict[str, Any]:
        """The submitted policy, for services.agent_policy_update (which works out the diff)."""
        return {f: self.cleaned_data[f] for f in policies.POLICY_FIELDS if f in self.cleaned_data}

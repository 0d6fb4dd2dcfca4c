"""The session policy form, shared by the Django admin (AgentAdmin) and the agent settings page,
and the New session form of the pages.

Validation rules live in `policies.policy_errors`; the form only puts their messages on the
right fields. Saving goes through `services.agent_policy_update`, never `form.save()`, so both
paths validate, save and audit the same way.
"""

from __future__ import annotations

from typing import Any, cast

from django import forms

from sessions_app import policies
from sessions_app.models import Agent, Initiative
from sessions_app.states import Kind

# The defaults the dialog shows; the same as the model's and the API's.
DEFAULT_TEMPERATURE = 0.7
DEFAULT_MAX_TOKENS = 4000
DEFAULT_TIMEOUT_SECONDS = 300


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


class NewSessionForm(forms.Form):
    """The page's New session dialog. Only parses types: the rules (ranges, the model gate, the
    policy's max duration, the concurrency cap) are `services.session_new`'s, whose errors the
    view puts on the field they name."""

    kind = forms.ChoiceField(choices=Kind.choices, initial=Kind.FLOW_RUN)
    agent = forms.TypedChoiceField(coerce=int)
    title = forms.CharField(required=False, max_length=300)
    model = forms.CharField(required=False, max_length=100)
    temperature = forms.FloatField(initial=DEFAULT_TEMPERATURE)
    max_tokens = forms.IntegerField(initial=DEFAULT_MAX_TOKENS)
    timeout_seconds = forms.IntegerField(initial=DEFAULT_TIMEOUT_SECONDS)
    initiative = forms.TypedChoiceField(coerce=int, required=False, empty_value=None)
    repo = forms.CharField(required=False, max_length=300)
    branch = forms.CharField(required=False, max_length=200)
    input = forms.CharField(required=False, max_length=20_000, widget=forms.Textarea)

    def __init__(
        self,
        data: Any = None,
        *,
        agents: list[Agent],
        initiatives: list[Initiative],
        initial: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(data, initial=initial)
        self.agents = {a.pk: a for a in agents}
        agent_field = cast("forms.TypedChoiceField", self.fields["agent"])
        agent_field.choices = [(a.pk, a.name) for a in agents]
        initiative_field = cast("forms.TypedChoiceField", self.fields["initiative"])
        initiative_field.choices = [("", "None"), *((i.pk, i.name) for i in initiatives)]

    def chosen_agent(self) -> Agent | None:
        """The agent picked so far (also while the form is being filled in), else the first."""
        raw = (self.data if self.is_bound else self.initial).get("agent")
        try:
            picked = self.agents.get(int(raw)) if raw else None
        except (TypeError, ValueError):
            picked = None
        return picked or next(iter(self.agents.values()), None)

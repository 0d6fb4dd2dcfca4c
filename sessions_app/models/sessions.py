"""Sessions and their transcripts."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from sessions_app import states
from sessions_app.models.workspace import Agent, Initiative, Project, Tenant
from sessions_app.states import Kind, Status


class AgentStatus(models.TextChoices):
    WORKING = "working", "Working"
    IDLE = "idle", "Idle"
    WAITING_INPUT = "waiting_input", "Waiting for input"


class StopReason(models.TextChoices):
    USER = "user", "Stopped by a user"
    IDLE_TIMEOUT = "idle_timeout", "Idle timeout"
    MAX_DURATION = "max_duration", "Max duration reached"
    POLICY = "policy", "Policy"
    TRANSFER = "transfer", "Transferred"
    RUNTIME = "runtime", "Runtime"


class Origin(models.TextChoices):
    WEB = "web", "Web"
    VSCODE = "vscode", "VS Code"
    SCHEDULED = "scheduled", "Scheduled"
    TRIGGER = "trigger", "Trigger"
    API = "api", "API"


class CheckpointState(models.TextChoices):
    NONE = "", "None"
    AWAITING = "awaiting", "Awaiting approval"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


def _status_valid_for_kind() -> Q:
    q = Q()
    for kind, statuses in states.STATUSES.items():
        q |= Q(kind=kind, status__in=sorted(statuses))
    return q


class AgentSession(models.Model):
    """One flow run, background task or chat."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    short_id = models.CharField(max_length=8, db_index=True, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="sessions")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="sessions")
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="sessions")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agent_sessions"
    )

    kind = models.CharField(max_length=20, choices=Kind.choices)
    status = models.CharField(max_length=20, choices=Status.choices)
    # Derived from status by the database (states.py holds the rule), so no writer can forget
    # them. `live` first in the list order makes "live first, then most recently changed" one
    # index scan.
    status_group = models.GeneratedField(
        expression=states.status_group_expression(),
        output_field=models.CharField(max_length=12, choices=states.Group.choices),
        db_persist=True,
    )
    live = models.GeneratedField(
        expression=states.live_expression(),
        output_field=models.BooleanField(),
        db_persist=True,
    )
    agent_status = models.CharField(max_length=20, choices=AgentStatus.choices, blank=True)
    stalled = models.BooleanField(default=False)
    stall_reason = models.CharField(max_length=200, blank=True)
    checkpoint_state = models.CharField(
        max_length=10, choices=CheckpointState.choices, blank=True, default=""
    )
    checkpoint_name = models.CharField(max_length=200, blank=True)

    title = models.CharField(max_length=300)
    # `states.fold(title)`, written with the title, so search folds case the same in SQL and
    # in the live filter on every database. (Folding can lengthen a title: ß -> ss.)
    title_folded = models.CharField(max_length=900, blank=True, editable=False)
    model = models.CharField(max_length=100)
    temperature = models.FloatField(default=0.7)
    max_tokens = models.PositiveIntegerField(default=4000)
    timeout_seconds = models.PositiveIntegerField(default=300)

    current_step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    current_step_name = models.CharField(max_length=200, blank=True)
    turns = models.PositiveIntegerField(default=0)
    message_count = models.PositiveIntegerField(default=0)
    last_seq = models.PositiveBigIntegerField(default=0)

    error_code = models.CharField(max_length=100, blank=True)
    error_message = models.TextField(blank=True)
    stop_reason = models.CharField(max_length=20, choices=StopReason.choices, blank=True)

    sandbox = models.CharField(max_length=200, blank=True)
    profile = models.CharField(max_length=200, blank=True)
    runtime = models.CharField(max_length=200, blank=True)
    repo = models.CharField(max_length=300, blank=True)
    branch = models.CharField(max_length=200, blank=True)
    origin = models.CharField(max_length=20, choices=Origin.choices, default=Origin.API)

    initiative = models.ForeignKey(
        Initiative, on_delete=models.SET_NULL, null=True, blank=True, related_name="sessions"
    )
    parent = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="children"
    )
    cloned_from = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="clones"
    )
    transferred_from = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="transfers"
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    last_activity_at = models.DateTimeField()
    archived_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    pinned = models.BooleanField(default=False)
    # Set while a server-created session waits for a runtime to accept its `start` command
    # ("waiting for a runtime"); the start-timeout sweep fails it when nobody accepts in time.
    awaiting_runtime_since = models.DateTimeField(null=True, blank=True)
    # Usage reported by the runtime (`usage` events, additive): folded in by ingest exactly
    # once per stored event (services/usage.py). `tokens_total` is what the list sorts by.
    tokens_in = models.PositiveBigIntegerField(default=0)
    tokens_out = models.PositiveBigIntegerField(default=0)
    tokens_total = models.GeneratedField(
        expression=F("tokens_in") + F("tokens_out"),
        output_field=models.BigIntegerField(),
        db_persist=True,
    )
    cost = models.DecimalField(max_digits=14, decimal_places=6, default=Decimal(0))
    # Credentials removed from this session's stored data, per rule (counts, never values).
    redaction_counts = models.JSONField(default=dict, blank=True)
    version = models.PositiveIntegerField(default=1)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=_status_valid_for_kind(), name="session_status_valid_for_kind"
            ),
            models.CheckConstraint(condition=Q(cost__gte=0), name="session_cost_range"),
            models.CheckConstraint(
                condition=Q(temperature__gte=0) & Q(temperature__lte=2),
                name="session_temperature_range",
            ),
            models.CheckConstraint(
                condition=Q(max_tokens__gte=100) & Q(max_tokens__lte=8000),
                name="session_max_tokens_range",
            ),
            models.CheckConstraint(
                condition=Q(timeout_seconds__gte=60) & Q(timeout_seconds__lte=1800),
                name="session_timeout_range",
            ),
            models.UniqueConstraint(fields=["id", "tenant"], name="session_id_tenant_unique"),
        ]
        indexes = [
            # The list: per tenant, live first, then most recently changed (keyset order).
            models.Index(
                "tenant",
                F("live").desc(),
                F("last_activity_at").desc(),
                F("id").desc(),
                name="session_list_idx",
                condition=Q(archived_at__isnull=True),
            ),
            # The list sorted by cost or tokens (keyset: value desc, id desc).
            models.Index(
                "tenant",
                F("cost").desc(),
                F("id").desc(),
                name="session_cost_idx",
                condition=Q(archived_at__isnull=True),
            ),
            models.Index(
                "tenant",
                F("tokens_total").desc(),
                F("id").desc(),
                name="session_tokens_idx",
                condition=Q(archived_at__isnull=True),
            ),
            # The same order per grant of DESIGN 7 (selectors/keyset.py): a viewer's page is a
            # union of short range scans, one per grant, whatever the size of the table.
            # Own sessions count per workspace, so the owner's index leads with it.
            *(
                models.Index(
                    *columns,
                    F("live").desc(),
                    F("last_activity_at").desc(),
                    F("id").desc(),
                    name=f"session_{columns[-1]}_list_idx",
                    condition=condition,
                )
                for columns, condition in (
                    (("tenant", "owner"), Q(archived_at__isnull=True)),
                    (("agent",), Q(archived_at__isnull=True)),
                    # Chats are never visible through their project.
                    (("project",), Q(archived_at__isnull=True) & ~Q(kind=Kind.CHAT)),
                )
            ),
            models.Index(fields=["owner", "status_group"], name="session_owner_group_idx"),
            # The dashboards' reconciliation reads the last seconds of changes every tick
            # (selectors/changes.py); every visible change moves `updated_at` (lifecycle.bump).
            models.Index(fields=["updated_at"], name="session_updated_idx"),
            # Policy sweeps: only open sessions are ever due, so index only those.
            models.Index(
                fields=["last_activity_at"],
                name="session_open_activity_idx",
                condition=Q(live=True),
            ),
            models.Index(
                fields=["started_at"], name="session_open_started_idx", condition=Q(live=True)
            ),
            models.Index(
                fields=["status_changed_at"],
                name="session_stopping_idx",
                condition=Q(status=Status.STOPPING),
            ),
            models.Index(
                fields=["ended_at"],
                name="session_archive_due_idx",
                condition=Q(archived_at__isnull=True, ended_at__isnull=False),
            ),
            models.Index(
                fields=["expires_at"], name="session_retention_idx", condition=Q(pinned=False)
            ),
            models.Index(
                fields=["awaiting_runtime_since"],
                name="session_awaiting_runtime_idx",
                condition=Q(awaiting_runtime_since__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def progress_text(self) -> str:
        return states.progress_text(self)

    @property
    def progress_percent(self) -> int | None:
        return states.progress_percent(self)

    @property
    def expires_in_days(self) -> int | None:
        return states.expires_in_days(
            expires_at=self.expires_at,
            pinned=self.pinned,
            now=timezone.now(),
            window=timedelta(days=settings.SCC_EXPIRY_WARNING_DAYS),
        )

    @property
    def is_terminal(self) -> bool:
        return self.status in states.TERMINAL[self.kind]


class EventType(models.TextChoices):
    MESSAGE = "message", "Message"
    THINKING = "thinking", "Thinking"
    TOOL_CALL = "tool_call", "Tool call"
    TOOL_RESULT = "tool_result", "Tool result"
    FILE_EDIT = "file_edit", "File edit"
    STEP = "step", "Step"
    CHECKPOINT = "checkpoint", "Checkpoint"
    STATUS_CHANGE = "status_change", "Status change"
    ACTION = "action", "Action"
    ERROR = "error", "Error"
    ARTIFACT = "artifact", "Artifact"
    PROGRESS = "progress", "Progress"
    AGENT_STATUS = "agent_status", "Agent status"
    USAGE = "usage", "Usage"


class SessionEvent(models.Model):
    """One transcript line; append-only, redacted before it is stored."""

    # No index of its own: the unique (session, seq) index serves every lookup by session,
    # and one index less is cheaper ingest.
    session = models.ForeignKey(
        AgentSession, on_delete=models.CASCADE, related_name="events", db_index=False
    )
    seq = models.PositiveBigIntegerField()
    event_id = models.CharField(max_length=100)
    type = models.CharField(max_length=20, choices=EventType.choices)
    actor = models.CharField(max_length=200, blank=True)
    payload = models.JSONField(default=dict)
    redactions = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["session", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["session", "seq"], name="event_seq_unique"),
            models.UniqueConstraint(fields=["session", "event_id"], name="event_id_unique"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.type}"

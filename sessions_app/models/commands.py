"""The outbox of commands to runtimes."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from sessions_app.models.sessions import AgentSession
from sessions_app.models.workspace import Agent, Tenant


class CommandKind(models.TextChoices):
    START = "start", "Start"
    CANCEL = "cancel", "Cancel"
    STOP = "stop", "Stop"
    PAUSE = "pause", "Pause"
    RESUME = "resume", "Resume"
    END = "end", "End"
    MESSAGE = "message", "Message"
    APPROVE = "approve", "Approve"
    REJECT = "reject", "Reject"
    TRANSFER = "transfer", "Transfer"


class CommandStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    DELIVERED = "delivered", "Delivered"
    APPLIED = "applied", "Applied"
    REJECTED = "rejected", "Rejected"


class RuntimeCommand(models.Model):
    """Outbox from operators to the runtime that executes a session."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    session = models.ForeignKey(AgentSession, on_delete=models.CASCADE, related_name="commands")
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="commands")
    kind = models.CharField(max_length=20, choices=CommandKind.choices)
    payload = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        max_length=12, choices=CommandStatus.choices, default=CommandStatus.QUEUED
    )
    correlation_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    result = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    acked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        indexes = [
            models.Index(
                fields=["agent", "created_at"],
                name="command_pending_idx",
                condition=Q(status__in=["queued", "delivered"]),
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} -> {self.session_id} ({self.status})"

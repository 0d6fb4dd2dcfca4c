"""Bulk runs: one operator action applied to many sessions by a Celery task.

The run keeps its targets (snapshotted when it was started) and a done mark per session, so a
worker that dies mid-run is replaced by one that skips what is done and repeats nothing."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class BulkAction(models.TextChoices):
    CANCEL = "cancel", "Cancel"
    STOP = "stop", "Stop"
    PAUSE = "pause", "Pause"
    RESUME = "resume", "Resume"
    END = "end", "End"
    PIN = "pin", "Pin"
    ARCHIVE = "archive", "Archive"
    DELETE = "delete", "Delete"


class BulkStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    ABORTED = "aborted", "Aborted"


class BulkRun(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="bulk_runs"
    )
    action = models.CharField(max_length=20, choices=BulkAction.choices)
    # What the operator chose, as query parameters (the list filter) or "selected".
    scope = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=BulkStatus.choices, default=BulkStatus.QUEUED)
    abort_requested = models.BooleanField(default=False)
    total = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["created_at"],
                name="bulk_unfinished_idx",
                condition=Q(status__in=["queued", "running"]),
            )
        ]

    def __str__(self) -> str:
        return f"{self.action} x{self.total} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in (BulkStatus.DONE, BulkStatus.ABORTED)


class BulkItem(models.Model):
    """One target of a run. `outcome` is empty until the session is done: then `changed` or
    `skipped` with the reason (see services/bulk.py)."""

    run = models.ForeignKey(BulkRun, on_delete=models.CASCADE, related_name="items")
    # Not a foreign key: a deleted session keeps its done mark.
    session_id = models.UUIDField()
    outcome = models.CharField(max_length=10, blank=True)
    reason = models.CharField(max_length=20, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "session_id"], name="bulk_item_unique"),
        ]
        indexes = [
            models.Index(
                fields=["run", "id"], name="bulk_item_pending_idx", condition=Q(outcome="")
            )
        ]

    def __str__(self) -> str:
        return f"{self.session_id}: {self.outcome or 'pending'}"

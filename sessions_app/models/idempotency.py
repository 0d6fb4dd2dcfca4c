"""Requests made with an Idempotency-Key header, and the first answer to each."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from sessions_app.models.tokens import ApiToken
from sessions_app.models.workspace import Tenant


class IdempotencyKey(models.Model):
    """One key of one token: the request it was first used for (as a fingerprint) and the
    answer given, replayed to every retry. `response_status` is null while the first request
    is in flight."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    token = models.ForeignKey(ApiToken, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of method, path and body")
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["token", "key"], name="idempotency_key_unique")
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.response_status or 'in flight'})"

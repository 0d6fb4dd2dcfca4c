"""API tokens (only their hash is stored)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from sessions_app.models.workspace import Agent, Tenant


class TokenKind(models.TextChoices):
    RUNTIME = "runtime", "Runtime token"
    PERSONAL = "personal", "Personal token"


class ApiToken(models.Model):
    """A bearer token; only its SHA-256 is stored (tokens are 256-bit random, so no KDF)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_tokens")
    kind = models.CharField(max_length=10, choices=TokenKind.choices)
    name = models.CharField(max_length=200)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="api_tokens",
        help_text="Personal tokens act as this user; runtime tokens name the admin who made them.",
    )
    # Who minted it (a person mints their own personal tokens; tenant admins mint runtime ones).
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    agents = models.ManyToManyField(Agent, blank=True, related_name="runtime_tokens")
    prefix = models.CharField(max_length=12, editable=False)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

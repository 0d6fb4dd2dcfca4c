"""Read-only pages: sessions with their transcript, runtime commands, the access audit."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.template.loader import render_to_string

from sessions_app.admin.scoped import ReadOnlyTenantAdmin
from sessions_app.models import (
    AccessChange,
    AgentSession,
    RuntimeCommand,
)


@admin.register(AccessChange)
class AccessChangeAdmin(ReadOnlyTenantAdmin):
    """The access audit trail: memberships, roles, agent owners, tokens."""

    list_display = ("created_at", "action", "subject", "changed_by", "details")
    list_filter = ("action",)
    list_select_related = ("subject", "changed_by")


@admin.register(AgentSession)
class AgentSessionAdmin(ReadOnlyTenantAdmin):
    list_display = ("title", "kind", "status", "agent", "owner", "last_activity_at")
    list_filter = ("kind", "status_group", "status")
    search_fields = ("title", "short_id")
    list_select_related = ("agent", "owner")
    readonly_fields = ("transcript",)
    TRANSCRIPT_LIMIT = 500

    @admin.display(description="Transcript (latest events)")
    def transcript(self, obj: AgentSession) -> str:
        events = list(obj.events.order_by("-seq")[: self.TRANSCRIPT_LIMIT])[::-1]
        return render_to_string(
            "sessions_app/admin_transcript.html",
            {"events": events, "total": obj.last_seq, "limit": self.TRANSCRIPT_LIMIT},
        )

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        base = [f.name for f in AgentSession._meta.concrete_fields]
        return [*base, "transcript"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.get_fields(request, obj)


@admin.register(RuntimeCommand)
class RuntimeCommandAdmin(ReadOnlyTenantAdmin):
    list_display = ("kind", "session", "status", "created_at", "acked_at")
    list_filter = ("kind", "status")

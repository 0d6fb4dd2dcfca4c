"""Workspaces, projects, memberships, agents and their policies."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q


class Tenant(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class TenantMembership(models.Model):
    """A user's membership in a workspace; `is_admin` makes them a tenant admin."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tenant_memberships"
    )
    is_admin = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "user"], name="tenant_membership_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant}{' (admin)' if self.is_admin else ''}"


class Project(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="projects")
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "slug"], name="project_slug_unique"),
            models.UniqueConstraint(fields=["id", "tenant"], name="project_id_tenant_unique"),
        ]

    def __str__(self) -> str:
        return self.name


class Role(models.IntegerChoices):
    GUEST = 10, "Guest"
    REPORTER = 20, "Reporter"
    DEVELOPER = 30, "Developer"
    MAINTAINER = 40, "Maintainer"
    OWNER = 50, "Owner"


class Membership(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="project_memberships"
    )
    role = models.PositiveSmallIntegerField(choices=Role.choices, default=Role.DEVELOPER)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="membership_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.get_role_display()} of {self.project}"


class Agent(models.Model):
    """An agent and its session policy (enforced by the policy sweeps)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="agents")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="agents")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_agents"
    )
    name = models.CharField(max_length=200)
    default_model = models.CharField(max_length=100, default="gpt-4o")
    allowed_models = models.JSONField(default=list, blank=True)

    # Session policy.
    idle_timeout_seconds = models.PositiveIntegerField(default=30 * 60)
    max_duration_seconds = models.PositiveIntegerField(default=4 * 60 * 60)
    max_concurrent_sessions_per_user = models.PositiveIntegerField(null=True, blank=True)
    auto_archive_days = models.PositiveIntegerField(default=30)
    retention_days = models.PositiveIntegerField(default=30)
    allow_model_override = models.BooleanField(default=False)
    # When a runtime serving this agent was last heard from (its socket, long-poll or API calls);
    # the policy sweep flags the agent's live sessions "runtime lost" when it falls silent.
    runtime_seen_at = models.DateTimeField(null=True, blank=True, editable=False)

    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="agent_name_unique"),
            models.UniqueConstraint(fields=["id", "tenant"], name="agent_id_tenant_unique"),
            models.CheckConstraint(
                condition=Q(idle_timeout_seconds__gt=0), name="agent_idle_timeout_positive"
            ),
            models.CheckConstraint(
                condition=Q(max_duration_seconds__gt=F("idle_timeout_seconds")),
                name="agent_max_duration_above_idle",
            ),
            models.CheckConstraint(
                condition=Q(retention_days__gt=0) & Q(auto_archive_days__gt=0),
                name="agent_days_positive",
            ),
            models.CheckConstraint(
                condition=Q(max_concurrent_sessions_per_user__isnull=True)
                | Q(max_concurrent_sessions_per_user__gt=0),
                name="agent_max_concurrent_positive",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Initiative(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="initiatives")
    name = models.CharField(max_length=200)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="initiative_name_unique"),
            models.UniqueConstraint(fields=["id", "tenant"], name="initiative_id_tenant_unique"),
        ]

    def __str__(self) -> str:
        return self.name


class PolicyChange(models.Model):
    """Audit row for an agent's session policy: who changed which fields, from what to what.

    Policies belong to agents, not sessions, so this cannot live in a session transcript.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="policy_changes")
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # {field: [old, new]} for the fields that changed.
    changes = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["agent", "-created_at"], name="policy_change_agent_idx")]

    def __str__(self) -> str:
        return (
            f"{self.agent} policy change by {self.changed_by} at {self.created_at:%Y-%m-%d %H:%M}"
        )


class AccessChange(models.Model):
    """Audit row for a change of who may see what: a workspace or project membership, an
    agent's owner, a token made or revoked. `subject` is the person whose access changed."""

    class Action(models.TextChoices):
        TENANT_MEMBER_SET = "tenant_member_set", "Workspace membership set"
        TENANT_MEMBER_REMOVED = "tenant_member_removed", "Removed from the workspace"
        PROJECT_ROLE_SET = "project_role_set", "Project role set"
        PROJECT_ROLE_REMOVED = "project_role_removed", "Project role removed"
        AGENT_OWNER_CHANGED = "agent_owner_changed", "Agent owner changed"
        TOKEN_CREATED = "token_created", "Token created"
        TOKEN_REVOKED = "token_revoked", "Token revoked"
        TOKEN_CHANGED = "token_changed", "Token changed"
        TOKEN_DELETED = "token_deleted", "Token deleted"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    action = models.CharField(max_length=32, choices=Action.choices)
    subject = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # What changed, e.g. {"project": "Payments", "role": [30, 10]} or {"token": "ci (scc_ab…)"}.
    details = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "-created_at"], name="access_change_tenant_idx")]

    def __str__(self) -> str:
        return f"{self.get_action_display()}: {self.subject} by {self.changed_by}"

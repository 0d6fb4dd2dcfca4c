"""Make an API token and print it once (stdout holds only the token, so it can be captured)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from sessions_app import errors, services
from sessions_app.models import Agent, Tenant, TenantMembership, TokenKind


class Command(BaseCommand):
    help = (
        "Create an API token. Runtime tokens are scoped to agents (--agent, repeatable, or "
        "--all-agents); personal tokens act as --user. The token is printed once, on stdout."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="Workspace slug")
        parser.add_argument("--kind", choices=TokenKind.values, default=TokenKind.RUNTIME)
        parser.add_argument(
            "--user",
            help="Personal tokens act as this user (required). Runtime tokens record who made "
            "them (default: the first agent's owner).",
        )
        parser.add_argument(
            "--agent", action="append", default=[], help="Agent id or name (runtime tokens)"
        )
        parser.add_argument(
            "--all-agents", action="store_true", help="Scope a runtime token to every agent"
        )
        parser.add_argument("--name", default="", help="A label to recognise the token by")

    def handle(self, *args: Any, **opts: Any) -> None:
        tenant = Tenant.objects.filter(slug=opts["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No workspace with slug {opts['tenant']!r}.")
        kind = opts["kind"]
        agents = self._agents(tenant, opts["agent"], opts["all_agents"])
        if kind == TokenKind.RUNTIME and not agents:
            raise CommandError("A runtime token needs --agent (repeatable) or --all-agents.")
        if kind == TokenKind.PERSONAL and agents:
            raise CommandError("Personal tokens act as their user; they take no --agent.")
        user = self._user(tenant, opts["user"], kind, agents)
        name = opts["name"] or f"{kind} token for {user.get_username()}"
        try:
            token, raw = services.token_create(
                tenant=tenant, kind=kind, name=name, user=user, agents=agents
            )
        except errors.InvalidInput as exc:
            raise CommandError(str(exc)) from None
        scope = ", ".join(a.name for a in agents) if agents else f"acts as {user.get_username()}"
        self.stderr.write(
            f"Created {kind} token {token.prefix}… in {tenant.slug} ({scope}). "
            "It is shown once; store it now."
        )
        self.stdout.write(raw)

    def _agents(self, tenant: Tenant, refs: list[str], every: bool) -> list[Agent]:
        if every:
            return list(Agent.objects.filter(tenant=tenant).order_by("pk"))
        agents = []
        for ref in refs:
            qs = Agent.objects.filter(tenant=tenant)
            agent = (qs.filter(pk=int(ref)) if ref.isdigit() else qs.filter(name=ref)).first()
            if agent is None:
                raise CommandError(f"No agent {ref!r} in {tenant.slug}.")
            agents.append(agent)
        return agents

    def _user(self, tenant: Tenant, username: str | None, kind: str, agents: list[Agent]) -> Any:
        if not username:
            if kind == TokenKind.PERSONAL:
                raise CommandError("A personal token needs --user.")
            return agents[0].owner
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user {username!r}.")
        if not TenantMembership.objects.filter(tenant=tenant, user=user).exists():
            raise CommandError(f"{username!r} is not a member of {tenant.slug}.")
        return user

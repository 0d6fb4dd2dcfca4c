"""Play realistic flows, tasks and chats through the public API (what `make run` starts)."""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q

from sessions_app import services
from sessions_app.models import Agent, ApiToken, Role, Tenant, TokenKind
from sessions_app.runtime.client import Backoff, RuntimeClient
from sessions_app.runtime.demo.engine import Demo, DemoConfig, Target, parse_mix

logger = logging.getLogger("demo_runtime")


class Command(BaseCommand):
    help = (
        "A demo agent runtime: starts flow runs, background tasks and chats through the API and "
        "obeys operators' commands. Give --token, or --tenant to make (and reuse) a runtime "
        "token for every agent of that workspace."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")
        parser.add_argument("--token", default=os.environ.get("SCC_DEMO_TOKEN", ""))
        parser.add_argument("--tenant", help="Workspace slug: make or reuse a runtime token")
        parser.add_argument("--rate", type=float, default=4.0, help="New sessions per minute")
        parser.add_argument("--mix", default="flow=2,task=1,chat=2", help="Weights per kind")
        parser.add_argument("--duration", type=float, help="Seconds to run (default: forever)")
        parser.add_argument("--speed", type=float, default=1.0, help=">1 plays sessions faster")
        parser.add_argument("--seed", type=int, help="Random seed, for a repeatable run")
        parser.add_argument(
            "--owners", default="", help="Comma-separated usernames to run sessions for"
        )
        parser.add_argument("--transport", choices=["auto", "websocket", "poll"], default="auto")

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts["rate"] <= 0 or opts["speed"] <= 0:
            raise CommandError("--rate and --speed must be positive.")
        try:
            mix = parse_mix(opts["mix"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if opts["token"]:
            token = opts["token"]
        elif opts["tenant"]:
            token = self._tenant_token(opts["tenant"])
        else:
            raise CommandError("Give --token or --tenant.")

        # One line per request drowns what the demo says; keep httpx to warnings.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        # Forever: the server may still be starting, or restart while we run.
        client = RuntimeClient(opts["base_url"], token, backoff=Backoff(attempts=None))
        agents = client.agents()
        extra = [o.strip() for o in opts["owners"].split(",") if o.strip()]
        known = self._eligible_owners(opts["tenant"]) if opts["tenant"] and not extra else {}
        targets = [
            Target(
                agent_id=a["id"],
                agent_name=a["name"],
                owners=tuple(extra or known.get(a["id"]) or [a["owner"]["username"]]),
            )
            for a in agents
        ]
        if not targets:
            raise CommandError("This token has no agents to run sessions for.")
        config = DemoConfig(rate=opts["rate"], mix=mix, speed=opts["speed"])
        demo = Demo(
            client, targets, config, rng=random.Random(opts["seed"]), transport=opts["transport"]
        )
        stop = threading.Event()
        # `make run` stops us with SIGTERM: finish the loop (and stop our sessions) cleanly.
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        self.stderr.write(
            f"demo runtime: {len(targets)} agent(s), {opts['rate']}/min, mix {mix}, "
            f"against {opts['base_url']}"
        )
        try:
            demo.run(duration=opts["duration"], stop=stop)
        except KeyboardInterrupt:
            pass
        finally:
            client.close()
        self.stderr.write(f"demo runtime done: started {demo.started}, refused {demo.refused}")

    def _tenant_token(self, slug: str) -> str:
        """A runtime token for every agent of the workspace, kept in VAR_DIR and reused while
        it is valid and still covers every agent."""
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            raise CommandError(f"No workspace with slug {slug!r}.")
        agents = list(Agent.objects.filter(tenant=tenant).order_by("pk"))
        if not agents:
            raise CommandError(f"The workspace {slug!r} has no agents.")
        path = Path(settings.VAR_DIR) / f"demo_runtime_{slug}.token"
        if path.exists():
            raw = path.read_text().strip()
            token = ApiToken.objects.filter(
                token_hash=services.hash_token(raw),
                tenant=tenant,
                kind=TokenKind.RUNTIME,
                revoked_at__isnull=True,
            ).first()
            if token is not None:
                if set(token.agents.values_list("pk", flat=True)) >= {a.pk for a in agents}:
                    return raw
                services.token_revoke(token=token)  # replaced by one that covers new agents
        _, raw = services.token_create(
            tenant=tenant,
            kind=TokenKind.RUNTIME,
            name="demo runtime",
            user=agents[0].owner,
            agents=agents,
        )
        path.write_text(raw + "\n")
        path.chmod(0o600)
        return raw

    def _eligible_owners(self, slug: str) -> dict[int, list[str]]:
        """Per agent: the users who may run sessions on it (agent owner, tenant admins,
        reporters and up on its project), so the demo spreads sessions over real people."""
        owners: dict[int, list[str]] = {}
        for agent in Agent.objects.filter(tenant__slug=slug).select_related("owner"):
            names = set(
                get_user_model()
                .objects.filter(is_active=True)
                .filter(
                    Q(pk=agent.owner_id)
                    | Q(
                        tenant_memberships__tenant_id=agent.tenant_id,
                        tenant_memberships__is_admin=True,
                    )
                    | Q(
                        project_memberships__project_id=agent.project_id,
                        project_memberships__role__gte=Role.REPORTER,
                    )
                )
                .values_list("username", flat=True)
            )
            owners[agent.pk] = sorted(names)
        return owners

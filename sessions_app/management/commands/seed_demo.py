"""Seed an idempotent demo workspace: users in every role, projects, agents, initiatives and a
history of sessions of all three kinds with transcripts."""

from __future__ import annotations

import os
import random
import uuid
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from sessions_app import services, states
from sessions_app.models import (
    Agent,
    AgentSession,
    Initiative,
    Membership,
    Project,
    Role,
    Tenant,
    TenantMembership,
)
from sessions_app.states import Kind

User = get_user_model()
PASSWORD = "demo-pass-1234"

# username, role on both projects (None: no project role), tenant admin, staff
PEOPLE = [
    ("alice", Role.OWNER, True, True),
    ("bob", Role.MAINTAINER, False, False),
    ("carol", Role.DEVELOPER, False, False),
    ("dave", Role.REPORTER, False, False),
    ("erin", Role.GUEST, False, False),
    ("grace", Role.DEVELOPER, False, False),
]

FLOW_STEPS = [
    "Fetch sources",
    "Plan changes",
    "Edit code",
    "Run tests",
    "Open pull request",
    "Deploy preview",
]


class Command(BaseCommand):
    help = "Create (or keep) the demo workspace and print its logins."

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            tenant, _ = Tenant.objects.get_or_create(slug="demo", defaults={"name": "Demo Co"})
            users = {}
            for username, role, is_admin, staff in PEOPLE:
                user, created = User.objects.get_or_create(
                    username=username,
                    defaults={"email": f"{username}@demo.test", "is_staff": staff},
                )
                if created:
                    user.set_password(PASSWORD)
                    user.save()
                TenantMembership.objects.update_or_create(
                    tenant=tenant, user=user, defaults={"is_admin": is_admin}
                )
                users[username] = (user, role)
            if not User.objects.filter(username="root").exists():
                User.objects.create_superuser("root", "root@demo.test", PASSWORD)

            projects = []
            for slug, name in (("checkout", "Checkout"), ("research", "Research")):
                project, _ = Project.objects.get_or_create(
                    tenant=tenant, slug=slug, defaults={"name": name}
                )
                projects.append(project)
                for user, role in users.values():
                    Membership.objects.get_or_create(
                        tenant=tenant, project=project, user=user, defaults={"role": role}
                    )
            grace = users["grace"][0]
            agents = []
            for name, project, model in (
                ("release-bot", projects[0], "gpt-4o"),
                ("triage-worker", projects[0], "claude-sonnet"),
                ("research-assistant", projects[1], "gpt-4o-mini"),
            ):
                agent, _ = Agent.objects.get_or_create(
                    tenant=tenant,
                    name=name,
                    defaults={
                        "project": project,
                        "owner": grace,
                        "default_model": model,
                        "allowed_models": [model, "gpt-4o", "claude-sonnet"],
                        "allow_model_override": name == "research-assistant",
                        # Short policy on one agent so the sweeps are visible in a demo:
                        # quiet chats go idle after 2 minutes and end 2 minutes later.
                        **(
                            {"idle_timeout_seconds": 120, "max_duration_seconds": 900}
                            if name == "research-assistant"
                            else {}
                        ),
                    },
                )
                agents.append(agent)
            initiatives = [
                Initiative.objects.get_or_create(tenant=tenant, name=n)[0]
                for n in ("Q4 reliability", "Onboarding revamp", "Cost cutting")
            ]
            if not AgentSession.objects.filter(tenant=tenant).exists():
                self._history(agents, [u for u, _ in users.values()], initiatives)

        self.stdout.write(self.style.SUCCESS("Demo workspace 'Demo Co' is ready."))
        port = os.environ.get("PORT", "8000")
        self.stdout.write(f"Log in at http://127.0.0.1:{port}/ with password {PASSWORD!r} as:")
        for username, role, is_admin, _ in PEOPLE:
            extra = ", tenant admin (Django admin at /admin/)" if is_admin else ""
            self.stdout.write(f"  {username:<6} {Role(role).label.lower()} on both projects{extra}")
        self.stdout.write("  grace  also owns the three agents; root is a superuser")

    def _history(
        self, agents: list[Agent], people: list[Any], initiatives: list[Initiative]
    ) -> None:
        rng = random.Random(7)
        owners = [p for p in people if p.username in ("alice", "bob", "carol", "grace")]
        now = timezone.now()
        for i in range(36):
            kind = (Kind.FLOW_RUN, Kind.BACKGROUND_TASK, Kind.CHAT)[i % 3]
            agent = agents[i % len(agents)]
            owner = owners[i % len(owners)]
            session = services.session_create(
                agent=agent,
                owner=owner,
                kind=kind,
                actor="seed",
                title=_title(kind, i),
                initiative=initiatives[i % 4] if i % 4 < 3 else None,
                metadata={
                    "repo": "demo/shop",
                    "branch": f"feature/{i}",
                    "origin": rng.choice(["web", "vscode", "scheduled", "trigger", "api"]),
                    "sandbox": f"sbx-{i:03d}",
                    "runtime": "demo-runtime",
                },
            )
            final = _play(session, rng, i)
            # Spread the history over the last two days so Active Now and Recent both fill;
            # live ones started moments ago (no runtime drives them, so the policy sweep will
            # stop them at their max duration, as it would any silent session).
            live = final in states.LIVE[kind]
            ago = timedelta(minutes=rng.randint(1, 3) if live else rng.randint(30, 60 * 40))
            started = now - ago - (timedelta(0) if live else timedelta(minutes=29))
            AgentSession.objects.filter(pk=session.pk).update(
                created_at=started - timedelta(seconds=5),
                started_at=started,
                last_activity_at=now - ago,
                status_changed_at=now - ago,
                ended_at=(now - ago) if final in states.TERMINAL[kind] else None,
            )


def _title(kind: str, i: int) -> str:
    return {
        Kind.FLOW_RUN: [
            "Release 2.4 checklist",
            "Nightly dependency bump",
            "Migrate billing tables",
        ],
        Kind.BACKGROUND_TASK: ["Triage flaky tests", "Summarise support tickets", "Reindex search"],
        Kind.CHAT: [
            "Why is checkout slow?",
            "Draft the incident report",
            "Explain the retry policy",
        ],
    }[Kind(kind)][(i // 3) % 3] + f" #{i + 1}"


def _events(session: AgentSession, items: list[tuple[str, dict[str, Any]]]) -> None:
    services.events_record(
        session=session,
        events=[services.EventIn(event_id=str(uuid.uuid4()), type=t, payload=p) for t, p in items],
        actor="demo-runtime",
    )


def _usage(rng: random.Random) -> tuple[str, dict[str, Any]]:
    tokens_in, tokens_out = rng.randint(400, 6000), rng.randint(50, 1500)
    cost = (tokens_in * 3 + tokens_out * 15) / 1_000_000
    return ("usage", {"tokens_in": tokens_in, "tokens_out": tokens_out, "cost": f"{cost:.6f}"})


def _play(session: AgentSession, rng: random.Random, i: int) -> str:
    """Drive a session through a believable history; returns its final status."""
    if session.kind == Kind.FLOW_RUN:
        steps = FLOW_STEPS[: rng.randint(3, 6)]
        _events(session, [("status_change", {"to": "running"})])
        outcome = i % 4
        upto = len(steps) if outcome == 0 else rng.randint(1, len(steps) - 1)
        for n, name in enumerate(steps[:upto], start=1):
            _events(
                session,
                [
                    ("step", {"state": "started", "name": name, "index": n, "total": len(steps)}),
                    ("thinking", {"text": f"Working on: {name.lower()}."}),
                    (
                        "tool_call",
                        {"name": "shell", "arguments": {"cmd": "make check"}, "call_id": f"c{n}"},
                    ),
                    ("tool_result", {"call_id": f"c{n}", "output": "ok", "is_error": False}),
                    _usage(rng),
                    ("step", {"state": "completed", "name": name, "index": n, "total": len(steps)}),
                ],
            )
        if outcome == 0:
            _events(session, [("status_change", {"to": "completed"})])
        elif outcome == 1:
            _events(
                session,
                [
                    ("checkpoint", {"state": "awaiting", "name": "Approve deploy to staging"}),
                    ("status_change", {"to": "waiting_input", "reason": "checkpoint"}),
                ],
            )
        elif outcome == 2:
            _events(
                session,
                [
                    (
                        "error",
                        {"code": "tests_failed", "message": "3 tests failed in test_checkout.py"},
                    ),
                    (
                        "status_change",
                        {
                            "to": "failed",
                            "error": {
                                "code": "tests_failed",
                                "message": "3 tests failed in test_checkout.py",
                            },
                        },
                    ),
                ],
            )
        return AgentSession.objects.get(pk=session.pk).status
    if session.kind == Kind.BACKGROUND_TASK:
        _events(
            session,
            [("status_change", {"to": "provisioning"}), ("status_change", {"to": "running"})],
        )
        for t in range(rng.randint(2, 14)):
            _events(
                session,
                [("message", {"role": "agent", "text": f"Turn {t + 1}: looked at 12 more files."})],
            )
        if i % 5 != 1:
            _events(
                session,
                [("status_change", {"to": "completed" if i % 5 else "failed", "error": None})],
            )
        return AgentSession.objects.get(pk=session.pk).status
    for n in range(rng.randint(1, 4)):
        _events(
            session,
            [
                ("message", {"role": "user", "text": f"Question {n + 1}: can you check the logs?"}),
                ("thinking", {"text": "The user wants the recent error logs."}),
                (
                    "tool_call",
                    {"name": "read_logs", "arguments": {"service": "checkout"}, "call_id": f"t{n}"},
                ),
                (
                    "tool_result",
                    {"call_id": f"t{n}", "output": "GET /cart 502 upstream timeout (x14)"},
                ),
                (
                    "file_edit",
                    {
                        "path": "config/timeouts.yaml",
                        "before": "upstream: 5s\n",
                        "after": "upstream: 15s\n",
                    },
                ),
                (
                    "message",
                    {
                        "role": "agent",
                        "text": "The upstream timeout is too short; I raised it to 15s.",
                    },
                ),
            ],
        )
    if i % 2:
        _events(session, [("status_change", {"to": "ended"})])
    return AgentSession.objects.get(pk=session.pk).status

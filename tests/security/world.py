"""The authorisation matrix's world and its one declarative table.

Personas (DESIGN 7 plus the side doors: an ex-member with a project role left behind and a
token minted while a member, a stranger holding a token made around the services, revoked and
foreign runtime tokens) x objects (a flow run, a background task, a private chat, a task
spawned from that chat), all owned by `owner` on agent `builder` of project Payments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count

from sessions_app import services
from sessions_app.models import (
    AgentSession,
    ApiToken,
    Membership,
    Role,
    RuntimeCommand,
    SessionEvent,
    TenantMembership,
    TokenKind,
)
from sessions_app.states import Kind
from tests import factories as f

OBJECTS = ("flow", "task", "chat", "spawned")
ALL = frozenset(OBJECTS)
NO_CHAT = frozenset({"flow", "task", "spawned"})
NONE: frozenset[str] = frozenset()

# persona: (may see, may act). Token personas: what their API calls reach.
PEOPLE: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "owner": (ALL, ALL),
    "guest": (NONE, NONE),
    "reporter": (NONE, NONE),
    "developer": (NO_CHAT, NONE),
    "maintainer": (NO_CHAT, NO_CHAT),
    "agent_owner": (ALL, ALL),
    "tenant_admin": (ALL, ALL),
    "other_admin": (NONE, NONE),
    "ex_member": (NONE, NONE),
    "stranger": (NONE, NONE),
    "anonymous": (NONE, NONE),
}
RUNTIMES: dict[str, frozenset[str] | None] = {
    "rt_this": ALL,
    "rt_other": NONE,
    "rt_revoked": None,  # None: the token is refused (401) everywhere
}
# Staff who may enter the admin at all; the rest are sent to its login.
STAFF = {"tenant_admin": ALL, "other_admin": NONE}

# What an action does to a running session of each kind for someone allowed to act.
VERB_OUTCOME: dict[str, dict[str, int]] = {
    "pause": {"flow_run": 200, "background_task": 200, "chat": 200},
    "resume": {"flow_run": 200, "background_task": 200, "chat": 200},
    "stop": {"flow_run": 200, "background_task": 200, "chat": 409},
    "cancel": {"flow_run": 200, "background_task": 200, "chat": 409},
    "end": {"flow_run": 409, "background_task": 409, "chat": 200},
    "approve": {"flow_run": 409, "background_task": 409, "chat": 409},
    "reject": {"flow_run": 409, "background_task": 409, "chat": 409},
}


@dataclass
class MatrixWorld:
    users: dict[str, Any] = field(default_factory=dict)
    tokens: dict[str, str | None] = field(default_factory=dict)  # raw API token per persona
    objects: dict[str, AgentSession] = field(default_factory=dict)
    agent: Any = None
    other_agent: Any = None


def build() -> MatrixWorld:
    w = MatrixWorld()
    acme, globex = f.make_tenant("Acme"), f.make_tenant("Globex")
    payments, search = f.make_project(acme, "Payments"), f.make_project(acme, "Search")
    u = w.users
    u["owner"] = f.make_user("owner", tenant=acme)
    u["guest"] = f.make_user("guest", tenant=acme)
    u["reporter"] = f.make_user("reporter", tenant=acme)
    u["developer"] = f.make_user("developer", tenant=acme)
    u["maintainer"] = f.make_user("maintainer", tenant=acme)
    u["agent_owner"] = f.make_user("agent_owner", tenant=acme)
    u["tenant_admin"] = f.make_user("tenant_admin", tenant=acme, admin=True, is_staff=True)
    u["other_admin"] = f.make_user("other_admin", tenant=globex, admin=True, is_staff=True)
    u["ex_member"] = f.make_user("ex_member", tenant=acme)
    u["stranger"] = f.make_user("stranger")
    u["anonymous"] = None
    for name, role in (
        ("owner", Role.REPORTER),
        ("guest", Role.GUEST),
        ("reporter", Role.REPORTER),
        ("developer", Role.DEVELOPER),
        ("maintainer", Role.MAINTAINER),
        ("ex_member", Role.DEVELOPER),
    ):
        f.add_member(payments, u[name], role)
    w.agent = f.make_agent(payments, u["agent_owner"], name="builder")
    w.other_agent = f.make_agent(search, u["tenant_admin"], name="searcher")

    for name in PEOPLE:
        user = u[name]
        if user is None or name in ("stranger", "other_admin"):
            continue
        _, w.tokens[name] = services.token_create(
            tenant=acme, kind=TokenKind.PERSONAL, name=name, user=user, created_by=user
        )
    _, w.tokens["other_admin"] = services.token_create(
        tenant=globex, kind=TokenKind.PERSONAL, name="other", user=u["other_admin"]
    )
    # A token made around the services for someone who never belonged to the workspace.
    raw = "scc_stranger-token-made-by-hand-0000000000000000"
    ApiToken.objects.create(
        tenant=acme,
        kind=TokenKind.PERSONAL,
        name="forged",
        user=u["stranger"],
        prefix=raw[:12],
        token_hash=services.hash_token(raw),
    )
    w.tokens["stranger"] = raw
    w.tokens["anonymous"] = None
    # Left the workspace by a side door: the project role and the token stay behind.
    TenantMembership.objects.filter(user=u["ex_member"]).delete()

    _, w.tokens["rt_this"] = services.token_create(
        tenant=acme, kind=TokenKind.RUNTIME, name="rt", user=u["tenant_admin"], agents=[w.agent]
    )
    _, w.tokens["rt_other"] = services.token_create(
        tenant=acme,
        kind=TokenKind.RUNTIME,
        name="rt2",
        user=u["tenant_admin"],
        agents=[w.other_agent],
    )
    revoked, w.tokens["rt_revoked"] = services.token_create(
        tenant=acme, kind=TokenKind.RUNTIME, name="rt3", user=u["tenant_admin"], agents=[w.agent]
    )
    services.token_revoke(token=revoked)

    owner = u["owner"]
    o = w.objects
    o["flow"] = f.make_session(w.agent, owner, Kind.FLOW_RUN, status="running", title="Flow A1")
    o["task"] = f.make_session(
        w.agent, owner, Kind.BACKGROUND_TASK, status="running", title="Task B2"
    )
    o["chat"] = f.make_session(w.agent, owner, Kind.CHAT, title="Secret chat C3")
    o["spawned"] = f.make_session(
        w.agent,
        owner,
        Kind.BACKGROUND_TASK,
        status="running",
        title="Spawned D4",
        parent=o["chat"],
    )
    for s in o.values():
        s.refresh_from_db()
    return w


def fingerprint() -> tuple[Any, ...]:
    """Everything a call could change; a denied call must leave it equal."""
    return (
        tuple(
            AgentSession.objects.order_by("pk").values_list(
                "pk", "status", "version", "pinned", "last_seq", "owner_id", "checkpoint_state"
            )
        ),
        RuntimeCommand.objects.aggregate(n=Count("pk"))["n"],
        SessionEvent.objects.count(),
        ApiToken.objects.filter(revoked_at__isnull=True).count(),
        Membership.objects.count(),
        TenantMembership.objects.count(),
    )


class Cells:
    """Collects every wrong cell so one run reports all of them, each with its coordinates."""

    def __init__(self) -> None:
        self.failures: list[str] = []
        self.checked = 0

    def expect(self, where: str, got: Any, want: Any) -> None:
        self.checked += 1
        if got != want:
            self.failures.append(f"{where}: got {got!r}, want {want!r}")

    def require(self, where: str, condition: bool, what: str) -> None:
        self.checked += 1
        if not condition:
            self.failures.append(f"{where}: {what}")

    def done(self) -> None:
        assert not self.failures, (
            f"{len(self.failures)} of {self.checked} cells wrong:\n" + "\n".join(self.failures)
        )

"""Sessions that name other sessions: parent and children, cloned from, transferred from and to.

DESIGN 7: a related session the viewer may not see is shown as "a session you cannot see",
without title or id. Every surface (pages, pushes, API, export) asks here, so the rule is
written once: `related_for` for one session's whole lineage, `visible_among` for the links of
many (an API list page) in one query.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import QuerySet

from sessions_app.models import AgentSession
from sessions_app.selectors.access import Access, sessions_visible_to, visibility_q
from sessions_app.selectors.tokens import TokenAccess, sessions_visible_to_token

HIDDEN_TITLE = "a session you cannot see"
# The links a session row carries to another session (`<link>_id` columns).
LINKS = ("parent", "cloned_from", "transferred_from")
CHILDREN_LIMIT = 50


def _visible_sessions(viewer: Any) -> QuerySet[AgentSession]:
    """A user, a fresh `Access` (sockets) or an API token's `TokenAccess`."""
    if isinstance(viewer, TokenAccess):
        return sessions_visible_to_token(viewer)
    if isinstance(viewer, Access):
        return AgentSession.objects.filter(visibility_q(viewer))
    return sessions_visible_to(viewer)


def visible_among(viewer: Any, ids: Iterable[uuid.UUID | None]) -> set[uuid.UUID]:
    """Which of these session ids the viewer may see (one query)."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return set()
    return set(_visible_sessions(viewer).filter(pk__in=wanted).values_list("pk", flat=True))


def link_ids(sessions: Iterable[AgentSession]) -> set[uuid.UUID]:
    return {i for s in sessions for link in LINKS if (i := getattr(s, f"{link}_id")) is not None}


@dataclass(frozen=True)
class RelatedSession:
    """Another session named by this one; `session` is None when the viewer may not see it."""

    relation: str
    session: AgentSession | None

    @property
    def visible(self) -> bool:
        return self.session is not None

    @property
    def title(self) -> str:
        return self.session.title if self.session is not None else HIDDEN_TITLE

    def as_json(self) -> dict[str, Any]:
        s = self.session
        return {
            "relation": self.relation,
            "visible": s is not None,
            "id": str(s.pk) if s is not None else None,
            "title": self.title,
        }


@dataclass(frozen=True)
class Lineage:
    parent: RelatedSession | None = None
    cloned_from: RelatedSession | None = None
    transferred_from: RelatedSession | None = None
    transferred_to: list[RelatedSession] = field(default_factory=list)
    children: list[RelatedSession] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "parent": self.parent.as_json() if self.parent else None,
            "cloned_from": self.cloned_from.as_json() if self.cloned_from else None,
            "transferred_from": (
                self.transferred_from.as_json() if self.transferred_from else None
            ),
            "transferred_to": [r.as_json() for r in self.transferred_to],
            "children": [r.as_json() for r in self.children],
        }


def related_for(viewer: Any, session: AgentSession, *, limit: int = CHILDREN_LIMIT) -> Lineage:
    """Everything `session` names, each either the related session (the viewer may see it) or
    a placeholder that carries neither title nor id."""
    named: dict[str, list[uuid.UUID]] = {
        link: [i] for link in LINKS if (i := getattr(session, f"{link}_id")) is not None
    }
    named["transferred_to"] = list(
        AgentSession.objects.filter(transferred_from=session)
        .order_by("created_at")
        .values_list("pk", flat=True)[:limit]
    )
    named["children"] = list(
        AgentSession.objects.filter(parent=session)
        .order_by("-created_at")
        .values_list("pk", flat=True)[:limit]
    )
    all_ids = {i for ids in named.values() for i in ids}
    seen = {
        s.pk: s for s in _visible_sessions(viewer).filter(pk__in=all_ids).select_related("agent")
    }

    def refs(relation: str) -> list[RelatedSession]:
        return [RelatedSession(relation, seen.get(i)) for i in named.get(relation, [])]

    def one(relation: str) -> RelatedSession | None:
        found = refs(relation)
        return found[0] if found else None

    return Lineage(
        parent=one("parent"),
        cloned_from=one("cloned_from"),
        transferred_from=one("transferred_from"),
        transferred_to=refs("transferred_to"),
        children=refs("children"),
    )


def _named(payload: Any) -> dict[str, str]:
    """The sessions a command payload names: a transfer's successor (`to_session`), a clone's
    source (`cloned_from`) and a transfer start's source (`transfer.from_session`)."""
    if not isinstance(payload, dict):
        return {}
    transfer = payload.get("transfer")
    found = {
        "to_session": payload.get("to_session"),
        "cloned_from": payload.get("cloned_from"),
        "transfer": transfer.get("from_session") if isinstance(transfer, dict) else None,
    }
    return {key: str(value) for key, value in found.items() if value}


def _as_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def command_payloads_for(viewer: Any, commands: Iterable[Any]) -> dict[Any, dict[str, Any]]:
    """Each command's payload as this viewer may read it: a link to a session they may not see
    is null, and a transfer's context (the source's id and transcript) is left out."""
    commands = list(commands)
    named = {c.pk: _named(c.payload) for c in commands}
    ids = {_as_uuid(v) for links in named.values() for v in links.values()}
    visible = {str(i) for i in visible_among(viewer, ids)}
    out: dict[Any, dict[str, Any]] = {}
    for command in commands:
        payload = dict(command.payload) if isinstance(command.payload, dict) else {}
        for key, value in named[command.pk].items():
            if value not in visible:
                payload[key] = None
        out[command.pk] = payload
    return out

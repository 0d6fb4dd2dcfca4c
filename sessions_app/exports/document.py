"""What every export says about a session: the header (every field the session stores, as the
viewer may see it) and each event, as plain JSON values. The JSON file, the Markdown, the print
view (and so the PDF) and the bundle's manifest are all built from these, so they agree."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sessions_app import selectors, states
from sessions_app.models import AgentSession, EventType
from sessions_app.selectors.lineage import Lineage

FORMAT_NAME = "scc-session-export"
FORMAT_VERSION = 1


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True, slots=True)
class Event:
    """One stored event, read as plain values for exporting (the fields of `SessionEvent`)."""

    seq: int
    event_id: str
    type: str
    actor: str
    payload: Any
    redactions: Any
    created_at: datetime

    def get_type_display(self) -> str:
        return str(EventType(self.type).label) if self.type in EventType.values else self.type


EVENT_FIELDS = ("seq", "event_id", "type", "actor", "payload", "redactions", "created_at")


@dataclass(frozen=True)
class Snapshot:
    """One export's fixed view of a session: the events up to `up_to_seq`, as `viewer` may see
    them, taken by `exported_by` at `exported_at`."""

    session: AgentSession
    viewer: Any  # a user or an API token's TokenAccess: whoever the lineage is shown to
    exported_by: str
    exported_at: datetime
    up_to_seq: int
    event_count: int

    def events(self, **filters: Any) -> Iterator[Event]:
        rows = selectors.events_for_export(
            self.session, up_to_seq=self.up_to_seq, fields=EVENT_FIELDS, **filters
        )
        return (Event(*row) for row in rows)

    def header(self) -> dict[str, Any]:
        return {
            "export": {
                "format": FORMAT_NAME,
                "version": FORMAT_VERSION,
                "exported_at": _iso(self.exported_at),
                "exported_by": self.exported_by,
                "up_to_seq": self.up_to_seq,
                "event_count": self.event_count,
            },
            "session": session_header(
                self.session, selectors.related_for(self.viewer, self.session)
            ),
        }


def session_header(s: AgentSession, lineage: Lineage) -> dict[str, Any]:
    """Every column of the session a person may read, grouped as the page shows them. Related
    sessions come from the one lineage rule: those the viewer may not see have no id or title."""
    return {
        "id": str(s.pk),
        "short_id": s.short_id,
        "title": s.title,
        "kind": s.kind,
        "status": s.status,
        "status_group": s.status_group,
        "agent_status": s.agent_status,
        "agent": s.agent.name,
        "owner": s.owner.get_username(),
        "project": s.project.name,
        "initiative": s.initiative.name if s.initiative is not None else None,
        "model": s.model,
        "parameters": {
            "temperature": s.temperature,
            "max_tokens": s.max_tokens,
            "timeout_seconds": s.timeout_seconds,
        },
        "metadata": {
            "origin": s.origin,
            "runtime": s.runtime,
            "sandbox": s.sandbox,
            "profile": s.profile,
            "repo": s.repo,
            "branch": s.branch,
        },
        "progress": {
            "text": states.progress_text(s),
            "current_step": s.current_step,
            "total_steps": s.total_steps,
            "current_step_name": s.current_step_name,
            "turns": s.turns,
            "message_count": s.message_count,
        },
        "checkpoint": {"state": s.checkpoint_state, "name": s.checkpoint_name},
        "stalled": s.stalled,
        "stall_reason": s.stall_reason,
        "stop_reason": s.stop_reason,
        "error": (
            {"code": s.error_code, "message": s.error_message}
            if s.error_code or s.error_message
            else None
        ),
        "created_at": _iso(s.created_at),
        "started_at": _iso(s.started_at),
        "ended_at": _iso(s.ended_at),
        "status_changed_at": _iso(s.status_changed_at),
        "last_activity_at": _iso(s.last_activity_at),
        "archived_at": _iso(s.archived_at),
        "expires_at": _iso(s.expires_at),
        "pinned": s.pinned,
        "usage": {"tokens_in": s.tokens_in, "tokens_out": s.tokens_out, "cost": str(s.cost)},
        "redactions": dict(sorted((s.redaction_counts or {}).items())),
        "lineage": lineage.as_json(),
    }


def _sorted(value: Any) -> Any:
    # PostgreSQL's jsonb reorders keys and SQLite keeps them as sent: sorted, an export reads
    # the same from either database.
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def event_dict(e: Event) -> dict[str, Any]:
    """One event as exported; its canonical JSON is what the bundle's manifest hashes."""
    return {
        "seq": e.seq,
        "event_id": e.event_id,
        "type": e.type,
        "actor": e.actor,
        "payload": _sorted(e.payload),
        "redactions": _sorted(e.redactions or {}),
        "created_at": _iso(e.created_at),
    }


def canonical(value: Any) -> bytes:
    """Sorted keys, no blanks, UTF-8: one byte string per JSON value, whoever serialises it."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


CHAIN_START = "0" * 64


def chain_next(previous: str, event_canonical: bytes) -> str:
    """h_i = sha256(h_{i-1} as 64 lowercase hex characters + canonical(event_i)); h_0 = 64 zeros."""
    return sha256_hex(previous.encode("ascii") + event_canonical)


# --- the header as rows a person reads (Markdown table, print view) ---------------------------


def usage_text(usage: dict[str, Any]) -> str:
    """Tokens and cost as reported by the runtime; empty when it reported none."""
    if not (usage["tokens_in"] or usage["tokens_out"] or Decimal(usage["cost"])):
        return ""
    return f"{usage['tokens_in']} tokens in, {usage['tokens_out']} out, cost {usage['cost']}"


def header_rows(header: dict[str, Any]) -> list[tuple[str, str]]:
    """Label and text of every header field worth a line, in reading order; empty ones left out.
    The Markdown table and the print view (so the PDF) both show exactly these."""
    s = header["session"]
    ex = header["export"]
    p, m, prog = s["parameters"], s["metadata"], s["progress"]
    lineage = s["lineage"]

    def rel(item: dict[str, Any] | None) -> str:
        if not item:
            return ""
        return f"{item['title']} ({item['id']})" if item["visible"] else item["title"]

    error = s["error"]
    rows = [
        ("Session", f"{s['id']} (#{s['short_id']})"),
        ("Kind", states.Kind(s["kind"]).label),
        ("Status", f"{s['status']} ({s['status_group']})"),
        ("Agent status", s["agent_status"]),
        ("Agent", s["agent"]),
        ("Owner", s["owner"]),
        ("Project", s["project"]),
        ("Initiative", s["initiative"] or ""),
        ("Model", s["model"]),
        ("Temperature", str(p["temperature"])),
        ("Max tokens", str(p["max_tokens"])),
        ("Timeout", f"{p['timeout_seconds']} s"),
        ("Origin", m["origin"]),
        ("Runtime", m["runtime"]),
        ("Sandbox", m["sandbox"]),
        ("Profile", m["profile"]),
        ("Repo", m["repo"]),
        ("Branch", m["branch"]),
        ("Progress", prog["text"]),
        (
            "Checkpoint",
            " ".join(x for x in (s["checkpoint"]["state"], s["checkpoint"]["name"]) if x),
        ),
        ("Stalled", (s["stall_reason"] or "yes") if s["stalled"] else ""),
        ("Stop reason", s["stop_reason"]),
        ("Error", f"{error['code']} {error['message']}".strip() if error else ""),
        ("Created", s["created_at"] or ""),
        ("Started", s["started_at"] or ""),
        ("Ended", s["ended_at"] or ""),
        ("Last activity", s["last_activity_at"] or ""),
        ("Archived", s["archived_at"] or ""),
        ("Expires", "pinned (kept past retention)" if s["pinned"] else s["expires_at"] or ""),
        ("Redactions", redaction_text(s["redactions"])),
        ("Usage", usage_text(s["usage"])),
        ("Spawned from", rel(lineage["parent"])),
        ("Cloned from", rel(lineage["cloned_from"])),
        ("Transferred from", rel(lineage["transferred_from"])),
        *(("Transferred to", rel(r)) for r in lineage["transferred_to"]),
        *(("Spawned", rel(r)) for r in lineage["children"]),
        (
            "Exported",
            f"{ex['exported_at']} by {ex['exported_by']}: {ex['event_count']} events "
            f"(up to #{ex['up_to_seq']})",
        ),
    ]
    return [(label, value) for label, value in rows if value]


def redaction_text(counts: dict[str, int]) -> str:
    """{"github_token": 1, "jwt": 2} -> "3 credentials redacted: github_token, jwt" (rule names
    and counts, never values)."""
    if not counts:
        return ""
    total = sum(n for n in counts.values() if isinstance(n, int))
    return f"{total} credential{'s' if total != 1 else ''} redacted: {', '.join(sorted(counts))}"

"""Every HTML fragment the live UI sends, rendered from the page templates' partials so a row,
a panel item or a transcript line has exactly one source of HTML."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.template.loader import render_to_string
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString

from command_center.filters import filter_query, panel_section
from sessions_app import selectors, states
from sessions_app.models import AgentSession, EventType, SessionEvent
from sessions_app.states import Kind, Status

VERBOSE_TYPES = frozenset(
    {
        EventType.THINKING,
        EventType.TOOL_CALL,
        EventType.TOOL_RESULT,
        EventType.PROGRESS,
        EventType.AGENT_STATUS,
    }
)
TRANSCRIPT_PAGE = 100


def _render(name: str, context: dict[str, Any]) -> SafeString:
    return SafeString(render_to_string(name, context))


def row_html(session: AgentSession) -> SafeString:
    return _render("command_center/sessions.html#row", {"s": session})


def panel_item_html(session: AgentSession, *, section: str, can_act: bool) -> SafeString:
    return _render(
        "command_center/panel.html#item", {"s": session, "section": section, "can_act": can_act}
    )


PANEL_SECTIONS = ("needs", "active", "recent")


def live_op(op: str, target: str, content: SafeString | str = "") -> SafeString:
    """An operation on an element that may not be on the page (see oob.html#op)."""
    before_op, before_target, before_content, after = _op_frame()
    return SafeString(
        f"{before_op}{conditional_escape(op)}{before_target}{conditional_escape(target)}"
        f"{before_content}{conditional_escape(content)}{after}"
    )


@cache
def _op_frame() -> tuple[str, ...]:
    """oob.html#op rendered once around three markers, then filled in per operation: every push
    wraps each of its fragments in it, a dozen renders per changed session. The partial has no
    logic of its own, so filling its slots with escaped values is what rendering it does
    (tests/command_center/test_live_op.py holds the two to the same output)."""
    marker = "\x00"
    frame = render_to_string(
        "command_center/oob.html#op", {"op": marker, "target": marker, "content": marker}
    ).split(marker)
    if len(frame) != 4:
        raise ImproperlyConfigured("oob.html#op must show op, target and content once each")
    return tuple(frame)


def panel_remove_html(session_id: str) -> str:
    return "".join(live_op("remove", f"cc-{name}-{session_id}") for name in PANEL_SECTIONS)


def session_fragments(session: AgentSession) -> dict[str, Any]:
    """The viewer-independent HTML of one session, rendered once per change by the
    broadcaster as the final out-of-band messages, so a consumer only chooses among these
    strings and concatenates them. The panel item comes in two variants: with and without
    one-click actions."""
    sid = str(session.pk)
    summary = panel_facts(session)
    row = row_html(session)
    row_id = f"session-{sid}"
    html: dict[str, Any] = {
        "panel_remove": panel_remove_html(sid),
        # Paged viewers get the row replaced where it is (if shown) without moving the list.
        "row_update": live_op("replace", row_id, row),
        # Otherwise the row moves to where a reload would put it: its section, in list order.
        "row_move": live_op("remove", row_id)
        + live_op("insert", "rows-live" if session.live else "rows-rest", row),
        "row_remove": live_op("remove", row_id),
    }
    # The section depends on whether the viewer may act (Needs you is what they can act on):
    # both variants are rendered here, the consumer picks one.
    for suffix, can_act in (("", False), ("_act", True)):
        section = panel_section(summary, can_act=can_act)
        html[f"section{suffix}"] = section
        if section is not None:
            item = panel_item_html(session, section=section, can_act=can_act)
            html[f"panel_insert{suffix}"] = live_op("insert", f"cc-{section}", item)
    return html


def panel_facts(session: AgentSession) -> dict[str, Any]:
    """The fields `filters.panel_section` reads, from a session."""
    return {
        "archived": session.archived_at is not None,
        "last_activity_at": session.last_activity_at.isoformat(),
        "status": session.status,
        "live": session.live,
        "kind": session.kind,
        "stalled": session.stalled,
        "agent_status": session.agent_status,
    }


def deleted_fragments(session_id: str) -> dict[str, Any]:
    return {
        "section": None,
        "section_act": None,
        "panel_remove": panel_remove_html(session_id),
        "row_remove": live_op("remove", f"session-{session_id}"),
    }


# --- panel ------------------------------------------------------------------------------------


def panel_context(user: Any) -> dict[str, Any]:
    return {"sections": selectors.command_center_panel(user)}


def panel_body_html(user: Any) -> str:
    return _render("command_center/panel.html#body", panel_context(user))


def panel_counts_html(user: Any) -> str:
    counts = selectors.command_center_counts(user)
    return _render(
        "command_center/panel.html#counts",
        {"sections": {k: {"count": v} for k, v in counts.items()}},
    )


def panel_body_and_counts_html(user: Any) -> list[str]:
    """The panel's body and its counts from one read of the panel, which counts each section
    anyway (a snapshot sends both; asking for them apart reads the counts twice)."""
    sections = selectors.command_center_panel(user)
    counts = {k: {"count": section.count} for k, section in sections.items()}
    return [
        _render("command_center/panel.html#body", {"sections": sections}),
        _render("command_center/panel.html#counts", {"sections": counts}),
    ]


# --- session detail -----------------------------------------------------------------------------


def actions_for(user: Any, session: AgentSession) -> dict[str, bool]:
    """The lifecycle actions this viewer may take in this status (nothing for viewers who
    may only look)."""
    if not selectors.can_act(user, session):
        return {"policy": selectors.can_edit_policy(user, session.agent)}
    actions = {
        verb: states.verb_refusal(verb, kind=session.kind, status=session.status) is None
        for verb in states.VERB_TARGETS
    }
    actions["approve"] = session.checkpoint_state == "awaiting"
    actions["pin"] = True
    actions["delete"] = True
    actions["transfer"] = session.status not in states.TERMINAL[session.kind]
    actions["policy"] = selectors.can_edit_policy(user, session.agent)
    return actions


@dataclass
class Step:
    index: int
    name: str
    state: str  # done, current, failed, pending


def flow_steps(session: AgentSession) -> list[Step]:
    names: dict[int, str] = {}
    completed: set[int] = set()
    for payload in selectors.step_payloads(session):
        index = payload.get("index") if isinstance(payload, dict) else None
        if isinstance(index, int):
            names[index] = str(payload.get("name") or f"Step {index}")
            if payload.get("state") == "completed":
                completed.add(index)
    total = max([session.total_steps, *names.keys()]) if names or session.total_steps else 0
    steps = []
    for i in range(1, total + 1):
        if i in completed or session.status == Status.COMPLETED:
            state = "done"
        elif i == session.current_step:
            state = "failed" if session.status == Status.FAILED else "current"
        else:
            state = "pending"
        steps.append(Step(i, names.get(i, f"Step {i}"), state))
    return steps


def pair_tool_results(events: list[SessionEvent]) -> list[SessionEvent]:
    """Attach each tool result to its call within the page, so a call and its result are one
    expandable block; a result whose call is on another page stays on its own."""
    calls = {
        e.payload.get("call_id"): e
        for e in events
        if e.type == EventType.TOOL_CALL
        and isinstance(e.payload, dict)
        and e.payload.get("call_id")
    }
    shown = []
    for e in events:
        if e.type == EventType.TOOL_RESULT and isinstance(e.payload, dict):
            call = calls.get(e.payload.get("call_id"))
            if call is not None and getattr(call, "result", None) is None:
                call.result = e  # type: ignore[attr-defined]
                continue
        shown.append(e)
    return shown


def transcript_page(session: AgentSession, *, before: int | None = None) -> dict[str, Any]:
    latest = selectors.transcript_tail(session, before=before, limit=TRANSCRIPT_PAGE)
    older_cursor = latest[0].seq if latest and latest[0].seq > 1 else None
    return {
        "events": pair_tool_results(latest),
        "older_cursor": older_cursor,
        "last_seq": session.last_seq,
        "verbose_types": VERBOSE_TYPES,
    }


def detail_context(user: Any, session: AgentSession, **extra: Any) -> dict[str, Any]:
    ctx: dict[str, Any] = {
        "s": session,
        "actions": actions_for(user, session),
        "can_act": selectors.can_act(user, session),
        "verbose_types": VERBOSE_TYPES,
        # Related sessions through the one lineage rule: hidden ones carry no title or id.
        "lineage": selectors.related_for(user, session),
    }
    if session.kind == Kind.FLOW_RUN:
        ctx["steps"] = flow_steps(session)
    elif session.kind == Kind.BACKGROUND_TASK:
        ctx["history"] = selectors.status_history(session)
    ctx.update(extra)
    return ctx


def header_html(user: Any, session: AgentSession, **extra: Any) -> str:
    return _render(
        "command_center/detail.html#header",
        {"s": session, "actions": actions_for(user, session), **extra},
    )


def side_html(user: Any, session: AgentSession) -> str:
    return _render("command_center/detail.html#side", detail_context(user, session))


def composer_html(user: Any, session: AgentSession) -> str:
    """The chat composer (swapped by its id): pushed once when the chat ends, so the page stops
    offering input at once without touching what a person is typing before that."""
    return _render(
        "command_center/detail.html#composer",
        {"s": session, "can_act": selectors.can_act(user, session)},
    )


def transcript_html(session: AgentSession) -> str:
    return _render(
        "command_center/detail.html#transcript", {"s": session, **transcript_page(session)}
    )


def events_html(events: list[SessionEvent]) -> SafeString:
    return _render(
        "command_center/detail.html#events",
        {"events": pair_tool_results(events), "verbose_types": VERBOSE_TYPES},
    )


def oob_insert(target: str, content: SafeString, position: str = "afterbegin") -> SafeString:
    """`content` must be HTML this process rendered (a SafeString): pushed HTML is wrapped
    before it crosses the channel layer, never after."""
    return _render(
        "command_center/oob.html#insert",
        {"target": target, "content": content, "position": position},
    )


def new_banner_html(count: int) -> str:
    return _render("command_center/oob.html#banner", {"count": count})


def list_html(page: selectors.Page, flt: selectors.SessionFilter) -> str:
    return _render(
        "command_center/sessions.html#list",
        {"page": page, "flt": flt, "filter_qs": filter_query(flt)},
    )


def deleted_header_html() -> str:
    return _render("command_center/detail.html#header", {"deleted": True})


def access_lost_header_html() -> str:
    return _render("command_center/detail.html#header", {"access_lost": True})

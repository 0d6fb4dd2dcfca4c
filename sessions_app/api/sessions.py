"""Sessions: create, list, read, ingest events, and the operator actions."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, Literal
from uuid import UUID

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from ninja import Router, Status
from ninja.decorators import decorate_view
from ninja.params.functions import Query

from sessions_app import selectors, services
from sessions_app.api import idempotency
from sessions_app.api import serializers as out
from sessions_app.api.auth import caller, require_personal, require_runtime
from sessions_app.api.errors import error_body
from sessions_app.api.idempotency import idempotent
from sessions_app.api.schemas import (
    MAX_BATCH_BYTES,
    MAX_ID,
    CommandListOut,
    DecisionIn,
    ErrorOut,
    EventBatchIn,
    EventBatchOut,
    EventListOut,
    MessageIn,
    MessageOut,
    PayloadTooLarge,
    SessionCreateIn,
    SessionListOut,
    SessionOut,
)
from sessions_app.models import AgentSession
from sessions_app.states import Group, Kind

router = Router(tags=["sessions"])

# The error answers every authenticated operation may give; listed so the OpenAPI document
# (and schemathesis) know them.
ERRORS: dict[int, Any] = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 422: ErrorOut}
ACTION_ERRORS: dict[int, Any] = {**ERRORS, 409: ErrorOut}
_NO_NUL = r"^[^\x00]*$"


# --- create, list, read --------------------------------------------------------------------------


def session_json(access: selectors.TokenAccess, session: AgentSession) -> dict[str, Any]:
    """A session as this caller may see it: links to sessions it may not see carry no id."""
    visible = selectors.visible_among(access, selectors.link_ids([session]))
    return out.session_out(session, visible=visible)


@router.post(
    "/sessions",
    response={201: SessionOut, **ACTION_ERRORS},
    summary="Create a session",
    description="Runtime tokens create sessions for their agents on behalf of `owner` (the "
    "runtime runs them). Personal tokens start sessions owned by their user: the session waits "
    "(`waiting_reason`) until a runtime of the agent accepts its `start` command, and fails if "
    "none does within the start timeout. `model` other than the agent's default needs a policy "
    "allowing overrides and the right to use it (422 naming `model`). 409 "
    "`concurrency_limit` when the owner is at the agent's cap (`details`: limit, current). With an `Idempotency-Key` header a retry gets the first answer instead "
    "of a second session: same key and body replay it, same key with another body is 422, a "
    "duplicate while the first is running is 409 (see docs/api.md).",
    openapi_extra=idempotency.openapi_extra(),
)
@decorate_view(idempotent)
def session_create(request: HttpRequest, data: SessionCreateIn) -> Status[dict[str, Any]]:
    session = services.session_create_for_token(
        access=caller(request),
        agent_id=data.agent,
        owner_username=data.owner or "",
        initiative_id=data.initiative,
        parent_id=data.parent,
        kind=data.kind,
        title=data.title,
        model=data.model,
        temperature=data.temperature,
        max_tokens=data.max_tokens,
        timeout_seconds=data.timeout_seconds,
        metadata=data.metadata.model_dump(mode="json"),
        text=data.input,
    )
    return Status(201, session_json(caller(request), session))


@router.get(
    "/sessions",
    response={200: SessionListOut, **ERRORS},
    summary="List sessions",
    description="Live sessions first, then the most recently active (or by `sort`: cost or "
    "tokens, most first); keyset pagination with "
    "`cursor`. Runtime tokens see their agents' sessions, personal tokens what their user may "
    "see.",
)
def session_list(
    request: HttpRequest,
    owner: str = Query("", pattern=r"^(|me|[0-9]{1,15})$", description="'me' or a user id"),
    kind: Kind | None = None,
    initiative: int | None = Query(None, ge=1, le=MAX_ID),
    group: Group | None = None,
    agent: int | None = Query(None, ge=1, le=MAX_ID),
    project: int | None = Query(None, ge=1, le=MAX_ID),
    q: str = Query("", max_length=200, pattern=_NO_NUL, description="Title text or #short_id"),
    active: bool = Query(False, description="Only sessions in Active Now"),
    stalled: bool = Query(False, description="Only stalled sessions"),
    sort: Literal["", "cost", "tokens"] = Query(
        "", description="'' live first then most recent; 'cost' or 'tokens': most first"
    ),
    cursor: str = Query("", max_length=500, pattern=_NO_NUL),
    limit: int = Query(50, ge=1, le=200),
) -> dict[str, Any]:
    access = caller(request)
    flt = selectors.SessionFilter(
        owner=owner,
        kind=kind.value if kind else "",
        initiative=initiative,
        group=group.value if group else "",
        agent=agent,
        project=project,
        q=q,
        active_only=active,
        stalled=stalled,
        sort=sort,
    )
    page = selectors.session_page(
        access.user,
        flt,
        cursor=cursor or None,
        limit=limit,
        branches=selectors.token_audience(access),
    )
    visible = selectors.visible_among(access, selectors.link_ids(page.items))
    return {
        "items": [out.session_out(s, visible=visible) for s in page.items],
        "next_cursor": page.next_cursor,
    }


@router.get(
    "/sessions/{session_id}", response={200: SessionOut, **ERRORS}, summary="Read a session"
)
def session_detail(request: HttpRequest, session_id: UUID) -> dict[str, Any]:
    access = caller(request)
    return session_json(access, selectors.session_get_for_token(access, session_id))


@router.get(
    "/sessions/{session_id}/events",
    response={200: EventListOut, **ERRORS},
    summary="Read a session's transcript",
    description="Events with seq greater than `after`, oldest first.",
)
def event_list(
    request: HttpRequest,
    session_id: UUID,
    after: int = Query(0, ge=0, le=MAX_ID),
    limit: int = Query(200, ge=1, le=1000),
) -> dict[str, Any]:
    session = selectors.session_get_for_token(caller(request), session_id)
    events = selectors.session_events(session, after=after, limit=limit)
    return {
        "items": [out.event_out(e) for e in events],
        "last_seq": session.last_seq,
        "next_after": events[-1].seq if len(events) == limit else None,
    }


@router.get(
    "/sessions/{session_id}/commands",
    response={200: CommandListOut, **ERRORS},
    summary="Commands queued for a session's runtime, newest first",
)
def command_list(request: HttpRequest, session_id: UUID) -> dict[str, Any]:
    access = caller(request)
    session = selectors.session_get_for_token(access, session_id)
    commands = selectors.commands_for_session(session)
    # Commands name other sessions (a transfer's successor, a start's source), which the caller
    # may not be allowed to see: those links go, as everywhere (DESIGN 7).
    payloads = selectors.command_payloads_for(access, commands)
    return {"items": [{**out.command_out(c), "payload": payloads[c.pk]} for c in commands]}


# --- ingestion -------------------------------------------------------------------------------------


def limit_body(
    max_bytes: int,
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Refuse an oversized body with 413 before anything reads or parses it."""

    def decorator(run: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(run)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                declared = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                declared = 0
            try:
                size = declared if declared > max_bytes else len(request.body)
            except RequestDataTooBig:
                size = max_bytes + 1
            if size > max_bytes:
                status, body = error_body(
                    PayloadTooLarge(
                        f"A batch may be at most {max_bytes} bytes (1 MiB); this one is "
                        f"{size} bytes. Split it.",
                        limit=max_bytes,
                        actual=size,
                    )
                )
                return JsonResponse(body, status=status)
            return run(request, *args, **kwargs)

        return wrapper

    return decorator


@router.post(
    "/sessions/{session_id}/events",
    response={200: EventBatchOut, **ACTION_ERRORS, 413: ErrorOut},
    summary="Post a batch of events",
    description="Idempotent per `event_id`: a retried batch stores nothing new and answers with "
    "the same per-item results; an `event_id` resent with other content is reported as "
    "`conflict` and the stored event stays. Events for a session that has ended (ended, "
    "completed, failed, cancelled) are refused per item as `session_ended`, except a report of "
    "the status it already has and `error` events. Status changes go through the session "
    "lifecycle (409 on an illegal one, and then nothing of the batch is stored). Runtime tokens "
    "only.",
)
@decorate_view(limit_body(MAX_BATCH_BYTES))
def events_post(request: HttpRequest, session_id: UUID, data: EventBatchIn) -> dict[str, Any]:
    access = require_runtime(request)
    # The hot path: the session lookup is the service's row lock (one statement).
    recorded = services.events_record_in(
        session_id=session_id,
        tenant_id=access.tenant_id,
        agent_ids=access.agent_ids,
        events=[
            services.EventIn(
                event_id=event.event_id,
                type=event.type,
                payload=event.payload.model_dump(mode="json", exclude_unset=True),
                actor=event.actor,
            )
            for event in data.events
        ],
    )
    return {
        "results": recorded.results,
        "created": recorded.created,
        "duplicates": recorded.duplicates,
        "conflicts": recorded.conflicts,
        "refused": recorded.refused,
        "session": out.session_state_out(recorded.session),
    }


# --- operator actions -------------------------------------------------------------------------


def _act(
    request: HttpRequest, session_id: UUID, verb: Callable[..., AgentSession]
) -> dict[str, Any]:
    access = require_personal(request)
    session = selectors.session_get_for_token(access, session_id)
    return session_json(access, verb(session=session, user=access.user))


_ACTION_DOC = (
    "Personal tokens only. Changes the session and queues a command for its runtime. With an "
    "`Idempotency-Key` header a retry gets the first answer (see docs/api.md)."
)


@router.post(
    "/sessions/{session_id}/cancel",
    response={200: SessionOut, **ACTION_ERRORS},
    summary="Cancel a flow run or background task (not resumable)",
    description=_ACTION_DOC,
    openapi_extra=idempotency.openapi_extra(),
)
@decorate_view(idempotent)
def session_cancel(request: HttpRequest, session_id: UUID) -> dict[str, Any]:
    return _act(request, session_id, services.session_cancel)


@router.post(
    "/sessions/{session_id}/stop",
    response={200: SessionOut, **ACTION_ERRORS},
    summary="Stop (stopping until the runtime confirms)",
    description=_ACTION_DOC,
    openapi_extra=idempotency.openapi_extra(),
)
@decorate_view(idempotent)
def session_stop(request: HttpRequest, session_id: UUID) -> dict[str, Any]:
    return _act(request, session_id, services.session_stop)


@router.post(
    "/sessions/{session_id}/pause",
    response={200: SessionOut, **ACTION_ERRORS},
    summary="Pause",
    description=_ACTION_DOC,
    openapi_extra=idempotency.openapi_extra(),
)
@decorate_view(idempotent)
def session_pause(request: HttpRequest, session_id: UUID) -> dict[str, Any]:
    return _act(request, session_id, services.session_pause)


@router.post(
    "/sessions/{session_id}/resume",
    response={200: SessionOut, **ACTION_ERRORS},
    summary="Resume a paused, stopped or idle session",
    description=_ACTION_DOC,
    openapi_extra=idempotency.openapi_extra(),
)
@decorate_view(idempotent)
def session_resume(request: HttpRequest, session_id: UUID) -> dict[str, Any]:
    return _act(request, session_id, services.session_resume)


@router.post(
    "/sessions/{session_id}/end",
    response={200: SessionOut, **ACTION_ERRORS},
    summary="End a chat",
    description=_ACTION_DOC,
    openapi_extra=idempotency.openapi_extra(),
)
@decorate_view(idempotent)
def session_end(request: HttpRequest, session_id: UUID) -> dict[str, Any]:
    return _act(request, session_id, services.session_end)


def _decide(
    request: HttpRequest, session_id: UUID, data: DecisionIn | None, approve: bool
) -> dict[str, Any]:
    access = require_personal(request)
    session = selectors.session_get_for_token(access, session_id)
    session = services.checkpoint_decide(
        session=session, user=access.user, approve=approve, note=data.note if data else ""
    )
    return session_json(access, session)


@router.post(
    "/sessions/{session_id}/checkpoint/approve",
    response={200: SessionOut, **ACTION_ERRORS},
    summary="Approve the waiting checkpoint",
    description=_ACTION_DOC,
    openapi_extra=idempotency.openapi_extra(),
)
@decorate_view(idempotent)
def checkpoint_approve(
    request: HttpRequest, session_id: UUID, data: DecisionIn | None = None
) -> dict[str, Any]:
    return _decide(request, session_id, data, approve=True)


@router.post(
    "/sessions/{session_id}/checkpoint/reject",
    response={200: SessionOut, **ACTION_ERRORS},
    summary="Reject the waiting checkpoint (the runtime fails the run)",
    description=_ACTION_DOC,
    openapi_extra=idempotency.openapi_extra(),
)
@decorate_view(idempotent)
def checkpoint_reject(
    request: HttpRequest, session_id: UUID, data: DecisionIn | None = None
) -> dict[str, Any]:
    return _decide(request, session_id, data, approve=False)


@router.post(
    "/sessions/{session_id}/messages",
    response={201: MessageOut, **ACTION_ERRORS},
    summary="Send a message to the session's agent",
    description=_ACTION_DOC,
    openapi_extra=idempotency.openapi_extra(),
)
@decorate_view(idempotent)
def message_send(request: HttpRequest, session_id: UUID, data: MessageIn) -> Status[dict[str, Any]]:
    access = require_personal(request)
    session = selectors.session_get_for_token(access, session_id)
    command = services.message_send(session=session, user=access.user, text=data.text)
    session = selectors.session_get_for_token(access, session_id)
    return Status(
        201, {"command": out.command_out(command), "session": session_json(access, session)}
    )

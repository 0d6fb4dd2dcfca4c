"""Operator actions on a whole session that the pages offer too: pin and unpin, clone,
transfer (to a person or an agent) and delete. The same services as the pages, so the same
permissions (404 for a session you may not see, 403 for one you may not act on), errors and
audit lines; personal tokens only; each honours an Idempotency-Key."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.http import HttpRequest
from ninja import Router, Status
from ninja.decorators import decorate_view

from sessions_app import selectors, services
from sessions_app.api.auth import require_personal
from sessions_app.api.idempotency import idempotent
from sessions_app.api.schemas import DeletedOut, SessionOut, TransferIn
from sessions_app.api.sessions import ACTION_ERRORS, session_json
from sessions_app.api.sessions import router as sessions_router

router = Router(tags=["operator"])

_DOC = (
    "Personal tokens only; the same rules as the page. With an `Idempotency-Key` header a "
    "retry gets the first answer (see docs/api.md)."
)


def _pin(request: HttpRequest, session_id: UUID, pinned: bool) -> dict[str, Any]:
    access = require_personal(request)
    session = selectors.session_get_for_token(access, session_id)
    session = services.session_set_pinned(session=session, user=access.user, pinned=pinned)
    return session_json(access, session)


@router.post(
    "/sessions/{session_id}/pin",
    response={200: SessionOut, **ACTION_ERRORS},
    summary="Pin (exempt from retention)",
    description=_DOC,
)
@decorate_view(idempotent)
def session_pin(request: HttpRequest, session_id: UUID) -> dict[str, Any]:
    return _pin(request, session_id, True)


@router.post(
    "/sessions/{session_id}/unpin",
    response={200: SessionOut, **ACTION_ERRORS},
    summary="Unpin (retention applies again)",
    description=_DOC,
)
@decorate_view(idempotent)
def session_unpin(request: HttpRequest, session_id: UUID) -> dict[str, Any]:
    return _pin(request, session_id, False)


@router.post(
    "/sessions/{session_id}/clone",
    response={201: SessionOut, **ACTION_ERRORS},
    summary="Clone: a fresh session with the same agent and configuration, owned by you",
    description="Anyone who may see the session may clone it, under the agent's model policy "
    "and their own concurrency cap (409 `concurrency_limit`). The clone waits for a runtime of "
    "the agent to accept its `start` command and starts from the beginning. " + _DOC,
)
@decorate_view(idempotent)
def session_clone(request: HttpRequest, session_id: UUID) -> Status[dict[str, Any]]:
    access = require_personal(request)
    session = selectors.session_get_for_token(access, session_id)
    clone = services.session_clone(session=session, user=access.user)
    return Status(201, session_json(access, clone))


@router.post(
    "/sessions/{session_id}/transfer",
    response={201: SessionOut, **ACTION_ERRORS},
    summary="Transfer to a person or another agent; answers with the successor",
    description="Name exactly one of `to_user` (a workspace member: the successor is theirs) "
    "or `to_agent` (an agent you may use: the successor runs on it for the same owner, under "
    "its policy: its default model unless it allows this one, its concurrency cap). The "
    "source ends (chats) or stops (flow runs, background tasks) with stop reason `transfer`; "
    "the successor waits for a runtime of its agent, which continues where the source "
    "stopped. " + _DOC,
)
@decorate_view(idempotent)
def session_transfer(
    request: HttpRequest, session_id: UUID, data: TransferIn
) -> Status[dict[str, Any]]:
    access = require_personal(request)
    session = selectors.session_get_for_token(access, session_id)
    successor = services.session_hand_over(
        session=session, user=access.user, to_user=data.to_user or "", to_agent=data.to_agent
    )
    return Status(201, session_json(access, successor))


# On the sessions router: ninja serves one path from one router, and GET /sessions/{id} is there.
@sessions_router.delete(
    "/sessions/{session_id}",
    response={200: DeletedOut, **ACTION_ERRORS},
    summary="Delete a session with its transcript and commands",
    description=_DOC,
)
@decorate_view(idempotent)
def session_delete(request: HttpRequest, session_id: UUID) -> dict[str, Any]:
    access = require_personal(request)
    session = selectors.session_get_for_token(access, session_id)
    services.session_delete(session=session, user=access.user)
    return {"id": session_id, "deleted": True}

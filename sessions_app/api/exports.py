"""Export a session: the same files, rights and audit as the session page's Export menu."""

from __future__ import annotations

from enum import StrEnum
from typing import Any
from uuid import UUID

from django.http import HttpRequest, StreamingHttpResponse
from ninja import Router
from ninja.params.functions import Query

from sessions_app import exports, selectors
from sessions_app.api.auth import require_personal
from sessions_app.api.download import download
from sessions_app.api.schemas import ErrorOut

router = Router(tags=["exports"])


class ExportFormat(StrEnum):
    JSON = "json"
    MD = "md"
    PDF = "pdf"
    BUNDLE = "bundle"


_FORMAT = Query(ExportFormat.JSON, alias="format", description="json, md, pdf or bundle")
_BINARY = {"type": "string", "format": "binary"}
_EXPORT_JSON = {
    "type": "object",
    "required": ["export", "session", "events"],
    "properties": {
        "export": {"type": "object", "description": "format, exported_at, exported_by, up_to_seq"},
        "session": {
            "type": "object",
            "description": "every field of the session (docs/exports.md)",
        },
        "events": {"type": "array", "items": {"type": "object"}},
    },
}
_RESPONSES: dict[str, Any] = {
    "responses": {
        200: {
            "description": "The file, as an attachment. `json`: the full header and every "
            "event; `md`: a readable transcript; `pdf`: the print view (at most "
            "SCC_EXPORT_PDF_MAX_EVENTS events, said at its top); `bundle`: a zip of the three "
            "with manifest.json (chained SHA-256 per event), redaction-report.json and "
            "action-log.json, checked by `python manage.py verify_export FILE`.",
            "content": {
                "application/json": {"schema": _EXPORT_JSON},
                "text/markdown": {"schema": {"type": "string"}},
                "application/pdf": {"schema": _BINARY},
                "application/zip": {"schema": _BINARY},
            },
        }
    }
}


@router.get(
    "/sessions/{session_id}/export",
    response={400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 422: ErrorOut},
    summary="Export a session (JSON, Markdown, PDF or a verifiable bundle)",
    description="Personal tokens only; the caller needs view rights on the session (404 "
    "otherwise, as for reading it). Streamed, and written to the session's transcript as an "
    "`export` action (who, which format, up to which event). Related sessions the caller may "
    "not see appear without title or id. See docs/exports.md.",
    openapi_extra=_RESPONSES,
)
def session_export(
    request: HttpRequest,
    session_id: UUID,
    fmt: ExportFormat = _FORMAT,
) -> StreamingHttpResponse:
    access = require_personal(request)
    session = selectors.session_get_for_token(access, session_id)
    export = exports.session_export(
        session=session, viewer=access, user=access.user, fmt=fmt.value, via="api"
    )
    return download(request, export)

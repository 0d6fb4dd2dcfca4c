"""Exports through the page (Export menu, export.<ext>, print view) and the API: formats,
permissions, lineage, errors and the audit line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import AsyncRequestFactory, Client, RequestFactory
from django.urls import reverse

from sessions_app import selectors
from sessions_app.api.download import download
from sessions_app.exports import Export
from sessions_app.models import EventType, SessionEvent, TokenKind
from tests.api.conftest import Api, make_token
from tests.sessions_app.exports.conftest import Fixed

pytestmark = pytest.mark.django_db

FORMATS = [
    ("json", "json", "application/json"),
    ("md", "md", "text/markdown; charset=utf-8"),
    # These two render a PDF (about a second each).
    pytest.param("pdf", "pdf", "application/pdf", marks=pytest.mark.slow),
    pytest.param("zip", "bundle", "application/zip", marks=pytest.mark.slow),
]


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _body(resp: Any) -> bytes:
    return b"".join(resp.streaming_content)


def _audits(fixed: Fixed) -> list[dict[str, Any]]:
    return [
        e.payload
        for e in SessionEvent.objects.filter(session=fixed.session, type=EventType.ACTION)
        if e.payload.get("action") == "export"
    ]


def test_the_more_menu_offers_every_export_and_the_print_view(fixed, world) -> None:
    body = _client(world.owner).get(reverse("session_detail", args=[fixed.session.pk])).content
    page = body.decode()
    for ext in ("json", "md", "pdf", "zip"):
        assert f'/sessions/{fixed.session.pk}/export.{ext}"' in page
    assert f'/sessions/{fixed.session.pk}/print/"' in page


@pytest.mark.parametrize(("ext", "fmt", "content_type"), FORMATS)
def test_each_page_export_downloads_and_is_audited(fixed, world, ext, fmt, content_type) -> None:
    url = reverse("session_export_as", args=[fixed.session.pk, ext])
    resp = _client(world.owner).get(url)
    assert resp.status_code == 200
    assert resp["Content-Type"] == content_type
    suffix = "-bundle" if fmt == "bundle" else ""
    assert resp["Content-Disposition"] == f'attachment; filename="session-0f0e0d0c{suffix}.{ext}"'
    assert len(_body(resp)) > 500
    assert _audits(fixed) == [
        {"action": "export", "by": "owner", "format": fmt, "up_to_seq": 14, "via": "web"}
    ]


def test_export_json_keeps_its_address(fixed, world) -> None:
    url = reverse("session_export", args=[fixed.session.pk])
    assert url.endswith("/export.json")
    data = json.loads(_body(_client(world.owner).get(url)))
    assert data["session"]["id"] == str(fixed.session.pk)


def test_an_unknown_extension_is_404(fixed, world) -> None:
    resp = _client(world.owner).get(reverse("session_export_as", args=[fixed.session.pk, "docx"]))
    assert resp.status_code == 404
    assert _audits(fixed) == []


@pytest.mark.parametrize(("ext", "fmt", "content_type"), FORMATS)
def test_someone_who_may_not_see_the_session_gets_404_and_nothing_is_audited(
    fixed, world, ext, fmt, content_type
) -> None:
    for user in (world.outsider, world.other_admin):
        resp = _client(user).get(reverse("session_export_as", args=[fixed.session.pk, ext]))
        assert resp.status_code == 404
    assert (
        _client(world.outsider).get(reverse("session_print", args=[fixed.session.pk])).status_code
        == 404
    )
    assert _audits(fixed) == []
    # Positive control: a project developer may see the flow run, and may export it.
    resp = _client(world.developer).get(reverse("session_export_as", args=[fixed.session.pk, ext]))
    assert resp.status_code == 200


def test_the_markdown_export_names_a_hidden_parent_without_id_or_title(fixed, world) -> None:
    md = _body(
        _client(world.owner).get(reverse("session_export_as", args=[fixed.session.pk, "md"]))
    )
    text = md.decode()
    assert f"| Spawned from | {selectors.HIDDEN_TITLE} |" in text
    assert str(fixed.parent.pk) not in text
    admin_md = _body(
        _client(world.admin).get(reverse("session_export_as", args=[fixed.session.pk, "md"]))
    )
    assert str(fixed.parent.pk) in admin_md.decode()


def test_the_print_view_is_a_printable_document(fixed, world) -> None:
    resp = _client(world.owner).get(reverse("session_print", args=[fixed.session.pk]))
    page = resp.content.decode()
    assert resp.status_code == 200
    assert "<title>Deploy the payments service · session #0f0e0d0c</title>" in page
    assert "@page" in page  # the print stylesheet travels inline
    assert "[REDACTED:github_token]" in page
    assert selectors.HIDDEN_TITLE in page
    # Viewing is not exporting: no audit line.
    assert _audits(fixed) == []


async def test_under_asgi_the_download_is_pulled_chunk_by_chunk() -> None:
    """Django would drain a sync iterator into a list before sending it under ASGI; the
    download hands daphne an async iterator that asks for one chunk at a time, and closes the
    export's generator (and its cursor) when the response is closed."""
    made: list[int] = []
    closed: list[bool] = []

    def chunks() -> Iterator[bytes]:
        try:
            for i in range(3):
                made.append(i)
                yield f"chunk {i};".encode()
        finally:
            closed.append(True)

    request = AsyncRequestFactory().get("/sessions/x/export.md")
    resp: Any = download(request, Export("s.md", "text/markdown", chunks()))
    assert resp.is_async
    stream = aiter(resp.streaming_content)
    assert await anext(stream) == b"chunk 0;"
    assert made == [0]  # nothing is read ahead
    # What Django does when the response ends or the client goes away.
    resp.close()
    assert closed == [True]

    # Under WSGI (and the test client) the same export is a plain iterator.
    sync_resp: Any = download(RequestFactory().get("/"), Export("s.md", "text/markdown", chunks()))
    assert not sync_resp.is_async
    assert b"".join(sync_resp.streaming_content) == b"chunk 0;chunk 1;chunk 2;"


# --- API -----------------------------------------------------------------------------------------


def _api(world: Any, user: Any, kind: str = TokenKind.PERSONAL) -> Api:
    agents = [world.agent] if kind == TokenKind.RUNTIME else None
    return Api(make_token(world, kind, user, agents))


@pytest.mark.parametrize(("ext", "fmt", "content_type"), FORMATS)
def test_the_api_exports_each_format_and_audits_it(fixed, world, ext, fmt, content_type) -> None:
    resp = _api(world, world.owner).get(f"/sessions/{fixed.session.pk}/export", {"format": fmt})
    assert resp.status_code == 200
    assert resp["Content-Type"] == content_type
    body = _body(resp)
    if fmt == "json":
        assert json.loads(body)["session"]["lineage"]["parent"] == {
            "relation": "parent",
            "visible": False,
            "id": None,
            "title": selectors.HIDDEN_TITLE,
        }
    assert _audits(fixed) == [
        {"action": "export", "by": "owner", "format": fmt, "up_to_seq": 14, "via": "api"}
    ]


def test_the_api_exports_json_by_default(fixed, world) -> None:
    resp = _api(world, world.owner).get(f"/sessions/{fixed.session.pk}/export")
    assert resp["Content-Type"] == "application/json"


@pytest.mark.parametrize("value", ["xml", "", "JSON", "bundle.zip"])
def test_an_unknown_api_format_is_422_naming_the_field(fixed, world, value) -> None:
    resp = _api(world, world.owner).get(f"/sessions/{fixed.session.pk}/export", {"format": value})
    assert resp.status_code == 422
    body = resp.json()
    assert body["code"] == "invalid_input"
    assert body["field"] == "format"
    assert body["message"].startswith("format: ")
    assert "'json', 'md', 'pdf' or 'bundle'" in body["message"]
    assert _audits(fixed) == []


def test_api_export_permissions(fixed, world) -> None:
    path = f"/sessions/{fixed.session.pk}/export"
    assert _api(world, world.outsider).get(path).status_code == 404
    assert _api(world, world.other_admin).get(path).json()["code"] == "not_found"
    runtime = _api(world, world.agent_owner, TokenKind.RUNTIME).get(path)
    assert (runtime.status_code, runtime.json()["code"]) == (403, "forbidden")
    assert Api(None).get(path).status_code == 401
    assert Api(None).get(path).json()["code"] == "unauthorized"
    assert _audits(fixed) == []
    # Positive control: the agent owner's personal token may export.
    assert _api(world, world.agent_owner).get(path).status_code == 200


def test_the_openapi_document_describes_the_export(world) -> None:
    doc = Api(None).get("/openapi.json").json()
    op = doc["paths"]["/api/v1/sessions/{session_id}/export"]["get"]
    assert set(op["responses"]["200"]["content"]) == {
        "application/json",
        "text/markdown",
        "application/pdf",
        "application/zip",
    }
    (param,) = [p for p in op["parameters"] if p["name"] == "format"]
    assert param["in"] == "query"
    assert {"422", "404", "403", "401"} <= set(op["responses"])

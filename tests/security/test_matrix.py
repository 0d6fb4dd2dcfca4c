"""The authorisation matrix over the HTTP surfaces, generated from the table in world.py:
pages, page actions, export, API reads, lists and actions, the runtime long-poll and the admin.

Each call that may change something runs in a savepoint that is rolled back afterwards, so
every cell starts from the same world; a denied call must leave the world's fingerprint equal.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.db import transaction
from django.test import Client
from django.urls import reverse

from sessions_app.selectors import HIDDEN_TITLE
from tests.security.world import (
    OBJECTS,
    PEOPLE,
    RUNTIMES,
    STAFF,
    VERB_OUTCOME,
    Cells,
    MatrixWorld,
    build,
    fingerprint,
)

# Seconds of work each: in `make test` and CI, not in the `make check` inner loop.
pytestmark = [pytest.mark.slow, pytest.mark.django_db]

API = "/api/v1"
PAGE_VERBS = ("pause", "resume", "stop", "cancel", "end", "approve", "reject", "pin")


@pytest.fixture
def w() -> MatrixWorld:
    return build()


def page_client(w: MatrixWorld, persona: str) -> Client:
    client = Client()
    if w.users.get(persona) is not None:
        client.force_login(w.users[persona])
    return client


def api_client(token: str | None) -> Client:
    return Client(headers={"Authorization": f"Bearer {token}"} if token else {})


def rolled_back(
    cells: Cells, where: str, denied: bool, call: Callable[..., Any], *args: Any
) -> Any:
    """Run `call(*args)` in a savepoint that is always undone; a denied call must change
    nothing."""
    before = fingerprint()
    with transaction.atomic():
        response = call(*args)
        if denied:
            cells.require(where, fingerprint() == before, "a denied call changed the world")
        transaction.set_rollback(True)
    return response


def body_text(resp: Any) -> str:
    """A page's or a download's body (exports stream)."""
    if resp.streaming:
        return b"".join(resp.streaming_content).decode()
    return resp.content.decode()


def no_leak(cells: Cells, where: str, body: str, w: MatrixWorld, sees: frozenset[str]) -> None:
    """A page or document about a visible session names no session the viewer may not see."""
    for name in OBJECTS:
        if name in sees:
            continue
        hidden = w.objects[name]
        cells.require(where, str(hidden.pk) not in body, f"leaks the id of {name}")
        cells.require(where, hidden.title not in body, f"leaks the title of {name}")


def test_pages_list_panel_detail_events_and_export(w: MatrixWorld) -> None:
    cells = Cells()
    for persona, (sees, _acts) in PEOPLE.items():
        client = page_client(w, persona)
        anonymous = w.users[persona] is None
        for page in ("sessions", "panel"):
            resp = client.get(reverse(page))
            cells.expect(f"{persona} {page}", resp.status_code, 302 if anonymous else 200)
            body = resp.content.decode()
            for name, s in w.objects.items():
                cells.expect(f"{persona} {page} lists {name}", str(s.pk) in body, name in sees)
            no_leak(cells, f"{persona} {page}", body, w, sees)
        for name, s in w.objects.items():
            want = 302 if anonymous else 200 if name in sees else 404
            for page, suffix in (
                ("session_detail", ""),
                ("session_export", ""),
                ("session_events", "?before=2"),
            ):
                resp = client.get(reverse(page, args=[s.pk]) + suffix)
                where = f"{persona} {page} {name}"
                cells.expect(where, resp.status_code, want)
                if resp.status_code == 200:
                    no_leak(cells, where, body_text(resp), w, sees)
        if "spawned" in sees and "chat" not in sees:
            detail = client.get(reverse("session_detail", args=[w.objects["spawned"].pk]))
            cells.require(persona, HIDDEN_TITLE in detail.content.decode(), "no placeholder")
            export = json.loads(
                body_text(client.get(reverse("session_export", args=[w.objects["spawned"].pk])))
            )
            parent = export["session"]["lineage"]["parent"]
            cells.expect(f"{persona} export parent", parent["id"], None)
            cells.expect(f"{persona} export parent title", parent["title"], HIDDEN_TITLE)
    # Positive control of the lineage: those who may see the chat get its link.
    owner = page_client(w, "owner")
    body = owner.get(reverse("session_detail", args=[w.objects["spawned"].pk])).content.decode()
    assert w.objects["chat"].title in body
    cells.done()


def _page_action(w: MatrixWorld, client: Client, verb: str, s: Any) -> Any:
    htmx: dict[str, Any] = {"HTTP_HX_REQUEST": "true"}
    if verb == "message":
        return client.post(reverse("session_message", args=[s.pk]), {"text": "hi"}, **htmx)
    if verb == "clone":
        return client.post(reverse("session_clone", args=[s.pk]), **htmx)
    if verb == "transfer":
        return client.post(reverse("session_transfer", args=[s.pk]), {"to": "reporter"}, **htmx)
    if verb == "delete":
        return client.post(reverse("session_delete", args=[s.pk]), **htmx)
    return client.post(reverse("session_action", args=[s.pk, verb]), **htmx)


def test_page_actions(w: MatrixWorld) -> None:
    cells = Cells()
    verbs = (*PAGE_VERBS, "message", "clone", "transfer", "delete")
    for persona, (sees, acts) in PEOPLE.items():
        client = page_client(w, persona)
        for name, s in w.objects.items():
            for verb in verbs:
                if w.users[persona] is None:
                    want = 302
                elif name not in sees:
                    want = 404
                elif verb == "clone":
                    want = 200  # clone needs view rights and the right to use the agent
                elif name not in acts:
                    want = 403
                else:
                    want = VERB_OUTCOME.get(verb, {}).get(s.kind, 200)
                where = f"{persona} page {verb} {name}"
                resp = rolled_back(cells, where, want >= 300, _page_action, w, client, verb, s)
                cells.expect(where, resp.status_code, want)
    cells.done()


def _api_persons() -> list[tuple[str, frozenset[str] | None, frozenset[str]]]:
    """(persona, what its token reaches or None if refused, what it may act on)."""
    rows: list[tuple[str, frozenset[str] | None, frozenset[str]]] = []
    for persona, (sees, acts) in PEOPLE.items():
        refused = persona in ("anonymous", "stranger", "ex_member")
        rows.append((persona, None if refused else sees, acts))
    for persona, reach in RUNTIMES.items():
        rows.append((persona, reach, frozenset()))
    return rows


def test_api_reads_lists_events_and_commands(w: MatrixWorld) -> None:
    cells = Cells()
    for persona, reach, _acts in _api_persons():
        api = api_client(w.tokens[persona])
        resp = api.get(f"{API}/sessions")
        cells.expect(f"{persona} api list", resp.status_code, 401 if reach is None else 200)
        if reach is None:
            for name, s in w.objects.items():
                for suffix in ("", "/events", "/commands"):
                    resp = api.get(f"{API}/sessions/{s.pk}{suffix}")
                    cells.expect(
                        f"{persona} api GET {suffix or 'read'} {name}", resp.status_code, 401
                    )
            continue
        if resp.status_code == 200:
            listed = {item["id"] for item in resp.json()["items"]}
            for name, s in w.objects.items():
                cells.expect(f"{persona} api list {name}", str(s.pk) in listed, name in reach)
            no_leak(cells, f"{persona} api list", resp.content.decode(), w, reach)
        for name, s in w.objects.items():
            want = 200 if name in reach else 404
            for suffix in ("", "/events", "/commands"):
                where = f"{persona} api GET {suffix or 'read'} {name}"
                resp = api.get(f"{API}/sessions/{s.pk}{suffix}")
                cells.expect(where, resp.status_code, want)
                if resp.status_code == 200:
                    no_leak(cells, where, resp.content.decode(), w, reach)
        if "spawned" in reach:
            body = api.get(f"{API}/sessions/{w.objects['spawned'].pk}").json()
            shown = "chat" in reach
            cells.expect(
                f"{persona} api parent_id",
                body["parent_id"],
                str(w.objects["chat"].pk) if shown else None,
            )
            cells.expect(
                f"{persona} api hidden_related", body["hidden_related"], [] if shown else ["parent"]
            )
    cells.done()


def _api_action(api: Client, verb: str, s: Any) -> Any:
    path = {
        "approve": "checkpoint/approve",
        "reject": "checkpoint/reject",
        "message": "messages",
    }.get(verb, verb)
    body = json.dumps({"text": "hi"} if verb == "message" else {})
    return api.post(f"{API}/sessions/{s.pk}/{path}", body, content_type="application/json")


def test_api_actions(w: MatrixWorld) -> None:
    cells = Cells()
    verbs = (*VERB_OUTCOME, "message")
    for persona, reach, acts in _api_persons():
        api = api_client(w.tokens[persona])
        runtime = persona in RUNTIMES
        for name, s in w.objects.items():
            for verb in verbs:
                if reach is None:
                    want = 401
                elif runtime:
                    want = 403  # operator actions need a personal token
                elif name not in reach:
                    want = 404
                elif name not in acts:
                    want = 403
                elif verb == "message":
                    want = 201
                else:
                    want = VERB_OUTCOME[verb][s.kind]
                where = f"{persona} api {verb} {name}"
                resp = rolled_back(cells, where, want >= 300, _api_action, api, verb, s)
                cells.expect(where, resp.status_code, want)
    cells.done()


def test_runtime_long_poll(w: MatrixWorld) -> None:
    """Commands reach only the runtime of the sessions' agent; others get nothing or 401/403."""
    cells = Cells()
    maintainer = api_client(w.tokens["maintainer"])
    for s in w.objects.values():
        if s.kind != "chat":
            assert _api_action(maintainer, "pause", s).status_code == 200
    queued = {str(s.pk) for s in w.objects.values() if s.kind != "chat"}
    expected = {
        "rt_other": (200, set()),
        "rt_revoked": (401, set()),
        "owner": (403, set()),
        "anonymous": (401, set()),
        "rt_this": (200, queued),  # last: it claims them
    }
    for persona, (status, sessions) in expected.items():
        poll = api_client(w.tokens[persona]).get
        resp = rolled_back(cells, persona, persona != "rt_this", poll, f"{API}/runtime/commands")
        cells.expect(f"{persona} long-poll", resp.status_code, status)
        got = {c["session_id"] for c in resp.json().get("items", [])} if status == 200 else set()
        cells.expect(f"{persona} long-poll commands", got, sessions)
    cells.done()


ADMIN_MODELS = ("agentsession", "runtimecommand")


def test_admin_list_change_and_delete(w: MatrixWorld) -> None:
    cells = Cells()
    maintainer = api_client(w.tokens["maintainer"])
    assert _api_action(maintainer, "pause", w.objects["flow"]).status_code == 200
    command = w.objects["flow"].commands.get()
    for persona, (_sees, _acts) in PEOPLE.items():
        client = page_client(w, persona)
        staff_sees = STAFF.get(persona)
        resp = client.get(reverse("admin:sessions_app_agentsession_changelist"))
        cells.expect(f"{persona} admin list", resp.status_code, 302 if staff_sees is None else 200)
        if staff_sees is not None:
            body = resp.content.decode()
            for name, s in w.objects.items():
                cells.expect(f"{persona} admin lists {name}", s.title in body, name in staff_sees)
        rows = [(name, "agentsession", s.pk) for name, s in w.objects.items()]
        rows.append(("command", "runtimecommand", command.pk))
        for name, model, pk in rows:
            visible = staff_sees is not None and (name in staff_sees or name == "command")
            visible = visible and persona == "tenant_admin"
            change = client.get(reverse(f"admin:sessions_app_{model}_change", args=[pk]))
            cells.expect(
                f"{persona} admin change {name}", change.status_code, 200 if visible else 302
            )
            if visible:
                cells.require(
                    f"{persona} admin change {name}",
                    'name="_save"' not in change.content.decode(),
                    "offers to save a read-only row",
                )
            url = reverse(f"admin:sessions_app_{model}_delete", args=[pk])
            # Nobody may delete these here; staff learn nothing from it (403 for any id).
            want = 302 if staff_sees is None else 403
            for method in ("get", "post"):
                where = f"{persona} admin delete {method} {name}"
                call = getattr(client, method)
                resp = rolled_back(cells, where, True, call, url, {"post": "yes"})
                cells.expect(where, resp.status_code, want)
    cells.done()

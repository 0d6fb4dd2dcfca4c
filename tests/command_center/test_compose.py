"""What a pushed session looks like to each viewer is worked out once per distinct view
(command_center/compose.py), and agrees with the visibility rule."""

from __future__ import annotations

from typing import Any

import pytest

from command_center import compose
from command_center.broadcast import summary_for
from command_center.filters import parse_filter
from sessions_app import selectors
from tests import factories as f

pytestmark = pytest.mark.django_db


def _message(world: Any) -> dict[str, Any]:
    chat = f.make_session(world.agent, world.owner, "chat", status="running")
    run = f.make_session(world.agent, world.owner, "flow_run", status="paused")
    return {"type": "session.changes", "sessions": [summary_for(chat), summary_for(run)]}


def test_one_view_is_worked_out_once_per_message(world: Any, monkeypatch: Any) -> None:
    message = _message(world)
    admin = selectors.access_for(world.admin, fresh=True)
    developer = selectors.access_for(world.developer, fresh=True)
    calls: list[Any] = []
    real = compose.view_of

    def counting(summary: Any, access: Any, flt: Any) -> Any:
        calls.append(access.user_id)
        return real(summary, access, flt)

    monkeypatch.setattr(compose, "view_of", counting)
    flt = parse_filter({})
    first = compose.views_of(message, admin, flt)
    for _ in range(50):  # fifty more sockets of the same view
        assert compose.views_of(message, admin, flt) is first
    assert calls == [world.admin.pk] * 2
    # Positive control: another viewer is a view of its own.
    other = compose.views_of(message, developer, flt)
    assert calls == [world.admin.pk] * 2 + [world.developer.pk] * 2
    assert other is not first
    # A new message starts afresh.
    compose.views_of(_message(world), admin, flt)
    assert len(calls) == 6


def test_each_persona_sees_what_the_visibility_rule_allows(world: Any) -> None:
    message = _message(world)
    _chat, run = message["sessions"]
    flt = parse_filter({})
    expect = {
        # persona: (sees the chat, sees the flow run, may act on the flow run)
        world.owner: (True, True, True),
        world.developer: (False, True, False),
        world.maintainer: (False, True, True),
        world.admin: (True, True, True),
        world.outsider: (False, False, False),
        world.other_admin: (False, False, False),
    }
    for user, (sees_chat, sees_run, acts_on_run) in expect.items():
        access = selectors.access_for(user, fresh=True)
        chat_view, run_view = compose.views_of(message, access, flt)
        assert chat_view.visible is sees_chat, user
        assert run_view.visible is sees_run, user
        if sees_run:
            # Paused waits on a person: in Needs you only for those who may act.
            assert (run_view.section == "needs") is acts_on_run, user
            insert = run["html"]["panel_insert_act" if acts_on_run else "panel_insert"]
            assert run_view.panel == (run["html"]["panel_remove"], insert)
            assert run_view.listed


def test_a_filter_decides_what_the_list_takes(world: Any) -> None:
    message = _message(world)
    access = selectors.access_for(world.admin, fresh=True)
    chats = parse_filter({"kind": "chat"})
    chat_view, run_view = compose.views_of(message, access, chats)
    assert chat_view.listed
    assert not run_view.listed
    # No list at all (the panel alone, or a detail view): nothing is listed.
    assert not any(v.listed for v in compose.views_of(message, access, None))

"""DESIGN.md section 7, persona by persona, in lists and by id."""

from __future__ import annotations

import pytest

from sessions_app import errors, selectors
from sessions_app.states import Kind
from tests import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def sessions(world):
    return {
        "owner_flow": f.make_session(world.agent, world.owner, Kind.FLOW_RUN),
        "owner_task": f.make_session(world.agent, world.owner, Kind.BACKGROUND_TASK),
        "owner_chat": f.make_session(world.agent, world.owner, Kind.CHAT),
        "dev_chat": f.make_session(world.agent, world.developer, Kind.CHAT),
        "other_tenant_flow": f.make_session(world.other_agent, world.other_admin, Kind.FLOW_RUN),
    }


EXPECTED = {
    # persona: the sessions it must see (and nothing else)
    "owner": {"owner_flow", "owner_task", "owner_chat"},
    "developer": {"owner_flow", "owner_task", "dev_chat"},
    "maintainer": {"owner_flow", "owner_task"},
    "agent_owner": {"owner_flow", "owner_task", "owner_chat", "dev_chat"},
    "admin": {"owner_flow", "owner_task", "owner_chat", "dev_chat"},
    "outsider": set(),
    "other_admin": {"other_tenant_flow"},
}


@pytest.mark.parametrize("persona", sorted(EXPECTED))
def test_each_persona_sees_exactly_what_it_should_in_lists(world, sessions, persona) -> None:
    user = getattr(world, persona)
    seen = set(selectors.sessions_visible_to(user).values_list("pk", flat=True))
    assert seen == {sessions[name].pk for name in EXPECTED[persona]}


@pytest.mark.parametrize("persona", sorted(EXPECTED))
def test_each_persona_gets_404_by_id_for_what_it_may_not_see(world, sessions, persona) -> None:
    user = getattr(world, persona)
    for name, session in sessions.items():
        if name in EXPECTED[persona]:
            assert selectors.session_get_for_user(user, session.pk).pk == session.pk
            assert selectors.can_view(user, session)
        else:
            with pytest.raises(errors.NotFound):
                selectors.session_get_for_user(user, session.pk)
            assert not selectors.can_view(user, session)


ACTORS = {
    "owner": {"owner_flow", "owner_task", "owner_chat"},
    "developer": {"dev_chat"},  # a developer sees project flows but may not act on them
    "maintainer": {"owner_flow", "owner_task"},
    "agent_owner": {"owner_flow", "owner_task", "owner_chat", "dev_chat"},
    "admin": {"owner_flow", "owner_task", "owner_chat", "dev_chat"},
    "outsider": set(),
    "other_admin": {"other_tenant_flow"},
}


@pytest.mark.parametrize("persona", sorted(ACTORS))
def test_each_persona_may_act_exactly_where_design_says(world, sessions, persona) -> None:
    user = getattr(world, persona)
    allowed = {name for name, s in sessions.items() if selectors.can_act(user, s)}
    assert allowed == ACTORS[persona]


def test_anonymous_sees_nothing(world, sessions) -> None:
    from django.contrib.auth.models import AnonymousUser

    assert not selectors.sessions_visible_to(AnonymousUser()).exists()
    with pytest.raises(errors.NotFound):
        selectors.session_get_for_user(AnonymousUser(), sessions["owner_flow"].pk)


def test_a_malformed_id_is_not_found_rather_than_an_error(world) -> None:
    with pytest.raises(errors.NotFound):
        selectors.session_get_for_user(world.admin, "not-a-uuid")


def test_lists_filter_and_page_with_a_keyset_cursor(world) -> None:
    made = [f.make_session(world.agent, world.owner, Kind.FLOW_RUN) for _ in range(7)]
    flt = selectors.SessionFilter(kind=Kind.FLOW_RUN)
    first = selectors.session_page(world.owner, flt, limit=3)
    second = selectors.session_page(world.owner, flt, cursor=first.next_cursor, limit=3)
    third = selectors.session_page(world.owner, flt, cursor=second.next_cursor, limit=3)
    got = [s.pk for s in first.items + second.items + third.items]
    assert sorted(got) == sorted(s.pk for s in made)
    assert len(set(got)) == 7
    assert third.next_cursor is None


def test_list_puts_live_sessions_first_then_most_recent(world) -> None:
    done = f.make_session(world.agent, world.owner, Kind.FLOW_RUN, status="completed")
    live = f.make_session(world.agent, world.owner, Kind.FLOW_RUN, status="running")
    newest_done = f.make_session(world.agent, world.owner, Kind.FLOW_RUN, status="failed")
    order = [s.pk for s in selectors.session_page(world.owner, selectors.SessionFilter()).items]
    assert order == [live.pk, newest_done.pk, done.pk]


def test_search_by_title_and_by_hash_id(world) -> None:
    a = f.make_session(world.agent, world.owner, Kind.FLOW_RUN, title="Release checklist")
    b = f.make_session(world.agent, world.owner, Kind.FLOW_RUN, title="Nightly bump")
    by_title = selectors.filtered_sessions(world.owner, selectors.SessionFilter(q="release"))
    assert list(by_title) == [a]
    by_id = selectors.filtered_sessions(
        world.owner, selectors.SessionFilter(q=f"#{b.short_id[:5]}")
    )
    assert list(by_id) == [b]


def test_a_bad_cursor_is_a_clear_error(world) -> None:
    with pytest.raises(errors.InvalidCursor, match="cursor is not valid"):
        selectors.session_page(world.owner, selectors.SessionFilter(), cursor="garbage!!")


def test_active_now_and_recent_follow_the_design_rule(world) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from sessions_app.models import AgentSession

    running = f.make_session(world.agent, world.owner, Kind.FLOW_RUN, status="running")
    fresh_chat = f.make_session(world.agent, world.owner, Kind.CHAT)
    stale_chat = f.make_session(world.agent, world.owner, Kind.CHAT)
    done = f.make_session(world.agent, world.owner, Kind.BACKGROUND_TASK, status="completed")
    old = f.make_session(world.agent, world.owner, Kind.BACKGROUND_TASK, status="completed")
    now = timezone.now()
    AgentSession.objects.filter(pk=stale_chat.pk).update(
        last_activity_at=now - timedelta(minutes=31)
    )
    AgentSession.objects.filter(pk=old.pk).update(last_activity_at=now - timedelta(hours=25))
    active = set(selectors.active_now(world.owner, now=now).values_list("pk", flat=True))
    recent = set(selectors.recent(world.owner, now=now).values_list("pk", flat=True))
    assert active == {running.pk, fresh_chat.pk}
    assert recent == {stale_chat.pk, done.pk}

from __future__ import annotations

import pytest

from sessions_app import errors, services
from sessions_app.models import AgentSession, RuntimeCommand, SessionEvent
from sessions_app.states import Kind
from tests import factories as f

pytestmark = pytest.mark.django_db


def test_create_starts_in_the_kinds_initial_status_with_a_generated_title(world) -> None:
    flow = f.make_session(world.agent, world.owner, Kind.FLOW_RUN)
    task = f.make_session(world.agent, world.owner, Kind.BACKGROUND_TASK)
    chat = f.make_session(world.agent, world.owner, Kind.CHAT)
    assert (flow.status, task.status, chat.status) == ("pending", "queued", "running")
    assert flow.title.startswith("builder · flow run ")
    assert flow.short_id == flow.pk.hex[:8]
    assert flow.model == world.agent.default_model
    assert flow.expires_at is not None
    assert flow.events.get().payload == {"from": None, "to": "pending", "reason": "created"}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"temperature": 2.1}, "temperature"),
        ({"temperature": -0.1}, "temperature"),
        ({"max_tokens": 99}, "max_tokens"),
        ({"max_tokens": 8001}, "max_tokens"),
        ({"timeout_seconds": 59}, "timeout_seconds"),
        ({"timeout_seconds": 1801}, "timeout_seconds"),
        ({"kind": "meeting"}, "kind"),
        ({"model": "other-model"}, "model"),
        ({"metadata": {"colour": "red"}}, "metadata"),
        ({"metadata": {"origin": "fax"}}, "origin"),
    ],
)
def test_create_rejects_bad_input_naming_the_field(world, kwargs, field) -> None:
    args = {
        "agent": world.agent,
        "owner": world.owner,
        "kind": Kind.FLOW_RUN,
        "actor": "t",
        **kwargs,
    }
    with pytest.raises(errors.InvalidInput) as exc:
        services.session_create(**args)
    assert exc.value.field == field
    assert not AgentSession.objects.exists()


def test_timeout_must_fit_the_policys_max_duration(world) -> None:
    world.agent.idle_timeout_seconds = 60
    world.agent.max_duration_seconds = 600
    world.agent.save()
    with pytest.raises(errors.InvalidInput, match="max duration of 600"):
        f.make_session(world.agent, world.owner, timeout_seconds=900)


def test_model_override_needs_policy_and_caller_permission(world) -> None:
    world.agent.allow_model_override = True
    world.agent.allowed_models = ["gpt-4o", "claude-sonnet"]
    world.agent.save()
    with pytest.raises(errors.InvalidInput, match="may not override"):
        f.make_session(world.agent, world.owner, model="claude-sonnet")
    with pytest.raises(errors.InvalidInput, match="must be one of"):
        f.make_session(world.agent, world.owner, model="llama", requested_by=world.agent.owner)
    s = f.make_session(
        world.agent, world.owner, model="claude-sonnet", requested_by=world.agent.owner
    )
    assert s.model == "claude-sonnet"


def test_owner_must_be_allowed_to_use_the_agent(world) -> None:
    with pytest.raises(errors.InvalidInput, match="may not use the agent"):
        f.make_session(world.agent, world.outsider)


def test_cross_tenant_initiative_is_refused(world) -> None:
    foreign = f.make_initiative(world.other_tenant)
    with pytest.raises(errors.InvalidInput, match="another workspace"):
        f.make_session(world.agent, world.owner, initiative=foreign)


def test_concurrency_cap_counts_live_sessions_and_names_the_limit(world) -> None:
    world.agent.max_concurrent_sessions_per_user = 2
    world.agent.save()
    f.make_session(world.agent, world.owner)
    second = f.make_session(world.agent, world.owner)
    with pytest.raises(errors.ConcurrencyLimit, match="at most 2 concurrent sessions") as exc:
        f.make_session(world.agent, world.owner)
    assert exc.value.current == 2
    # Another user is not affected; a finished session frees a slot.
    f.make_session(world.agent, world.developer)
    f.walk_to(second, "completed")
    f.make_session(world.agent, world.owner)


def test_resume_from_stopped_respects_the_cap(world) -> None:
    world.agent.max_concurrent_sessions_per_user = 1
    world.agent.save()
    stopped = f.make_session(world.agent, world.owner, status="stopped")
    f.make_session(world.agent, world.owner)
    with pytest.raises(errors.ConcurrencyLimit, match="already has 1 open"):
        services.session_resume(session=stopped, user=world.owner)
    stopped.refresh_from_db()
    assert stopped.status == "stopped"


def test_events_record_assigns_seqs_counts_and_is_idempotent(world) -> None:
    s = f.make_session(world.agent, world.owner, Kind.FLOW_RUN)
    batch = [
        services.EventIn("e1", "status_change", {"to": "running"}),
        services.EventIn(
            "e2", "step", {"state": "started", "name": "Plan", "index": 1, "total": 4}
        ),
        services.EventIn("e3", "message", {"role": "agent", "text": "hi"}),
    ]
    first = services.events_record(session=s, events=batch, actor="rt")
    again = services.events_record(session=s, events=batch, actor="rt")
    assert first.results == again.results
    assert [r["seq"] for r in first.results] == [2, 3, 4]
    assert (first.created, again.created, again.duplicates) == (3, 0, 3)
    s.refresh_from_db()
    assert (s.status, s.current_step, s.total_steps, s.message_count) == ("running", 1, 4, 1)
    assert s.progress_text == "Step 1 of 4"
    assert list(SessionEvent.objects.filter(session=s).values_list("seq", flat=True)) == [
        1,
        2,
        3,
        4,
    ]


def test_events_record_redacts_before_storing(world) -> None:
    s = f.make_session(world.agent, world.owner, Kind.CHAT)
    secret = "ghp_" + "a1B2" * 9
    services.events_record(
        session=s,
        events=[services.EventIn("x", "tool_result", {"output": f"GITHUB_TOKEN={secret}"})],
        actor="rt",
    )
    event = SessionEvent.objects.get(session=s, event_id="x")
    assert secret not in str(event.payload)
    assert "GITHUB_TOKEN=[REDACTED:" in event.payload["output"]
    assert sum(event.redactions.values()) == 1


def test_operator_actions_write_an_audit_event_and_queue_a_command(world) -> None:
    s = f.make_session(world.agent, world.owner, Kind.FLOW_RUN, status="running")
    services.session_pause(session=s, user=world.maintainer)
    assert s.status == "paused"
    action = SessionEvent.objects.filter(session=s, type="action").get()
    assert action.payload == {"action": "pause", "by": "maintainer"}
    assert list(RuntimeCommand.objects.filter(session=s).values_list("kind", flat=True)) == [
        "pause"
    ]


def test_a_developer_may_see_but_not_act(world) -> None:
    s = f.make_session(world.agent, world.owner, Kind.FLOW_RUN, status="running")
    with pytest.raises(errors.NotAllowed):
        services.session_cancel(session=s, user=world.developer)
    from sessions_app.errors import NotFound

    with pytest.raises(NotFound):
        services.session_cancel(session=s, user=world.other_admin)
    s.refresh_from_db()
    assert s.status == "running"


def test_repeating_an_action_is_idempotent(world) -> None:
    s = f.make_session(world.agent, world.owner, Kind.CHAT)
    services.session_end(session=s, user=world.owner)
    services.session_end(session=s, user=world.owner)
    assert RuntimeCommand.objects.filter(session=s).count() == 1
    assert (
        SessionEvent.objects.filter(session=s, type="status_change").count() == 2
    )  # created + end


def test_transfer_hands_a_live_session_to_another_person(world) -> None:
    s = f.make_session(world.agent, world.owner, Kind.FLOW_RUN, status="running")
    successor = services.session_transfer(session=s, user=world.owner, to_user=world.developer)
    s.refresh_from_db()
    assert (s.status, s.stop_reason) == ("stopped", "transfer")
    assert successor.owner == world.developer and successor.transferred_from_id == s.pk


def test_checkpoint_reject_marks_a_problem_and_tells_the_runtime(world) -> None:
    s = f.make_session(world.agent, world.owner, Kind.FLOW_RUN, status="running")
    services.events_record(
        session=s,
        events=[
            services.EventIn("c", "checkpoint", {"state": "awaiting", "name": "Deploy"}),
            services.EventIn("w", "status_change", {"to": "waiting_input"}),
        ],
        actor="rt",
    )
    s.refresh_from_db()
    assert (s.status, s.status_group) == ("waiting_input", "attention")
    services.checkpoint_decide(session=s, user=world.owner, approve=False)
    assert (s.checkpoint_state, s.status_group) == ("rejected", "problem")
    assert RuntimeCommand.objects.get(session=s).kind == "reject"
    with pytest.raises(errors.Conflict, match="no checkpoint waiting"):
        services.checkpoint_decide(session=s, user=world.owner, approve=True)


def test_message_to_an_idle_chat_brings_it_back_to_running(world) -> None:
    s = f.make_session(world.agent, world.owner, Kind.CHAT, status="idle")
    command = services.message_send(session=s, user=world.owner, text="  still there? ")
    assert s.status == "running" and s.message_count == 1
    assert command.kind == "message" and command.payload == {"text": "still there?"}


def test_tokens_are_hashed_at_rest(world) -> None:
    token, raw = services.token_create(
        tenant=world.tenant, kind="runtime", name="rt", user=world.admin, agents=[world.agent]
    )
    assert raw.startswith("scc_") and raw not in token.token_hash
    assert token.token_hash == services.hash_token(raw)
    with pytest.raises(errors.InvalidInput, match="workspace"):
        services.token_create(
            tenant=world.tenant,
            kind="runtime",
            name="x",
            user=world.admin,
            agents=[world.other_agent],
        )

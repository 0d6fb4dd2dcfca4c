"""The beat schedule and its thin tasks, run by a real Celery worker on the Redis broker.

The worker consumes settings.CELERY_TASK_DEFAULT_QUEUE (env CELERY_QUEUE), so parallel test runs
with their own queue names never steal each other's tasks. Tests that run a worker use
transaction=True: the worker's connection only sees committed rows.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import task_postrun
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from config.celery import HOUSEKEEPING_INTERVAL, POLICY_SWEEP_INTERVAL
from config.celery import app as celery_app
from sessions_app import lifecycle, services, sweeps, tasks
from sessions_app.models import AgentSession, CommandKind, RuntimeCommand
from sessions_app.states import Kind, Status
from tests import factories as f

IDLE = 600
BASE_DIR = Path(__file__).resolve().parents[2]


# --- the schedule -------------------------------------------------------------------------------


def test_the_beat_schedule_runs_every_sweep_on_its_interval() -> None:
    schedule = celery_app.conf.beat_schedule
    assert {name: (e["task"], e["schedule"]) for name, e in schedule.items()} == {
        "policy-sweep": ("sessions_app.tasks.policy_sweep", 30.0),
        "archive-sweep": ("sessions_app.tasks.archive_sweep", 600.0),
        "retention-purge": ("sessions_app.tasks.retention_purge", 600.0),
        "idempotency-purge": ("sessions_app.tasks.idempotency_purge", 600.0),
        "bulk-resume-stalled": ("sessions_app.tasks.bulk_resume_stalled", 60.0),
    }
    for entry in schedule.values():
        assert entry["task"] in celery_app.tasks


@pytest.mark.parametrize(
    ("entry", "task", "budget", "interval"),
    [
        ("policy-sweep", tasks.policy_sweep, tasks.POLICY_SWEEP_BUDGET, POLICY_SWEEP_INTERVAL),
        ("archive-sweep", tasks.archive_sweep, tasks.HOUSEKEEPING_BUDGET, HOUSEKEEPING_INTERVAL),
        (
            "retention-purge",
            tasks.retention_purge,
            tasks.HOUSEKEEPING_BUDGET,
            HOUSEKEEPING_INTERVAL,
        ),
    ],
)
def test_ticks_never_pile_up(entry: str, task: Any, budget: float, interval: float) -> None:
    # budget < soft time limit < hard time limit < interval, and a tick not started before the
    # next one is due is dropped.
    assert budget < task.soft_time_limit < task.time_limit < interval
    assert celery_app.conf.beat_schedule[entry]["options"]["expires"] < interval


# --- a real worker --------------------------------------------------------------------------


class Finished:
    """Counts tasks the in-process worker finished (succeeded or failed)."""

    def __init__(self) -> None:
        self.states: list[str] = []
        self._cond = threading.Condition()

    def __call__(self, sender: Any = None, state: str | None = None, **kw: Any) -> None:
        with self._cond:
            self.states.append(state or "")
            self._cond.notify_all()

    def wait_for(self, n: int, timeout: float = 60) -> list[str]:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.states) >= n, timeout), self.states
            return list(self.states)


def _purge(queue: str) -> None:
    with celery_app.connection_for_write() as conn:
        channel: Any = conn.default_channel  # kombu's stubs type it as the abstract channel
        channel.queue_purge(queue)


@pytest.fixture
def worker() -> Iterator[Finished]:
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    assert celery_app.conf.task_default_queue == queue
    _purge(queue)
    finished = Finished()
    task_postrun.connect(finished, weak=False)
    try:
        with start_worker(celery_app, pool="solo", perform_ping_check=False, loglevel="WARNING"):
            yield finished
    finally:
        task_postrun.disconnect(finished)


def send_scheduled(entry: str, **kwargs: Any) -> None:
    """Send a task exactly as beat does for `entry` (name and options)."""
    e = celery_app.conf.beat_schedule[entry]
    celery_app.send_task(e["task"], kwargs=kwargs, **e["options"])


def due_chats(world: Any, n: int) -> list[AgentSession]:
    """n chats past their idle timeout, oldest first (the order a sweep takes them in)."""
    agent = f.make_agent(world.project, world.agent_owner, idle_timeout_seconds=IDLE)
    chats = [f.make_session(agent, world.owner, Kind.CHAT, timeout_seconds=1800) for _ in range(n)]
    oldest = timezone.now() - timedelta(seconds=IDLE + 60)
    for i, c in enumerate(chats):
        AgentSession.objects.filter(pk=c.pk).update(last_activity_at=oldest + timedelta(seconds=i))
    return chats


def idle_changes(session: AgentSession) -> int:
    return session.events.filter(type="status_change", payload__to="idle").count()


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_worker_runs_the_scheduled_sweeps_and_the_sessions_change(world, worker) -> None:
    (idle_chat,) = due_chats(world, 1)
    ended = f.make_session(world.agent, world.owner, Kind.CHAT)
    services.session_end(session=ended, user=world.owner)
    expired = f.make_session(world.agent, world.owner, Kind.FLOW_RUN)
    long_ago = timezone.now() - timedelta(days=31)
    AgentSession.objects.filter(pk=ended.pk).update(ended_at=long_ago)
    AgentSession.objects.filter(pk=expired.pk).update(expires_at=long_ago)

    send_scheduled("policy-sweep")
    send_scheduled("archive-sweep")
    send_scheduled("retention-purge")
    assert worker.wait_for(3) == ["SUCCESS"] * 3

    idle_chat.refresh_from_db()
    ended.refresh_from_db()
    assert idle_chat.status == Status.IDLE
    assert ended.archived_at is not None
    assert not AgentSession.objects.filter(pk=expired.pk).exists()


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_sweep_interrupted_mid_batch_loses_nothing_and_the_next_run_finishes(
    world, worker, monkeypatch
) -> None:
    chats = due_chats(world, 7)
    real_transition = lifecycle.transition
    calls = 0

    def out_of_time_on_the_fifth(*args: Any, **kwargs: Any) -> Any:
        # The worker hits its soft time limit in the middle of the second batch of three.
        nonlocal calls
        calls += 1
        if calls == 5:
            raise SoftTimeLimitExceeded()
        return real_transition(*args, **kwargs)

    monkeypatch.setattr(lifecycle, "transition", out_of_time_on_the_fifth)
    send_scheduled("policy-sweep", batch_size=3)
    assert worker.wait_for(1) == ["FAILURE"]
    assert [idle_changes(c) for c in chats] == [1, 1, 1, 1, 0, 0, 0]

    monkeypatch.setattr(lifecycle, "transition", real_transition)
    send_scheduled("policy-sweep", batch_size=3)
    assert worker.wait_for(2)[1] == "SUCCESS"
    assert [idle_changes(c) for c in chats] == [1] * 7
    assert {c.status for c in AgentSession.objects.filter(pk__in=[c.pk for c in chats])} == {
        Status.IDLE
    }


@pytest.mark.postgres
@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_batch_loses_nothing_and_the_next_run_finishes(world, tmp_path) -> None:
    agent = f.make_agent(world.project, world.agent_owner)
    runs = [
        f.make_session(
            agent, world.owner, Kind.FLOW_RUN, status=Status.RUNNING, timeout_seconds=1800
        )
        for _ in range(40)
    ]
    pks = [r.pk for r in runs]
    AgentSession.objects.filter(pk__in=pks).update(
        started_at=timezone.now() - timedelta(seconds=1801)
    )
    stopping = AgentSession.objects.filter(pk__in=pks, status=Status.STOPPING)

    queue = f"{settings.CELERY_TASK_DEFAULT_QUEUE}-kill"
    app_name = f"scc-kill-{os.getpid()}"
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_QUEUE": queue,
        "PGAPPNAME": app_name,  # to find the killed worker's server process below
    }
    _purge(queue)
    log = (tmp_path / "worker.log").open("w")
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo"),
            *("-Q", queue, "--without-heartbeat", "--without-gossip", "--without-mingle"),
            *("-l", "WARNING"),
        ],
        cwd=BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        celery_app.send_task(
            "sessions_app.tasks.policy_sweep", kwargs={"batch_size": 10}, queue=queue, expires=120
        )
        deadline = time.monotonic() + 60
        while stopping.count() < 5:
            assert proc.poll() is None, (tmp_path / "worker.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()
            time.sleep(0.005)
        with transaction.atomic(), connection.cursor() as cur:
            # Freeze the worker in the middle of a session: its next event insert waits on us.
            cur.execute("LOCK TABLE sessions_app_sessionevent IN SHARE MODE")
            time.sleep(0.5)
            done_at_kill = stopping.count()
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
        _purge(queue)

    _wait_for_backend_to_go(app_name)
    assert 5 <= done_at_kill < len(runs)
    assert stopping.count() == done_at_kill  # the session it was on rolled back

    report = sweeps.policy_sweep(batch_size=10)
    assert report.stopped_max_duration == len(runs) - done_at_kill
    assert stopping.count() == len(runs)
    for run in runs:
        tos = [e.payload["to"] for e in run.events.filter(type="status_change").order_by("seq")]
        assert tos == ["pending", "running", "stopping"]
    stops = RuntimeCommand.objects.filter(session_id__in=pks, kind=CommandKind.STOP)
    assert stops.count() == len(runs)


def _wait_for_backend_to_go(app_name: str) -> None:
    """The killed worker's PostgreSQL backend rolls back when it notices its client is gone;
    until then it holds the row it was on. Give it a moment, then end it as the DBA would."""
    with connection.cursor() as cur:
        for _ in range(100):
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [app_name]
            )
            if cur.fetchone()[0] == 0:
                return
            time.sleep(0.05)
        cur.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            [app_name],
        )

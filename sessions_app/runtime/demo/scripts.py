"""The scripts players run: a flow's steps, a background task's turns, a chat's exchanges, a
reply to a message for a session no player drives, and the first moves of sessions the server
asked the demo to start (new from a page, clones, transfers)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sessions_app.runtime.demo import scenarios as sc
from sessions_app.runtime.demo.player import Player, Script


def flow_script(steps: list[str], *, start: int = 1) -> Callable[[Player], Script]:
    def script(p: Player) -> Script:
        rng, cfg = p.demo.rng, p.demo.config
        total = len(steps)
        fail_at = rng.randint(start, total) if rng.random() < cfg.failure_chance else None
        checkpoint_at = (
            rng.randint(max(start, 2), total)
            if total >= max(start, 2) and rng.random() < cfg.checkpoint_chance
            else None
        )
        if start == 1:
            yield from p.wait(rng.uniform(1, 3))  # pending for a moment
            p.batch.status("running")
        p.batch.agent_status("working")
        p.flush()
        for index in range(start, total + 1):
            name = steps[index - 1]
            if index == checkpoint_at:
                yield from checkpoint(p, rng.choice(sc.CHECKPOINTS))
            p.batch.step("started", name, index=index, total=total)
            p.batch.thinking(rng.choice(sc.THOUGHTS))
            p.flush()
            yield from p.wait(rng.uniform(2, 5))
            p.tool()
            if rng.random() < 0.3:
                p.edit()
            p.flush()
            yield from p.wait(rng.uniform(1, 4))
            if index == fail_at:
                p.fail(*rng.choice(sc.FAILURES))
            p.batch.step("completed", name, index=index, total=total)
            p.flush()
        p.batch.artifact(f"{p.title[:60] or 'run'} report.md", mime_type="text/markdown")
        p.batch.status("completed")
        p.batch.agent_status("idle")
        p.flush()

    return script


def checkpoint(p: Player, name: str) -> Script:
    p.decision = None
    p.batch.status("waiting_input", reason="checkpoint")
    p.batch.checkpoint("awaiting", name)
    p.batch.agent_status("waiting_input")
    p.flush()
    yield from p.wait(p.demo.config.checkpoint_patience, until=lambda: p.decision is not None)
    if p.decision == "rejected":
        p.fail("checkpoint_rejected", f"The checkpoint {name!r} was rejected.")
    if p.decision is None:
        # Nobody answered: an unattended demo should not pile up waiting runs.
        p.batch.checkpoint("approved", name, note="auto-approved by the demo runtime")
        p.batch.status("running", reason="checkpoint auto-approved")
    # An operator's approval already moved the session back to running on the server.
    p.batch.agent_status("working")
    p.flush()


def task_script(title: str, *, resumed: bool = False) -> Callable[[Player], Script]:
    def script(p: Player) -> Script:
        rng, cfg = p.demo.rng, p.demo.config
        if not resumed:
            yield from p.wait(rng.uniform(1, 3))
            p.batch.status("provisioning", reason="allocating a sandbox")
            p.flush()
            yield from p.wait(rng.uniform(2, 5))
            p.batch.status("running")
            p.batch.message("agent", f"Starting: {title}")
        p.batch.agent_status("working")
        p.flush()
        turns = rng.randint(3, 8) if resumed else rng.randint(4, 12)
        fail_at = rng.randint(2, turns) if rng.random() < cfg.failure_chance else None
        for turn in range(1, turns + 1):
            yield from p.wait(rng.uniform(3, 8))
            p.batch.thinking(rng.choice(sc.THOUGHTS))
            p.tool()
            if rng.random() < 0.4:
                p.edit()
            p.batch.message("agent", rng.choice(sc.TASK_LINES))
            p.flush()
            if turn == fail_at:
                p.fail(*rng.choice(sc.FAILURES))
        p.batch.message("agent", "All done; the summary is attached.")
        p.batch.artifact("summary.md", mime_type="text/markdown")
        p.batch.status("completed")
        p.batch.agent_status("idle")
        p.flush()

    return script


def chat_script(chat: sc.Chat) -> Callable[[Player], Script]:
    def script(p: Player) -> Script:
        rng, cfg = p.demo.rng, p.demo.config
        p.batch.agent_status("idle")
        p.flush()
        spawned = False
        for user_text, agent_text in chat.exchanges:
            yield from p.wait(rng.uniform(1, 3))
            p.batch.message("user", user_text)
            p.batch.agent_status("working")
            p.flush()
            yield from p.wait(rng.uniform(1, 3))
            p.batch.thinking(rng.choice(sc.THOUGHTS))
            if rng.random() < 0.6:
                p.tool()
            if rng.random() < 0.3:
                p.edit()
            p.batch.message("agent", agent_text)
            p.bill()
            if chat.spawns and not spawned and rng.random() < cfg.spawn_task_chance:
                spawned = True
                p.batch.message("agent", f"I started a background task: {chat.spawns}.")
                p.demo.start_session("background_task", title=chat.spawns, parent=p.id)
            p.batch.agent_status("idle")
            p.flush()
            yield from p.wait(rng.uniform(4, 10))
        # The chat stays open (the idle policy closes it); later messages get replies.

    return script


def reply_script(text: str) -> Callable[[Player], Script]:
    def script(p: Player) -> Script:
        yield from p.wait(p.demo.rng.uniform(0.5, 2))
        p.batch.agent_status("working")
        p.reply(text)
        p.batch.agent_status("idle")
        p.flush()

    return script


def opened_chat_script(text: str) -> Callable[[Player], Script]:
    """A chat a person opened from the page: answer its first message, if any, then wait for
    the next (later messages arrive as commands)."""

    def script(p: Player) -> Script:
        p.batch.agent_status("idle")
        p.flush()
        if text:
            yield from reply_script(text)(p)

    return script


def transferred_script(transfer: dict[str, Any], title: str) -> Callable[[Player], Script]:
    """Continue a transferred session where its source stopped: the first thing posted names
    the source; a chat then waits for the user's next turn, a run goes on at once from the
    step (or turn) the source was on."""

    def script(p: Player) -> Script:
        source = str(transfer.get("from_session", ""))
        progress = transfer.get("progress") or {}
        p.batch.message(
            "system",
            f"Continuing session {source} (transferred from "
            f"{(transfer.get('from_agent') or {}).get('name', 'another agent')}). "
            f"{str(transfer.get('summary', ''))[:500]}",
        )
        if p.kind == "chat":
            p.batch.agent_status("idle")
            p.flush()
            return
        p.batch.status("running", reason="continuing a transferred session")
        p.flush()
        if p.kind == "flow_run":
            current = int(progress.get("current_step") or 0)
            total = max(int(progress.get("total_steps") or 0), current, 3)
            steps = [f"Step {i}" for i in range(1, total + 1)]
            yield from flow_script(steps, start=max(1, current))(p)
        else:
            yield from task_script(title, resumed=True)(p)

    return script

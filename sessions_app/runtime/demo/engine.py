"""The demo runtime: plays flows, background tasks and chats through the public API.

One thread runs every session: each session is a generator (a "player") that yields how long
it wants to wait, and the loop below resumes whichever is due. Commands from operators arrive
on the command channel (a background thread in production, polled in tests), are queued to the
session's player and wake it at once; the player obeys at its next step and acknowledges.

Nothing here imports Django: the demo uses the same runtime client a real runtime would.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import Any

from sessions_app.runtime.client import (
    ApiError,
    Backoff,
    Conflict,
    EventBatch,
    Forbidden,
    RuntimeClient,
    Unauthorized,
    Unavailable,
)
from sessions_app.runtime.demo import scenarios as sc

logger = logging.getLogger("demo_runtime")

Script = Generator[float, None, None]
KINDS = ("flow_run", "background_task", "chat")
TERMINAL = {"completed", "failed", "cancelled", "ended"}


class Finished(Exception):
    """Unwinds a player's script: the session is done (or no longer ours to drive)."""


@dataclass(frozen=True)
class Target:
    """An agent the demo may start sessions for, and the users it may start them for."""

    agent_id: int
    agent_name: str
    owners: tuple[str, ...]


@dataclass
class DemoConfig:
    rate: float = 4.0  # new sessions per minute
    mix: dict[str, int] = field(
        default_factory=lambda: {"flow_run": 2, "background_task": 1, "chat": 2}
    )
    speed: float = 1.0  # >1 plays each session faster
    checkpoint_chance: float = 0.35
    failure_chance: float = 0.15
    secret_chance: float = 0.2
    spawn_task_chance: float = 0.5
    checkpoint_patience: float = 180.0  # seconds before the demo approves its own checkpoint
    max_live: int = 25
    poll_every: float = 1.0  # poll mode only


def parse_mix(text: str) -> dict[str, int]:
    """'flow=2,task=1,chat=2' -> {'flow_run': 2, 'background_task': 1, 'chat': 2}."""
    aliases = {"flow": "flow_run", "task": "background_task", "chat": "chat"}
    aliases.update({k: k for k in KINDS})
    mix: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, weight = part.partition("=")
        if not sep or name.strip() not in aliases:
            raise ValueError(f"bad mix entry {part!r}; expected e.g. flow=2,task=1,chat=2")
        try:
            value = int(weight)
        except ValueError:
            raise ValueError(f"bad weight in {part!r}; expected a whole number") from None
        if value < 0:
            raise ValueError(f"bad weight in {part!r}; must not be negative")
        mix[aliases[name.strip()]] = value
    if not any(mix.values()):
        raise ValueError("the mix must give at least one kind a positive weight")
    return mix


class Player:
    """One session being played."""

    def __init__(self, demo: Demo, session: dict[str, Any], script: Callable[[Player], Script]):
        self.demo = demo
        self.id: str = str(session["id"])
        self.kind: str = session["kind"]
        self.title: str = session.get("title", "")
        self.batch: EventBatch = demo.client.batch(self.id)
        self.inbox: deque[dict[str, Any]] = deque()
        self.paused = session.get("status") == "paused"
        self.decision: str | None = None
        self.wake_at = demo.clock()
        self.script = script(self)

    # -- time and commands --

    def wait(self, seconds: float, *, until: Callable[[], bool] | None = None) -> Script:
        """Let `seconds` of demo time pass (or until `until()` holds), obeying commands as they
        come; a pause holds here until resumed."""
        end = self.demo.clock() + seconds / self.demo.config.speed
        while True:
            self.obey()
            if self.paused:
                yield 3600.0  # a resume (or any command) wakes us early
                continue
            remaining = end - self.demo.clock()
            if remaining <= 0 or (until is not None and until()):
                return
            yield remaining

    def obey(self) -> None:
        while self.inbox:
            command = self.inbox.popleft()
            kind = command["kind"]
            if kind == "pause":
                self.batch.agent_status("idle")
                self.flush()
                self.paused = True
                self.ack(command, "paused")
            elif kind == "resume":
                self.paused = False
                self.batch.agent_status("working")
                self.flush()
                self.ack(command, "resumed")
            elif kind == "stop":
                self.batch.status("stopped", reason="stopped by an operator")
                self.batch.agent_status("idle")
                self.flush()
                self.ack(command, "stopped")
                raise Finished
            elif kind in ("cancel", "end", "transfer"):
                self.batch.discard()
                self.ack(command, f"{kind} done")
                raise Finished
            elif kind == "message":
                self.reply(str(command.get("payload", {}).get("text", "")))
                self.ack(command, "replied")
            elif kind in ("approve", "reject"):
                self.decision = "approved" if kind == "approve" else "rejected"
                self.ack(command, f"checkpoint {self.decision}")
            else:
                self.ack(command, f"unknown command {kind}", status="rejected")

    def ack(self, command: dict[str, Any], result: str, *, status: str = "applied") -> None:
        self.demo.ack(command, result, status=status)

    # -- talking --

    def flush(self) -> None:
        """Post what the batch holds. A 409 means an operator (or a sweep) changed the session
        under us: look at it again and follow."""
        try:
            self.batch.flush()
        except Conflict as exc:
            logger.info("%s: %s; re-reading the session", self.short, exc.message)
            self.batch.discard()
            self.resync()
        except ApiError as exc:
            logger.error("%s: the server refused a batch: %s", self.short, exc)
            self.batch.discard()

    def resync(self) -> None:
        try:
            session = self.demo.client.get_session(self.id)
        except ApiError:
            raise Finished from None
        status = session["status"]
        if status in TERMINAL or status == "stopped":
            raise Finished
        if status == "stopping":
            self.batch.status("stopped", reason="stop confirmed")
            self.flush()
            raise Finished
        self.paused = status == "paused"

    def reply(self, text: str) -> None:
        rng = self.demo.rng
        self.batch.thinking(rng.choice(sc.THOUGHTS))
        self.batch.message("agent", rng.choice(sc.REPLIES).format(text=text[:120]))
        self.flush()

    def tool(self) -> None:
        rng = self.demo.rng
        name, arguments, output = sc.tool_activity(
            rng, with_secret=rng.random() < self.demo.config.secret_chance
        )
        call_id = self.batch.tool_call(name, arguments)
        self.batch.tool_result(call_id, output, name=name)

    def edit(self) -> None:
        path, before, after = self.demo.rng.choice(sc.FILES)
        self.batch.file_edit(path, before, after)

    def fail(self, code: str, message: str) -> None:
        self.batch.error(message, code=code)
        self.batch.status("failed", error={"code": code, "message": message})
        self.batch.agent_status("idle")
        self.flush()
        raise Finished

    @property
    def short(self) -> str:
        return f"{self.kind} {self.id[:8]}"


# --- scripts -------------------------------------------------------------------------------------


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


# --- the loop -------------------------------------------------------------------------------------


class Demo:
    def __init__(
        self,
        client: RuntimeClient,
        targets: Iterable[Target],
        config: DemoConfig | None = None,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        commands: str = "thread",
        transport: str = "auto",
    ) -> None:
        self.client = client
        self.targets = [t for t in targets if t.owners]
        if not self.targets:
            raise ValueError("no agent with a user to run sessions for")
        self.config = config or DemoConfig()
        self.rng = rng or random.Random()
        self.clock = clock
        self.sleep = sleep
        self.command_mode = commands  # "thread": the command channel; "poll": from the loop
        self.transport = transport
        self.players: dict[str, Player] = {}
        self.inbox: queue.Queue[dict[str, Any]] = queue.Queue()
        self.started: dict[str, int] = dict.fromkeys(KINDS, 0)
        self.refused = 0
        self._next_poll = 0.0
        self._next_start = clock()

    # -- starting sessions --

    def start_session(
        self, kind: str, *, title: str = "", parent: str | None = None, target: Target | None = None
    ) -> Player | None:
        if len(self.players) >= self.config.max_live:
            return None
        rng = self.rng
        target = target or rng.choice(self.targets)
        owner = rng.choice(target.owners)
        if kind == "flow_run":
            flow_name, steps = rng.choice(sc.FLOWS)
            title = title or flow_name
            script = flow_script(steps)
        elif kind == "background_task":
            title = title or rng.choice(sc.TASKS)
            script = task_script(title)
        else:
            chat = rng.choice(sc.CHATS)
            title = title or chat.title
            script = chat_script(chat)
        try:
            session = self.client.create_session(
                kind=kind,
                agent=target.agent_id,
                owner=owner,
                title=title,
                parent=parent,
                metadata={
                    "runtime": "demo-runtime",
                    "sandbox": f"sbx-{rng.randrange(16**6):06x}",
                    "profile": rng.choice(["default", "large"]),
                    "repo": rng.choice(sc.REPOS),
                    "branch": rng.choice(sc.BRANCHES),
                    "origin": rng.choice(sc.ORIGINS) if parent is None else "api",
                },
            )
        except Conflict as exc:
            # Usually the owner's concurrency cap: a normal answer, not a reason to stop.
            self.refused += 1
            logger.info(
                "not starting a %s for %s on %s: %s", kind, owner, target.agent_name, exc.message
            )
            return None
        except ApiError as exc:
            self.refused += 1
            logger.warning("could not start a %s on %s: %s", kind, target.agent_name, exc)
            return None
        self.started[kind] += 1
        logger.info("started %s %s %r for %s", kind, str(session["id"])[:8], title, owner)
        return self._add(session, script)

    def start_random(self) -> Player | None:
        kinds = [k for k in KINDS if self.config.mix.get(k, 0) > 0]
        kind = self.rng.choices(kinds, weights=[self.config.mix[k] for k in kinds])[0]
        return self.start_session(kind)

    def _add(self, session: dict[str, Any], script: Callable[[Player], Script]) -> Player:
        player = Player(self, session, script)
        self.players[player.id] = player
        return player

    # -- commands --

    def ack(self, command: dict[str, Any], result: str, *, status: str = "applied") -> None:
        try:
            self.client.ack(command["id"], status, result)
        except ApiError as exc:
            logger.warning("could not acknowledge command %s: %s", command["id"], exc)

    def dispatch(self, command: dict[str, Any]) -> None:
        """Hand a command to its session's player, or handle it for a session no player drives
        (finished scripts, or sessions from before a restart)."""
        session_id = str(command["session_id"])
        logger.info("command %s for %s", command["kind"], session_id[:8])
        player = self.players.get(session_id)
        if player is not None:
            player.inbox.append(command)
            player.wake_at = self.clock()
            return
        kind = command["kind"]
        try:
            if kind == "message":
                session = self.client.get_session(session_id)
                self._add(session, reply_script(str(command.get("payload", {}).get("text", ""))))
                self.ack(command, "replying")
            elif kind in ("resume", "approve"):
                self._continue(self.client.get_session(session_id))
                self.ack(command, "continuing")
            elif kind == "stop":
                batch = self.client.batch(session_id)
                batch.status("stopped", reason="stop confirmed")
                batch.flush()
                self.ack(command, "stopped")
            elif kind == "reject":
                batch = self.client.batch(session_id)
                message = "The checkpoint was rejected."
                batch.error(message, code="checkpoint_rejected")
                batch.status("failed", error={"code": "checkpoint_rejected", "message": message})
                batch.flush()
                self.ack(command, "failed the run")
            else:
                self.ack(command, "nothing running for this session")
        except ApiError as exc:
            logger.info("command %s for %s: %s", kind, session_id[:8], exc)
            self.ack(command, str(exc)[:500], status="rejected")

    def _continue(self, session: dict[str, Any]) -> None:
        if session["status"] != "running":
            return
        if session["kind"] == "flow_run":
            total = max(
                session["progress"]["total_steps"], session["progress"]["current_step"] + 1, 3
            )
            steps = [f"Step {i}" for i in range(1, total + 1)]
            start = max(1, session["progress"]["current_step"])
            self._add(session, flow_script(steps, start=start))
        elif session["kind"] == "background_task":
            self._add(session, task_script(session["title"], resumed=True))

    def _receive_commands(self, stop: threading.Event) -> None:
        try:
            for command in self.client.commands(stop=stop, transport=self.transport):
                self.inbox.put(command)
        except (Unauthorized, Forbidden) as exc:
            logger.error("the command channel refused the token (%s); stopping", exc)
            stop.set()
        except Exception:
            logger.exception("the command channel failed; stopping")
            stop.set()

    def _drain(self) -> None:
        if self.command_mode == "poll" and self.clock() >= self._next_poll:
            self._next_poll = self.clock() + self.config.poll_every
            for command in self.client.poll_commands(wait=0):
                self.inbox.put(command)
        while True:
            try:
                command = self.inbox.get_nowait()
            except queue.Empty:
                return
            self.dispatch(command)

    # -- running --

    def step(self, player: Player) -> None:
        try:
            delay = next(player.script)
        except (StopIteration, Finished):
            self.players.pop(player.id, None)
            return
        except Unavailable as exc:
            logger.warning(
                "%s: server unavailable (%s); giving up on this session", player.short, exc
            )
            self.players.pop(player.id, None)
            return
        player.wake_at = self.clock() + max(0.0, delay)

    def tick(self) -> float:
        """One round: take commands, maybe start a session, step the players that are due.
        Returns how long the loop may sleep before the next round."""
        self._drain()
        now = self.clock()
        if now >= self._next_start:
            self.start_random()
            self._next_start = now + self.rng.expovariate(self.config.rate / 60.0)
        for player in sorted(self.players.values(), key=lambda p: p.wake_at):
            if player.wake_at <= self.clock() and player.id in self.players:
                self.step(player)
        wake = min([p.wake_at for p in self.players.values()] + [self._next_start])
        # At least every quarter second, to pick up commands.
        return min(max(0.0, wake - self.clock()), 0.25)

    def run(self, *, duration: float | None = None, stop: threading.Event | None = None) -> None:
        stop = stop or threading.Event()
        end = self.clock() + duration if duration else None
        if self.command_mode == "thread":
            threading.Thread(
                target=self._receive_commands, args=(stop,), name="commands", daemon=True
            ).start()
        try:
            while not stop.is_set() and (end is None or self.clock() < end):
                pause = self.tick()
                if end is not None:
                    pause = min(pause, max(0.0, end - self.clock()))
                self.sleep(pause)
        finally:
            stop.set()
            self.shutdown()

    def shutdown(self) -> None:
        """Stop what is still running, as a runtime going away should (chats stay open)."""
        # Going away should not hang on a server that is down: try briefly, then give up.
        self.client.backoff = Backoff(attempts=2)
        for player in list(self.players.values()):
            player.script.close()
            if player.kind == "chat":
                continue
            try:
                batch = self.client.batch(player.id)
                batch.status("stopping", reason="demo runtime shutting down")
                batch.status("stopped", reason="demo runtime shut down")
                batch.flush()
            except (ApiError, Unavailable) as exc:
                logger.info("%s: could not stop on shutdown: %s", player.short, exc)
        self.players.clear()

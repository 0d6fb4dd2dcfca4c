"""The demo runtime: plays flows, background tasks and chats through the public API.

One thread runs every session: each session is a generator (a "player") that yields how long
it wants to wait, and the loop below resumes whichever is due. Commands from operators arrive
on the command channel (a background thread in production, polled in tests), are queued to the
session's player and wake it at once; the player obeys at its next step and acknowledges.

This module is the loop (Demo); the players are in player.py, the scripts they run in
scripts.py, the knobs in config.py.

Nothing here imports Django: the demo uses the same runtime client a real runtime would.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from sessions_app.runtime.client import (
    ApiError,
    Backoff,
    Conflict,
    Forbidden,
    RuntimeClient,
    Unauthorized,
    Unavailable,
)
from sessions_app.runtime.demo import scenarios as sc
from sessions_app.runtime.demo.config import KINDS, DemoConfig, Target, parse_mix
from sessions_app.runtime.demo.player import Finished, Player, Script
from sessions_app.runtime.demo.scripts import (
    chat_script,
    flow_script,
    opened_chat_script,
    reply_script,
    task_script,
    transferred_script,
)

__all__ = ["KINDS", "Demo", "DemoConfig", "Finished", "Player", "Target", "parse_mix"]

logger = logging.getLogger("demo_runtime")


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
        # Chats stay open after their script (later messages get replies), so the players do
        # not know them all: ended on shutdown, so none looks live with no runtime behind it.
        self.chats: set[str] = set()
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
        if player.kind == "chat":
            self.chats.add(player.id)
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
            if kind == "start":
                self._start(command)
            elif kind == "message":
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

    def _start(self, command: dict[str, Any]) -> None:
        """A session the server created for one of our agents: accept it (unless another
        runtime did first) and play it; clones and new sessions start fresh, transfers
        continue where their source stopped."""
        payload = command.get("payload") or {}
        config = payload.get("session") or {}
        if not self.client.accept_start(command):
            logger.info("start of %s taken by another runtime", str(config.get("id"))[:8])
            return
        kind, title = config.get("kind", ""), str(config.get("title", ""))
        session = {"id": config["id"], "kind": kind, "title": title}
        origin = payload.get("origin", "new")
        logger.info("starting %s %s %r (%s)", kind, str(config["id"])[:8], title, origin)
        if origin == "transfer" and payload.get("transfer"):
            self._add(session, transferred_script(payload["transfer"], title))
        elif kind == "flow_run":
            self._add(session, flow_script(self.rng.choice(sc.FLOWS)[1]))
        elif kind == "background_task":
            self._add(session, task_script(title))
        else:
            self._add(session, opened_chat_script(str(payload.get("input", ""))))
        self.started[kind] = self.started.get(kind, 0) + 1

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
        """Stop what is still running and end open chats, as a runtime going away should: no
        session may look live with nothing behind it."""
        # Going away should not hang on a server that is down: try briefly, then give up.
        self.client.backoff = Backoff(attempts=2)
        for player in list(self.players.values()):
            player.script.close()
            if player.kind == "chat":
                continue
            self._report_gone(player.id, "stopping", "stopped")
        for chat_id in sorted(self.chats):
            # Ending an ended chat is a no-op on the server, so no need to know which are open.
            self._report_gone(chat_id, "ended")
        self.players.clear()
        self.chats.clear()

    def _report_gone(self, session_id: str, *statuses: str) -> None:
        try:
            batch = self.client.batch(session_id)
            for status in statuses:
                batch.status(status, reason="demo runtime shut down")
            batch.flush()
        except (ApiError, Unavailable) as exc:
            logger.info("%s: could not report on shutdown: %s", session_id[:8], exc)

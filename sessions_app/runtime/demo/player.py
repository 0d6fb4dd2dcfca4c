"""One session being played: its script's clock, the commands it obeys, and the events it
posts through its batch."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from sessions_app.runtime.client import ApiError, Conflict, EventBatch
from sessions_app.runtime.demo import scenarios as sc

if TYPE_CHECKING:
    from sessions_app.runtime.demo.engine import Demo

logger = logging.getLogger("demo_runtime")

# A script yields how many seconds it wants to wait; the loop resumes it when they have passed.
Script = Generator[float, None, None]
TERMINAL = {"completed", "failed", "cancelled", "ended"}


class Finished(Exception):
    """Unwinds a player's script: the session is done (or no longer ours to drive)."""


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
        self.bill()
        self.flush()

    def tool(self) -> None:
        rng = self.demo.rng
        name, arguments, output = sc.tool_activity(
            rng, with_secret=rng.random() < self.demo.config.secret_chance
        )
        call_id = self.batch.tool_call(name, arguments)
        self.batch.tool_result(call_id, output, name=name)
        self.bill()

    def bill(self) -> None:
        """Report the model usage of the last stretch of work, priced per million tokens."""
        rng = self.demo.rng
        tokens_in, tokens_out = rng.randint(400, 6000), rng.randint(50, 1500)
        cost = (tokens_in * sc.PRICE_IN + tokens_out * sc.PRICE_OUT) / 1_000_000
        self.batch.usage(tokens_in=tokens_in, tokens_out=tokens_out, cost=f"{cost:.6f}")

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

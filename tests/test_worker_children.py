"""The `worker` role's scheduler child dies with its worker (jobs/worker.py): a worker killed with
SIGKILL leaves no scheduler behind holding the scheduler lock, so the worker the supervisor starts
next schedules again."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis as redis_lib

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
LOCK = "rq:scheduler-lock:sync"


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # gone meanwhile
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in "ZX"


def wait_until(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.1)
    raise AssertionError(f"{what} not within {timeout} s")


def start_worker(app, tmp_path: Path, name: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FANOUT_", "DATABASE_URL", "REDIS_URL"))}
    env.update(
        DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
        REDIS_URL=app.config["REDIS_URL"],
        SECRET_KEY="test-secret",
        FANOUT_ENCRYPTION_KEYS=app.config["FANOUT_ENCRYPTION_KEYS"][0],
        FANOUT_TESTING="1",
        FANOUT_INSTANCE=str(tmp_path),
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    with (tmp_path / f"{name}.log").open("w") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rq.cli",
                "worker",
                "--worker-class",
                "jobs.worker.AppWorker",
                "--config",
                "jobs.settings",
                "--with-scheduler",
                "--name",
                name,
                "sync",
                "default",
            ],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def test_a_killed_workers_scheduler_stops_and_frees_the_lock(app, tmp_path):
    redis = redis_lib.Redis.from_url(app.config["REDIS_URL"])
    first = start_worker(app, tmp_path, "first")
    second = None
    try:
        wait_until(lambda: redis.exists(LOCK), 60, "the scheduler lock taken")
        scheduler = wait_until(lambda: children(first.pid), 10, "the scheduler process")[0]
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        wait_until(lambda: not alive(scheduler), 10, "the orphaned scheduler stopped")
        assert not redis.exists(LOCK), "the dead worker's scheduler still holds the lock"
        second = start_worker(app, tmp_path, "second")
        wait_until(lambda: redis.exists(LOCK), 60, "the next worker's scheduler taking the lock")
        wait_until(lambda: children(second.pid), 10, "the next worker's scheduler process")
    finally:
        for process in (first, second):
            if process and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=30)
        redis.close()

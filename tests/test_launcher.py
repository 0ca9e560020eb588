"""`make run`'s launcher, for real: embedded Redis, migrations, demo seed, web + worker + cron under
honcho; the login page is served, /health/ready is 200, and Ctrl-C leaves no process behind."""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, timeout: float = 60) -> requests.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the launcher exited: {process.stdout.read()[-3000:]}"
        try:
            return requests.get(url, timeout=5)
        except requests.RequestException:  # not listening yet, or still booting
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer in {timeout} s")


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def test_make_run_serves_the_desk_and_stops_cleanly(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY")}
    env.update(FANOUT_INSTANCE=str(tmp_path), PORT=str(port), WEB_CONCURRENCY="1", WEB_THREADS="4")
    process = subprocess.Popen([sys.executable, "-m", "webapp.launcher"], cwd=ROOT, env=env, start_new_session=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        login = wait_for(f"http://127.0.0.1:{port}/login", process)
        assert login.status_code == 200 and "Log in to the desk" in login.text
        ready = requests.get(f"http://127.0.0.1:{port}/health/ready", timeout=5)
        assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "redis": "ok"}
        session = requests.Session()
        login = session.get(f"http://127.0.0.1:{port}/login", timeout=5)
        page = session.post(f"http://127.0.0.1:{port}/login", timeout=5,
                            data={"username": "admin", "password": "fanout-demo",
                                  "csrf_token": login.text.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]})
        assert "Desk" in page.text and "Log out" in page.text
        session.close()
    finally:
        if group_alive(process.pid):
            os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C sends to the terminal's process group
        output, _ = process.communicate(timeout=30)
    deadline = time.monotonic() + 15
    while group_alive(process.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not group_alive(process.pid), "processes left running after Ctrl-C"
    assert "Demo logins: admin / trader / viewer" in output
    assert "http://127.0.0.1" in output

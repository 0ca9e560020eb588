"""`make run`'s launcher, for real: embedded Redis, migrations, demo seed, every Procfile role under
supervisord. The login page is served, /health/ready is 200; a role's process (or the embedded
Redis) killed with SIGKILL comes back while the others keep running, a ticket placed while no orders
worker is alive is sent once they are back; and Ctrl-C leaves no process behind and no traceback."""

import contextlib
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow
PASSWORD = "fanout-demo"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, timeout: float = 60) -> requests.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the launcher exited"
        try:
            return requests.get(url, timeout=5)
        except requests.RequestException:  # not listening yet, or still booting
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer in {timeout} s")


def wait_until(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.3)
    raise AssertionError(f"{what}: not within {timeout} s")


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def descendants(pid: int) -> set[tuple[int, int]]:
    """Every live process under `pid`, as (pid, start time): the start time tells a process from a
    later one given the same pid. supervisord's programs run in process groups of their own, so
    the launcher's group alone does not cover them."""
    parents: dict[tuple[int, int], int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] not in "ZX":
                parents[(int(entry.name), int(fields[19]))] = int(fields[1])
    found: set[tuple[int, int]] = set()
    frontier = {pid}
    while frontier:
        children = {process for process, parent in parents.items() if parent in frontier} - found
        found |= children
        frontier = {child for child, _ in children}
    return found


def alive(process: tuple[int, int]) -> bool:
    pid, started = process
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] not in "ZX" and int(fields[19]) == started


def hidden_inputs(html: str) -> dict[str, str]:
    return dict(
        re.findall(r'<input[^>]*name="([^"]+)"[^>]*type="hidden"[^>]*value="([^"]*)"', html)
        + re.findall(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"', html)
    )


def login(base: str, username: str) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{base}/login", timeout=10)
    done = session.post(
        f"{base}/login",
        timeout=10,
        allow_redirects=False,
        data={"username": username, "password": PASSWORD, "csrf_token": hidden_inputs(page.text)["csrf_token"]},
    )
    assert done.status_code == 302, f"login as {username}: HTTP {done.status_code}"
    return session


def start_desk(tmp_path: Path, port: int) -> tuple[subprocess.Popen, Path]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY")}
    env.update(FANOUT_INSTANCE=str(tmp_path), PORT=str(port), WEB_CONCURRENCY="1", WEB_THREADS="8")
    log = tmp_path / "console.log"  # a file, not a pipe nobody reads while the test runs
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "webapp.launcher"],
            cwd=ROOT,
            env=env,
            start_new_session=True,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    return process, log


def stop_desk(process: subprocess.Popen, ctrl_c: bool = True) -> set[int]:
    """Ctrl-C, as a terminal sends it (SIGINT to the launcher's process group), or a SIGTERM to the
    launcher alone (a service manager's stop); returns every process under the launcher just
    before, to check none is left."""
    started = descendants(process.pid)
    if not ctrl_c and process.poll() is None:
        process.send_signal(signal.SIGTERM)
    elif group_alive(process.pid):
        os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:  # clean up for the next test: every process, not the group alone
        for pid, _ in started | {(process.pid, 0)}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        raise
    return started


def supervised_pids(tmp_path: Path) -> dict[str, int]:
    """supervisorctl's view: process name → pid, for the ones that have one."""
    status = subprocess.run(
        [sys.executable, "-m", "supervisor.supervisorctl", "-c", str(tmp_path / "supervisord.conf"), "status"],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    pids = {}
    for line in status.splitlines():
        if match := re.match(r"(?:\S+:)?(\S+)\s+(?:RUNNING|STARTING)\s+pid (\d+)", line):
            pids[match.group(1)] = int(match.group(2))
    return pids


def test_make_run_serves_the_desk_and_stops_cleanly_on_sigterm(tmp_path):
    port = free_port()
    process, log = start_desk(tmp_path, port)
    try:
        page = wait_for(f"http://127.0.0.1:{port}/login", process)
        assert page.status_code == 200 and "Log in to the desk" in page.text
        ready = requests.get(f"http://127.0.0.1:{port}/health/ready", timeout=5)
        assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}
        admin = login(f"http://127.0.0.1:{port}", "admin")
        page = admin.get(f"http://127.0.0.1:{port}/", timeout=10)
        assert "Desk" in page.text and "Log out" in page.text and 'id="desk-processes"' in page.text
        admin.close()
    finally:
        started = stop_desk(process, ctrl_c=False)
    output = log.read_text()
    assert not [pid for pid in started if alive(pid)], f"left running after SIGTERM: {output[-3000:]}"
    assert output.index("stopped: web") < output.index("stopped: orders-0")  # the web stops taking tickets first
    assert output.index("stopped: orders-0") < output.index("stopped: redis")  # Redis last, once nothing uses it
    assert "Demo logins: admin / trader / viewer" in output
    assert "http://127.0.0.1" in output
    assert "Traceback" not in output


def role_live(base: str, admin: requests.Session, role: str, pid: int) -> bool:
    """`pid` is among the role's live processes in /health/detailed (the web: the desk answers)."""
    try:
        if role == "web":
            return requests.get(f"{base}/health/live", timeout=5).status_code == 200
        roles = admin.get(f"{base}/health/detailed", timeout=5).json().get("roles", {})
    except (requests.RequestException, ValueError):  # the web itself may be restarting
        return False
    return pid in [p["pid"] for p in roles.get(role, [])]


def place_ticket(base: str, trader: requests.Session, instrument_id: int) -> int:
    form = trader.get(f"{base}/orders/new", params={"instrument_id": instrument_id}, timeout=10).text
    client_ids = re.findall(r'name="qty_(\d+)"', form)
    assert client_ids, "the trader's ticket lists no client"
    data = {
        **hidden_inputs(form),
        "instrument_id": instrument_id,
        "action": "BUY",
        "product": "MIS",
        "order_type": "MARKET",
        "validity": "DAY",
        f"qty_{client_ids[0]}": "1",
    }
    done = trader.post(f"{base}/orders/new", data=data, allow_redirects=False, timeout=10)
    assert done.status_code == 302 and "/orders/batches/" in done.headers["Location"], done.text[-2000:]
    return int(done.headers["Location"].rstrip("/").rsplit("/", 1)[1])


def test_a_killed_process_comes_back_and_the_others_never_stop(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process, log = start_desk(tmp_path, port)
    seen: set[tuple[int, int]] = set()
    try:
        wait_for(f"{base}/login", process, timeout=90)
        wait_until(
            lambda: requests.get(f"{base}/health/ready", timeout=5).status_code == 200,
            90,
            "every role live in /health/ready",
        )
        admin, trader = login(base, "admin"), login(base, "trader")
        everything = {"redis", "web", "worker", "orders-0", "orders-1", "strategies", "backtests", "cron", "feed"}
        # live (heartbeats) may come before RUNNING (up STARTSECS), which is when supervisorctl shows a pid
        pids = wait_until(lambda: (p := supervised_pids(tmp_path)).keys() == everything and p, 30, "all RUNNING")

        # every process the desk ran: one orphaned by a kill is no longer under the launcher
        for name, role in [
            ("web", "web"),
            ("worker", "worker"),
            ("orders-0", "orders"),
            ("strategies", "strategies"),
            ("backtests", "backtests"),
            ("cron", "cron"),
            ("feed", "feed"),
        ]:
            seen |= descendants(process.pid)
            os.kill(pids[name], signal.SIGKILL)
            now = wait_until(
                lambda: (p := supervised_pids(tmp_path)).get(name) not in (None, pids[name]) and p,  # noqa: B023
                60,
                f"{name} restarted",
            )
            # the lambdas are called within this pass of the loop, never after it (B023's worry)
            wait_until(lambda: role_live(base, admin, role, now[name]), 60, f"{name}'s new process live")  # noqa: B023
            assert {k: v for k, v in now.items() if k != name} == {k: v for k, v in pids.items() if k != name}
            pids = now

        # the embedded Redis killed: supervisord starts it again (its append-only file brings back
        # what it held), and every role waits for it and reconnects instead of exiting
        seen |= descendants(process.pid)
        os.kill(pids["redis"], signal.SIGKILL)
        now = wait_until(
            lambda: (p := supervised_pids(tmp_path)).get("redis") not in (None, pids["redis"]) and p,
            60,
            "redis restarted",
        )
        assert {k: v for k, v in now.items() if k != "redis"} == {k: v for k, v in pids.items() if k != "redis"}
        pids = now
        wait_until(
            lambda: requests.get(f"{base}/health/ready", timeout=5).status_code == 200,
            90,
            "every role live again after Redis came back",
        )

        # no orders worker at all for a moment: a ticket placed then is sent once they are back
        db = sqlite3.connect(f"file:{tmp_path / 'fanout.db'}?mode=ro", uri=True)
        instrument_id = db.execute("SELECT id FROM instruments ORDER BY id LIMIT 1").fetchone()[0]
        seen |= descendants(process.pid)
        for name in ("orders-0", "orders-1"):
            os.kill(pids[name], signal.SIGKILL)
        batch_id = place_ticket(base, trader, instrument_id)
        statuses = wait_until(
            lambda: (
                (s := [r[0] for r in db.execute("SELECT status FROM orders WHERE batch_id = ?", (batch_id,))])
                and all(x not in ("NEW", "SUBMITTING", "UNKNOWN") for x in s)
                and s
            ),
            90,
            "the ticket's child sent",
        )
        assert statuses and all(s in ("PLACED", "OPEN", "PARTIAL", "COMPLETE") for s in statuses), statuses
        db.close()
        # killed within STARTSECS of its last start, a process may be in its backoff pause for a moment
        now = wait_until(lambda: (p := supervised_pids(tmp_path)).keys() == pids.keys() and p, 60, "both orders back")
        assert now["orders-0"] != pids["orders-0"] and now["orders-1"] != pids["orders-1"]
        others = ("redis", "web", "worker", "strategies", "backtests", "cron", "feed")
        assert {k: now[k] for k in others} == {k: pids[k] for k in others}
        admin.close()
        trader.close()
    finally:
        seen |= stop_desk(process)
    output = log.read_text()
    assert not [pid for pid in seen if alive(pid)], "processes left running after Ctrl-C"
    assert "exited: orders-0 (terminated by SIGKILL; not expected)" in output  # the restart is logged
    assert "Traceback" not in output, output[output.find("Traceback") - 2000 :][:5000]

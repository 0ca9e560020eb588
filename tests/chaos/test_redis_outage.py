"""Every long-running process outlives Redis going away (issue 10, item 2), with real processes: the
Procfile's web (gunicorn), worker, orders, cron and feed against a SQLite file (or DATABASE_URL) and
a redis-server of the test's own. Redis is paused (SIGSTOP) for longer than every timeout the
processes have, then resumed with its data; then killed and, after longer than every backoff step,
started again empty. Throughout, no process exits or is replaced (same pids, gunicorn's worker
included); during each outage a ticket is refused with the message and writes nothing; after each,
every role is back on its own (the RQ workers registered again, the cron scheduler too, the feed
publishing, the web's hub subscribed again); and a ticket placed at the end is sent and reaches
the paper broker, without anything having been restarted.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis as redis_lib
import requests
import sqlalchemy as sa

from tests.conftest import _reset, make_app
from tests.factories import DEFAULT_PASSWORD
from webapp.brokers.paper import ensure_account
from webapp.embedded_redis import EmbeddedRedis
from webapp.entrypoint import ROLES
from webapp.extensions import db
from webapp.marketdata.store import TICKS_CHANNEL
from webapp.marketfeed.feed import HEARTBEAT_KEY
from webapp.models import Batch, Order
from webapp.tasks import QUEUE_UNAVAILABLE
from webapp.trading import states

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# longer than every timeout the processes wait on Redis: RQ's socket timeout (worker-ttl 30 → 25 s),
# PatientRedis' 10 s backoff cap, the feed lock's 10 s, the web's 0.75 s and 2 s breaker, the hub's 5 s
PAUSE_SECONDS = 30
DOWN_SECONDS = 12  # killed: longer than the largest backoff step (10 s) before it comes back empty
READY_SECONDS = 90  # these bound a failing run; a passing one takes a fraction of them
RECOVER_SECONDS = 60
SEND_SECONDS = 60


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OwnRedis:
    """A redis-server on a fixed port this test may pause, kill and start again empty."""

    def __init__(self, tmp: Path):
        self.tmp, self.port, self.runs = tmp, free_port(), 0
        self.server = self._start()

    def _start(self) -> EmbeddedRedis:
        self.runs += 1
        return EmbeddedRedis(data_dir=self.tmp / f"redis-{self.runs}", port=self.port).start()

    @property
    def url(self) -> str:
        return self.server.url

    def client(self) -> redis_lib.Redis:
        return redis_lib.Redis.from_url(self.url, socket_timeout=5)

    def pause(self) -> None:
        os.kill(self.server.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.server.process.pid, signal.SIGCONT)

    def kill(self) -> None:
        self.server.process.kill()
        self.server.stop()  # reaps it and closes its pipe

    def start_empty(self) -> None:
        self.server = self._start()

    def stop(self) -> None:
        if self.server.process.poll() is None:
            os.kill(self.server.process.pid, signal.SIGCONT)
        self.server.stop()


@pytest.fixture
def own_redis(tmp_path):
    found = OwnRedis(tmp_path)
    yield found
    found.stop()


@pytest.fixture
def app(services, encryption_key, own_redis):
    app = make_app((services[0], own_redis.url), encryption_key)
    _reset(app)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


class Desk:
    """The five roles, started as the Procfile says, each in its own process group."""

    def __init__(self, env: dict[str, str], logs: Path):
        self.env, self.logs, self.processes = env, logs, {}
        for role, command in ROLES.items():
            with open(logs / f"{role}.log", "wb") as log:
                self.processes[role] = subprocess.Popen(
                    [str(BIN / command[0]), *command[1:]],
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )

    def pids(self) -> dict[str, set[int]]:
        """Each role's process, and gunicorn's worker (a master replaces a dead one: that must not
        happen either). The RQ worker's children come and go with its jobs: not counted."""
        found = {role: {process.pid} for role, process in self.processes.items()}
        web = self.processes["web"].pid
        found["web"] |= {int(pid) for pid in Path(f"/proc/{web}/task/{web}/children").read_text().split()}
        return found

    def exited(self) -> dict[str, int]:
        return {role: p.returncode for role, p in self.processes.items() if p.poll() is not None}

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def tails(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.logs.glob("*.log")))


def wait_until(what: str, check, seconds: float, desk: Desk) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert not desk.exited(), f"a process exited: {desk.exited()}"
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.5)


def roles_up(redis: redis_lib.Redis, since: float) -> dict[str, bool]:
    """Which roles show up in this Redis: RQ's worker and cron scheduler registries, the feed's
    heartbeat written after `since`, the web's hub subscribed to the ticks."""
    from rq import Worker
    from rq.cron import CronScheduler

    try:
        queues = {q for w in Worker.all(connection=redis) for q in w.queue_names()}
        beat = redis.get(HEARTBEAT_KEY)
        return {
            "orders": "orders" in queues,
            "worker": "sync" in queues,
            "cron": bool(CronScheduler.all(connection=redis)),
            "feed": beat is not None and _stamp(beat) > since,
            "hub": dict(redis.pubsub_numsub(TICKS_CHANNEL)).get(TICKS_CHANNEL.encode(), 0) >= 1,
        }
    except redis_lib.RedisError:
        return {}


def _stamp(raw: bytes) -> float:
    from datetime import datetime

    return datetime.fromisoformat(raw.decode()).timestamp()


def hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}"[^>]*value="([^"]*)"', html) or re.search(
        rf'value="([^"]*)"[^>]*name="{name}"', html
    )
    assert match, f"no {name} on the page"
    return match.group(1)


def post_ticket(http: requests.Session, base: str, instrument_id: int, client_ids: list[int]) -> requests.Response:
    page = http.get(f"{base}/orders/new", params={"instrument_id": instrument_id}, timeout=30)
    assert page.status_code == 200
    form = {
        "csrf_token": hidden(page.text, "csrf_token"),
        "ticket_id": hidden(page.text, "ticket_id"),
        "instrument_id": str(instrument_id),
        "action": "BUY",
        "product": "MIS",
        "order_type": "MARKET",
        "validity": "DAY",
        **{f"qty_{c}": "2" for c in client_ids},
    }
    return http.post(f"{base}/orders/new", data=form, allow_redirects=False, timeout=30)


def rows(app) -> tuple[int, int]:
    with app.app_context():
        return (
            db.session.execute(sa.select(sa.func.count()).select_from(Batch)).scalar_one(),
            db.session.execute(sa.select(sa.func.count()).select_from(Order)).scalar_one(),
        )


def open_feed_socket(base: str, http: requests.Session):
    """A desk page's WebSocket: it starts the web process's hub (the Redis subscriber thread)."""
    import simple_websocket

    cookie = "; ".join(f"{c.name}={c.value}" for c in http.cookies)
    return simple_websocket.Client.connect(
        base.replace("http", "ws") + "/ws/feed?page=desk",
        headers={"Cookie": cookie, "Origin": base, "User-Agent": http.headers["User-Agent"]},
    )


def test_every_process_outlives_redis_paused_and_restarted_empty(
    app, factory, own_redis, services, encryption_key, tmp_path
):
    instrument = factory.instrument("INFY", 1594, price="1548.20")
    clients = [factory.client(name, broker="paper") for name in ("Alpha", "Beta")]
    with app.app_context():
        for client in clients:
            ensure_account(client.client_code)
    factory.user("tara", role="trader", clients=clients)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("FANOUT_DEMO", "FANOUT_TESTING")}
    env.update(
        DATABASE_URL=services[0],
        REDIS_URL=own_redis.url,
        SECRET_KEY="outage-test-secret",
        FANOUT_ENCRYPTION_KEYS=encryption_key,
        FANOUT_AUDIT_KEYS="outage-test-audit-key-" + "x" * 32,
        FANOUT_INSTANCE=str(tmp_path / "instance"),
        PORT=str(port),
        WEB_CONCURRENCY="1",
        WEB_THREADS="16",
        SESSION_COOKIE_SECURE="0",
        PAPER_ALWAYS_OPEN="1",
        PYTHONUNBUFFERED="1",
        PATH=os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),
    )
    (tmp_path / "instance").mkdir()
    (tmp_path / "logs").mkdir()
    base = f"http://127.0.0.1:{port}"
    desk = Desk(env, tmp_path / "logs")
    watch = own_redis.client()
    socket = None
    try:

        def web_up() -> bool:
            try:
                return requests.get(f"{base}/login", timeout=5).status_code == 200
            except requests.RequestException:
                return False

        wait_until("the web answers", web_up, READY_SECONDS, desk)
        http = requests.Session()
        http.headers["User-Agent"] = "fanout-outage-test"
        login = http.get(f"{base}/login", timeout=30)
        assert (
            http.post(
                f"{base}/login",
                data={"username": "tara", "password": DEFAULT_PASSWORD, "csrf_token": hidden(login.text, "csrf_token")},
                allow_redirects=False,
                timeout=30,
            ).status_code
            == 302
        )
        socket = open_feed_socket(base, http)
        started = time.time()
        wait_until(
            "every role up",
            lambda: all(roles_up(watch, started).values()) and len(roles_up(watch, 0)) == 5,
            READY_SECONDS,
            desk,
        )
        pids = desk.pids()
        before = rows(app)

        # 1. paused, then back with its data
        own_redis.pause()
        refused = post_ticket(http, base, instrument.id, [c.id for c in clients])
        assert refused.status_code == 503 and QUEUE_UNAVAILABLE in refused.text
        assert http.get(f"{base}/", timeout=30).status_code == 200  # the desk is drawn from the database
        time.sleep(PAUSE_SECONDS)
        assert not desk.exited()
        own_redis.resume()
        resumed = time.time()
        wait_until(
            "every role back after the pause", lambda: all(roles_up(watch, resumed).values()), RECOVER_SECONDS, desk
        )

        # 2. killed, then started again empty: every registration is gone and must be made again
        own_redis.kill()
        refused = post_ticket(http, base, instrument.id, [c.id for c in clients])
        assert refused.status_code == 503 and QUEUE_UNAVAILABLE in refused.text
        time.sleep(DOWN_SECONDS)
        assert not desk.exited()
        own_redis.start_empty()
        watch = own_redis.client()
        back = time.time()
        wait_until(
            "every role back after the restart (empty)",
            lambda: all(roles_up(watch, back).values()),
            RECOVER_SECONDS,
            desk,
        )

        assert rows(app) == before  # neither refused ticket wrote anything
        assert desk.pids() == pids  # nothing exited, nothing was replaced

        # 3. a ticket now is sent, by the same processes
        placed = post_ticket(http, base, instrument.id, [c.id for c in clients])
        assert placed.status_code == 302 and "/orders/batches/" in placed.headers["Location"]
        batch_id = int(placed.headers["Location"].rstrip("/").rsplit("/", 1)[1])

        def sent() -> bool:
            with app.app_context():
                found = db.session.execute(sa.select(Order.status).where(Order.batch_id == batch_id)).scalars().all()
                db.session.remove()
            return len(found) == 2 and all(s in states.AT_BROKER | {states.COMPLETE} for s in found)

        wait_until("the ticket's children at the broker", sent, SEND_SECONDS, desk)
        assert desk.pids() == pids
    except BaseException:
        print(desk.tails())
        raise
    finally:
        if socket is not None:
            try:
                socket.close()
            except Exception:  # the server may have closed it already
                pass
        desk.stop()

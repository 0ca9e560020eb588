"""The issue's "done when", proven by the documentation itself: docs/api.md's Python example (only
`requests`) is cut out of the doc and run, as written, against a live desk (the Procfile's gunicorn
and RQ workers, the paper broker) with twelve clients; the database must then hold one buy batch of
twelve children and one exit batch of twelve, every child acknowledged. Then the doc's curl line posts
a TradingView-format alert to a hook, twice: one batch for the twelve clients, every child acknowledged.
"""

from __future__ import annotations

import ast
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from webapp.brokers.paper import ensure_account
from webapp.entrypoint import ROLES
from webapp.extensions import db
from webapp.models import Batch, HookAlert, Order
from webapp.trading import states

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "api.md"
BIN = Path(sys.executable).parent
CLIENTS = 12
ROLES_STARTED = ("web", "worker", "orders", "strategies")  # strategies: the hooks' alerts are processed there
READY_SECONDS = 90  # these bound a failing run; a passing one takes a fraction of them
SCRIPT_SECONDS = 180
HOOK_SECONDS = 60
STDLIB_OK = {"os", "sys", "time", "uuid", "json"}
BOOKED = states.AT_BROKER | {states.COMPLETE}  # the broker took it (the fill may still be on its way)


def doc_block(name: str) -> str:
    """The fenced code between `<!-- example:<name>:start -->` and `<!-- example:<name>:end -->`."""
    text = DOC.read_text(encoding="utf-8")
    found = re.search(rf"<!-- example:{name}:start -->\s*```[a-z]*\n(.*?)```\s*<!-- example:{name}:end -->", text, re.S)
    assert found, f"docs/api.md has no {name} example between its markers"
    return found.group(1)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveDesk:
    """The Procfile's roles against the test's database and Redis, each in its own process group."""

    def __init__(self, env: dict[str, str], logs: Path):
        self.logs, self.processes = logs, {}
        for role in ROLES_STARTED:
            command = ROLES[role]
            with open(logs / f"{role}.log", "wb") as log:
                self.processes[role] = subprocess.Popen(
                    [str(BIN / command[0]), *command[1:]],
                    cwd=ROOT,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )

    def check(self) -> None:
        exited = {role: p.returncode for role, p in self.processes.items() if p.poll() is not None}
        assert not exited, f"a desk process exited: {exited}\n{self.tails()}"

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


@pytest.fixture
def live_desk(app, services, encryption_key, tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FANOUT_", "DATABASE_URL", "REDIS_URL"))}
    env.update(
        DATABASE_URL=services[0],
        REDIS_URL=app.config["REDIS_URL"],
        SECRET_KEY="docs-example-test-secret",
        FANOUT_ENCRYPTION_KEYS=encryption_key,
        FANOUT_AUDIT_KEYS="docs-example-audit-key-" + "x" * 32,
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
    desk = LiveDesk(env, tmp_path / "logs")
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_SECONDS
        while True:
            desk.check()
            try:
                if requests.get(f"{base}/health/live", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, f"the web did not answer in {READY_SECONDS} s\n{desk.tails()}"
            time.sleep(0.3)
        desk.base = base
        yield desk
    except BaseException:
        print(desk.tails())
        raise
    finally:
        desk.stop()


def batches(app, kind: str | None = None) -> list[tuple[Batch, list[Order]]]:
    with app.app_context():
        query = sa.select(Batch).order_by(Batch.id)
        if kind is not None:
            query = query.where(Batch.kind == kind)
        found = [
            (b, list(db.session.execute(sa.select(Order).where(Order.batch_id == b.id)).scalars()))
            for b in db.session.execute(query).scalars()
        ]
        db.session.expunge_all()
        db.session.remove()
    return found


def wait_until(what: str, check, seconds: float, desk: LiveDesk) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        desk.check()
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}\n{desk.tails()}"
        time.sleep(0.3)


def make_hook(app, owner_id: int, client_ids: list[int]) -> str:
    """A ticket hook for the twelve clients, 1 share each, instrument and side from the alert, made as the
    hooks page makes one; its secret (the URL's last part)."""
    from webapp.hooks import alerts
    from webapp.models import Hook, User
    from webapp.models.api import HOOK_TICKET

    with app.app_context():
        owner = db.session.get(User, owner_id)
        hook = Hook(
            user_id=owner.id,
            kind=HOOK_TICKET,
            name="docs example",
            product="MIS",
            order_type="MARKET",
            quantities={str(cid): 1 for cid in client_ids},
            dedupe_seconds=60,
        )
        secret = alerts.set_secret(hook)
        db.session.add(hook)
        db.session.flush()
        alerts.audit_hook("create", owner, hook, None)
        db.session.commit()
        return secret


def test_the_docs_python_example_and_curl_alert_run_against_a_live_desk(app, factory, make_key, live_desk, tmp_path):
    instrument = factory.instrument("INFY", 1594, price="1548.20")
    clients = [factory.client(f"Docs {i:02d}", broker="paper") for i in range(CLIENTS)]
    outsider = factory.client("Not granted", broker="paper")
    with app.app_context():
        for client in [*clients, outsider]:
            ensure_account(client.client_code)
    trader = factory.user("doc-trader", role="trader", clients=clients)
    client_ids = sorted(c.id for c in clients)

    script = doc_block("python")
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(ast.parse(script))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])
    }
    assert imported - STDLIB_OK == {"requests"}, f"the example imports {imported}: only requests beyond the stdlib"
    (tmp_path / "twelve.py").write_text(script, encoding="utf-8")

    env = {k: v for k, v in os.environ.items() if not k.startswith(("FANOUT_", "DATABASE_URL", "REDIS_URL"))}
    env.update(FANOUT_URL=live_desk.base, FANOUT_API_KEY=make_key(trader, ["read", "trade"]), FANOUT_SYMBOL="NSE:INFY")
    run = subprocess.run(
        [sys.executable, str(tmp_path / "twelve.py")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=SCRIPT_SECONDS,
    )
    assert run.returncode == 0, f"the example failed:\n{run.stdout}\n{run.stderr}\n{live_desk.tails()}"
    assert "done" in run.stdout.splitlines()[-1]

    [(buy, buy_children)] = batches(app, "ticket")
    assert buy.action == "BUY" and buy.instrument_id == instrument.id
    assert sorted(c.client_id for c in buy_children) == client_ids
    assert all(c.status in BOOKED and c.broker_order_id for c in buy_children), [c.status for c in buy_children]
    [(sell, sell_children)] = batches(app, "exit")
    assert sell.instrument_id == instrument.id
    assert sorted(c.client_id for c in sell_children) == client_ids
    assert all(c.side == "SELL" and c.quantity == 1 for c in sell_children)
    assert all(c.status in BOOKED and c.broker_order_id for c in sell_children), [c.status for c in sell_children]
    assert len(batches(app)) == 2  # nothing else was made

    # the doc's curl line, as written, against a hook of the same trader: twice, one batch
    secret = make_hook(app, trader.id, client_ids)
    curl = doc_block("curl")
    hook_env = dict(env, FANOUT_HOOK_URL=f"{live_desk.base}/hooks/{secret}")
    answers = []
    for _ in range(2):
        posted = subprocess.run(
            ["bash", "-c", curl], env=hook_env, capture_output=True, text=True, timeout=30, check=False
        )
        assert posted.returncode == 0, posted.stderr
        answers.append(posted.stdout)
    assert '"RECEIVED"' in answers[0] and '"DUPLICATE"' in answers[1], answers

    def hook_batch_acknowledged() -> bool:
        made = [(b, c) for b, c in batches(app) if b.id not in (buy.id, sell.id)]
        if len(made) != 1:
            return False
        children = made[0][1]
        return len(children) == CLIENTS and all(o.status not in states.IN_FLIGHT for o in children)

    wait_until("the alert's batch acknowledged", hook_batch_acknowledged, HOOK_SECONDS, live_desk)
    [(alerted, alerted_children)] = [(b, c) for b, c in batches(app) if b.id not in (buy.id, sell.id)]
    assert alerted.action == "BUY" and alerted.instrument_id == instrument.id
    assert sorted(c.client_id for c in alerted_children) == client_ids
    assert all(c.status in BOOKED and c.broker_order_id for c in alerted_children), [
        (c.status, c.reason) for c in alerted_children
    ]
    with app.app_context():
        statuses = sorted(db.session.execute(sa.select(HookAlert.status, HookAlert.batch_id)).all())
        db.session.remove()
    assert statuses == sorted([("PROCESSED", alerted.id), ("DUPLICATE", None)])

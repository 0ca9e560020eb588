"""A fired stop's exit survives a real orders worker killed mid-call and a restart of the feed and
the workers: the broker books the exit once. Counted at the Kite emulator's ledger."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from rq.job import Job, JobStatus

from tests.chaos.test_chaos import ROOT, expire_dead_locks, worker_env
from tests.emulators.common import EmulatorServer, FaultPlan
from tests.emulators.kite import KiteEmulator
from tests.orders.conftest import Desk
from webapp.automation import stops
from webapp.entrypoint import worker_command
from webapp.extensions import db, get_redis, get_rq_redis
from webapp.models import Batch, Order, StopRule
from webapp.models.automation import FIRED
from webapp.tasks import QUEUE_ORDERS, enqueue
from webapp.timeutil import utcnow
from webapp.trading import engine, states, sync
from webapp.trading.context import build_context

pytestmark = pytest.mark.slow
D = Decimal
BOUND = 60.0  # seconds: a failing run's bound, not a measurement


def start_worker(app, url, tmp_path, name):
    env = worker_env(app, url, tmp_path)
    env["BROKER_TIMEOUT_SECONDS"] = "30"  # the call is still waiting when its worker dies
    with open(tmp_path / f"{name}.log", "ab") as log:
        return subprocess.Popen(
            worker_command("orders", name),
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def kill(process) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=10)


def wait_for(check, what: str, tmp_path) -> None:
    deadline = time.monotonic() + BOUND
    while not check():
        logs = "\n".join(p.read_text()[-1500:] for p in tmp_path.glob("*.log"))
        assert time.monotonic() < deadline, f"{what} did not happen in {BOUND} s\n{logs}"
        time.sleep(0.05)


def test_a_worker_killed_mid_exit_and_a_restart_book_the_exit_once(app, factory, tmp_path):
    plan = FaultPlan(hang_seconds=8.0)
    with EmulatorServer(KiteEmulator(faults=plan)) as server:
        emulator = server.app
        app.config.update(KITE_API_URL=server.url, KITE_LOGIN_URL=server.url, BROKER_TIMEOUT_SECONDS=2)
        desk = Desk(app, factory)
        client = desk.kite_client("K1", emulator)
        entry = factory.batch(factory.user(role="admin"), [client], desk.instrument, quantity=10)
        with app.app_context():
            engine.send_batch(entry.id, desk.context())
            assert sync.sync_client(client.id, desk.context())
            rule = stops.arm(
                client_id=client.id,
                instrument_id=desk.instrument.id,
                product="MIS",
                direction=1,
                stop=D("1540.00"),
                source="position",
                price=D("1548.20"),
            )
            db.session.commit()
            rule_id = rule.id
        token = desk.instrument.instrument_token
        plan.script("place", "timeout_after_accept")  # the exit is booked, its answer never comes
        worker = start_worker(app, server.url, tmp_path, f"stops-{os.getpid()}-1")
        try:
            with app.app_context():
                index = stops.StopIndex()
                index.refresh(get_redis(), force=True)
                index.check({token: D("1539.00")}, get_redis())
            wait_for(lambda: emulator.ledger.count(client.client_code) == 2, "the exit's booking", tmp_path)
            kill(worker)  # mid-call: the child is SUBMITTING under the dead worker's lock
            with app.app_context():
                [child] = db.session.execute(sa.select(Order).join(Batch).where(Batch.kind == "stop")).scalars().all()
                assert child.status == states.SUBMITTING
                child_id, batch_id = child.id, child.batch_id
                # the restart: a new feed process, its index loaded fresh, sees the ticks again
                index = stops.StopIndex()
                index.refresh(get_redis(), force=True)
                for price in ("1539.00", "1530.00", "1520.00"):
                    index.check({token: D(price)}, get_redis())
                    assert stops.fire(rule_id, D(price)) is None
            expire_dead_locks(app)
            worker = start_worker(app, server.url, tmp_path, f"stops-{os.getpid()}-2")
            with app.app_context():  # the send job again, as an RQ retry would
                job = enqueue("jobs.orders.send_batch", batch_id, queue_name=QUEUE_ORDERS, job_id=f"retry-{batch_id}")

            def retried():
                with app.app_context():
                    return Job.fetch(job.id, connection=get_rq_redis()).get_status() in (
                        JobStatus.FINISHED,
                        JobStatus.FAILED,
                    )

            wait_for(retried, "the retried send job", tmp_path)
            deadline = time.monotonic() + BOUND
            while True:  # the reconcile cron, its clock shifted past STUCK_AFTER
                with app.app_context():
                    engine.reconcile(build_context(app), now=utcnow() + engine.STUCK_AFTER + timedelta(seconds=1))
                    status = db.session.get(Order, child_id).status
                if status not in states.IN_FLIGHT or time.monotonic() > deadline:
                    break
                time.sleep(0.3)
        finally:
            kill(worker)
        with app.app_context():
            sync.sync_client(client.id, build_context(app))
            child = db.session.get(Order, child_id)
            db.session.expunge(child)
            fired = db.session.get(StopRule, rule_id)
            db.session.expunge(fired)
            batches = db.session.execute(sa.select(sa.func.count()).where(Batch.kind == "stop")).scalar_one()
        booked = Counter(e.tag for e in emulator.ledger.entries() if e.account == client.client_code)
        assert booked[child.tag] == 1, booked  # the exit, booked once
        assert sum(booked.values()) == 2  # the entry and the exit, nothing else
        [exit_entry] = [e for e in emulator.ledger.entries() if e.tag == child.tag]
        assert exit_entry.payload["transaction_type"] == "SELL" and exit_entry.payload["quantity"] == "10"
        assert child.status in states.AT_BROKER | {states.COMPLETE} and child.broker_order_id == exit_entry.order_id
        assert fired.state == FIRED and fired.batch_id == child.batch_id and batches == 1

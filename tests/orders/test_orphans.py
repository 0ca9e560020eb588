"""A dead worker's children are found at once (issue 10 item 3): a child lock names the RQ worker
holding it, and a lock whose worker is gone (no RQ heartbeat) is broken and its child resolved by
tag, without waiting for the lock's expiry or STUCK_AFTER. Counted at the paper exchange's book."""

from collections import Counter

import pytest
import sqlalchemy as sa
from rq import Queue, Worker

from webapp.entrypoint import worker_command
from webapp.extensions import db, get_redis, get_rq_redis
from webapp.models import Order
from webapp.models.paper import PaperOrder
from webapp.timeutil import utcnow
from webapp.trading import engine, locks, states
from webapp.trading.accounts import adapter_for
from webapp.vault import current_vault


@pytest.fixture
def live_worker(app):
    """An orders worker that is alive: registered, with its RQ heartbeat key."""
    with app.app_context():
        worker = Worker([Queue("orders", connection=get_rq_redis())], connection=get_rq_redis(), name="live-1")
        worker.register_birth()
    yield worker.name
    with app.app_context():
        worker.register_death()


BOOKED = states.AT_BROKER | {states.COMPLETE}


def rows(app, batch_id):
    with app.app_context():
        return db.session.execute(sa.select(Order).where(Order.batch_id == batch_id).order_by(Order.id)).scalars().all()


def left_by(app, order: Order, holder: str | None, status: str, sent: bool = False) -> None:
    """What a sender leaves when it dies: the child SUBMITTING (or NEW) under its lock (`holder`'s;
    None: the lock lapsed), and, if the call went out before it died, the order at the broker."""
    with app.app_context():
        child = db.session.get(Order, order.id)
        if sent:
            adapter = adapter_for(child.client, app.config, current_vault())
            adapter.place(engine.order_request(child))
            adapter.close()
        if status == states.SUBMITTING:
            child.status, child.attempts, child.submitted_at = states.SUBMITTING, 1, utcnow()
        db.session.commit()
        if holder is not None:
            get_redis().set(locks.lock_name(order.id), locks.lock_token(holder), px=locks.LOCK_SECONDS * 1000)


def paper_book(app, tags) -> Counter:
    with app.app_context():
        return Counter(db.session.execute(sa.select(PaperOrder.tag).where(PaperOrder.tag.in_(list(tags)))).scalars())


def test_a_dead_workers_children_are_resolved_at_once_and_a_live_ones_left_alone(app, desk, factory, live_worker):
    clients = [desk.paper_client(f"P{n}") for n in range(4)]
    batch = factory.batch(factory.user("root", role="admin"), clients, desk.instrument)
    sent, unsent_call, unclaimed, busy = rows(app, batch.id)
    left_by(app, sent, "gone-1", states.SUBMITTING, sent=True)  # the call reached the broker, then it died
    left_by(app, unsent_call, "gone-1", states.SUBMITTING)  # claimed, but the call never left
    left_by(app, unclaimed, "gone-1", states.NEW)  # locked, not claimed yet
    left_by(app, busy, live_worker, states.SUBMITTING)  # a live worker is sending this one right now
    with app.app_context():
        counts = engine.reclaim_orphans(desk.context())
        assert get_redis().get(locks.lock_name(sent.id)) is None  # broken, not left to expire
        assert locks.holder_of(get_redis().get(locks.lock_name(busy.id))) == live_worker
    after = {o.id: o for o in rows(app, batch.id)}
    assert sum(counts.values()) == 3 and counts[states.UNKNOWN] == 1
    assert after[sent.id].status in BOOKED and after[sent.id].attempts == 1  # found by its tag, not sent again
    assert after[unsent_call.id].status == states.UNKNOWN  # not there yet: may still arrive, not re-sent
    assert after[unclaimed.id].status == states.PLACED  # sent now, within its deadline
    assert after[busy.id].status == states.SUBMITTING
    assert paper_book(app, [o.tag for o in after.values()]) == Counter({sent.tag: 1, unclaimed.tag: 1})


def test_a_submitting_child_with_no_lock_is_an_orphan(app, desk, factory):
    """Whoever claimed it is gone and its lock lapsed: resolved now, not after STUCK_AFTER."""
    paper = desk.paper_client("P")
    batch = factory.batch(factory.user("root", role="admin"), [paper], desk.instrument)
    [child] = rows(app, batch.id)
    left_by(app, child, None, states.SUBMITTING, sent=True)
    with app.app_context():
        assert engine.reclaim_orphans(desk.context()) == {states.COMPLETE: 1}  # found (filled) by its tag
    assert paper_book(app, [child.tag]) == Counter({child.tag: 1})


def test_new_children_of_an_abandoned_send_job_are_sent_and_others_wait_for_theirs(app, desk, factory):
    clients = [desk.paper_client(f"P{n}") for n in range(2)]
    admin = factory.user("root", role="admin")
    abandoned, queued = factory.batch(admin, clients, desk.instrument), factory.batch(admin, clients, desk.instrument)
    with app.app_context():
        assert engine.reclaim_orphans(desk.context(), abandoned_batches=[abandoned.id]) == {states.PLACED: 2}
    assert {o.status for o in rows(app, abandoned.id)} == {states.PLACED}
    assert {o.status for o in rows(app, queued.id)} == {states.NEW}  # its job has not started: not ours


def test_dead_holders_are_workers_without_a_heartbeat_or_with_a_death(app, live_worker):
    with app.app_context():
        redis = get_redis()
        assert locks.dead_holders(redis, {live_worker, "gone-1"}) == {"gone-1"}
        Worker.find_by_key(
            Worker.redis_worker_namespace_prefix + live_worker, connection=get_rq_redis()
        ).register_death()
        assert locks.dead_holders(redis, {live_worker}) == {live_worker}


@pytest.mark.slow
def test_an_orders_workers_heartbeat_lapses_within_seconds_of_its_death(app, tmp_path):
    """A real OrdersWorker, as the Procfile starts it, running a job: its RQ key and the job's
    execution live LIVENESS_SECONDS at a time (RQ's SimpleWorker gave them the job's timeout + 60 s),
    so once it is SIGKILLed the reclaim cron sees it dead and the job abandoned."""
    import os
    import signal
    import subprocess
    import time

    from jobs.worker import LIVENESS_SECONDS
    from tests.chaos.test_chaos import ROOT, worker_env

    name = f"heartbeat-{os.getpid()}"
    with app.app_context():
        rq_redis = get_rq_redis()
        orders = Queue("orders", connection=rq_redis)
        job = orders.enqueue("time.sleep", 120, job_timeout=600)
    with open(tmp_path / "worker.log", "ab") as log:
        worker = subprocess.Popen(
            worker_command("orders", name),
            cwd=ROOT,
            env=worker_env(app, "http://127.0.0.1:9", tmp_path),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    key = Worker.redis_worker_namespace_prefix + name
    try:
        bound = time.monotonic() + 60  # a failing run's bound, not a measurement
        while rq_redis.hget(key, "current_job") != job.id.encode() and time.monotonic() < bound:
            time.sleep(0.1)
        assert rq_redis.hget(key, "current_job") == job.id.encode(), (tmp_path / "worker.log").read_text()[-2000:]
        time.sleep(2.5)  # a few beats into the job
        with app.app_context():
            [(_, expires)] = rq_redis.zrange(orders.started_job_registry.key, 0, -1, withscores=True)
            assert 0 < rq_redis.ttl(key) <= LIVENESS_SECONDS
            assert expires - time.time() <= LIVENESS_SECONDS + 1  # renewed, not the job's timeout + 60 s
            assert locks.dead_holders(get_redis(), {name}) == set()
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
    with app.app_context():
        bound = time.monotonic() + 60
        while locks.dead_holders(get_redis(), {name}) != {name} and time.monotonic() < bound:
            time.sleep(0.2)
        assert locks.dead_holders(get_redis(), {name}) == {name}
        assert job.id in orders.started_job_registry.get_expired_job_ids()  # RQ counts it abandoned now

"""The order path against real brokers' protocols: paper in the database, Kite over HTTP with faults.
Counted at the emulator's ledger: every (client, tag) placed at most once."""

from collections import Counter

import pytest
import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import Order, Position, Trade
from webapp.trading import engine, states, sync


@pytest.fixture
def trader(factory):
    return factory.user("tara", role="trader")


def statuses(app, batch_id):
    with app.app_context():
        return dict(
            db.session.execute(sa.select(Order.client_id, Order.status).where(Order.batch_id == batch_id)).all()
        )


def send(desk, batch_id):
    with desk.app.app_context():
        return engine.send_batch(batch_id, desk.context())


def test_paper_batch_fills_and_builds_positions(app, desk, factory, trader):
    clients = [desk.paper_client(f"P{n}") for n in range(4)]
    batch = factory.batch(trader, clients, desk.instrument, quantity=7)
    assert send(desk, batch.id) == {states.PLACED: 4}
    with app.app_context():
        for c in clients:
            assert sync.sync_client(c.id, desk.context())
        orders = db.session.execute(sa.select(Order).where(Order.batch_id == batch.id)).scalars().all()
        assert {o.status for o in orders} == {states.COMPLETE} and all(o.filled_quantity == 7 for o in orders)
        positions = db.session.execute(sa.select(Position)).scalars().all()
        assert sorted(p.client_id for p in positions) == sorted(c.id for c in clients)
        assert all(p.quantity == 7 and p.product == "MIS" for p in positions)
        trade_count = db.session.execute(sa.select(sa.func.count()).select_from(Trade)).scalar_one()
        for c in clients:  # syncing again books nothing twice
            sync.sync_client(c.id, desk.context())
        assert db.session.execute(sa.select(sa.func.count()).select_from(Trade)).scalar_one() == trade_count


def test_the_light_sync_brings_states_fills_and_funds(app, desk, factory, trader):
    from webapp.models import FundsSnapshot

    clients = [desk.paper_client(f"P{n}", cash="500000") for n in range(2)]
    batch = factory.batch(trader, clients, desk.instrument, quantity=3)
    assert send(desk, batch.id) == {states.PLACED: 2}
    with app.app_context():
        assert all(sync.sync_orders(c.id, desk.context()) for c in clients)
        assert set(statuses(app, batch.id).values()) == {states.COMPLETE}
        positions = db.session.execute(sa.select(Position)).scalars().all()
        assert sorted((p.client_id, p.quantity) for p in positions) == sorted((c.id, 3) for c in clients)
        funds = db.session.execute(sa.select(FundsSnapshot)).scalars().all()
        assert len(funds) == 2 and all(f.margin_used > 0 for f in funds)  # the fills' margin, read after them


def test_the_job_sends_and_the_sync_job_fills(app, desk, factory, trader):
    from webapp.orders.batches import enqueue_send

    clients = [desk.paper_client(f"P{n}") for n in range(3)]
    batch = factory.batch(trader, clients, desk.instrument, quantity=2)
    with app.app_context():
        enqueue_send(batch.id)
    desk.run_worker()
    assert set(statuses(app, batch.id).values()) == {states.COMPLETE}


def test_a_big_batch_is_split_over_send_jobs(app, desk, factory, trader, kite, monkeypatch):
    """A big batch is split in one part per orders worker: the send job queues the other parts
    for them; every child is sent exactly once."""
    from rq import Queue, Worker

    import jobs.orders
    from webapp.extensions import get_rq_redis
    from webapp.orders.batches import enqueue_send

    monkeypatch.setattr(jobs.orders, "MIN_CHUNK", 1)
    clients = [desk.kite_client(f"K{n}", kite) for n in range(5)]
    batch = factory.batch(trader, clients, desk.instrument, quantity=1)
    with app.app_context():
        orders = Queue("orders", connection=get_rq_redis())
        idle = [Worker([orders], connection=get_rq_redis(), name=f"idle-{n}") for n in range(2)]
        for worker in idle:  # two more orders workers registered (the burst worker below is the third)
            worker.register_birth()
        enqueue_send(batch.id)
        finished = orders.finished_job_registry
    desk.run_worker()
    with app.app_context():
        for worker in idle:
            worker.register_death()
    with app.app_context():
        assert sorted(finished.get_job_ids()) == [
            f"send-batch-{batch.id}",
            f"send-batch-{batch.id}-1",
            f"send-batch-{batch.id}-2",
        ]
    assert set(statuses(app, batch.id).values()) <= {states.PLACED, states.OPEN, states.COMPLETE}
    assert sorted(ledger_counts(kite, clients).values()) == [1] * 5


def ledger_counts(emulator, clients):
    """What the emulated broker booked for these clients (the server outlives one test)."""
    codes = {c.client_code for c in clients}
    return Counter((e.account, e.tag) for e in emulator.ledger.entries() if e.account in codes)


@pytest.mark.parametrize("fault", ["timeout_after_accept", "drop_after_accept", "error_5xx_after_accept"])
def test_an_unclear_answer_is_resolved_by_tag_not_resent(app, desk, factory, trader, kite, fault):
    clients = [desk.kite_client(f"K{n}", kite) for n in range(3)]
    batch = factory.batch(trader, clients, desk.instrument, quantity=1)
    kite.faults.script("place", fault, "ok", "ok")
    send(desk, batch.id)
    assert set(statuses(app, batch.id).values()) <= {states.PLACED, states.OPEN, states.COMPLETE}
    assert all(n == 1 for n in ledger_counts(kite, clients).values()) and len(ledger_counts(kite, clients)) == 3
    with app.app_context():
        resolved = (
            db.session.execute(sa.select(Order).where(Order.batch_id == batch.id, Order.attempts == 1)).scalars().all()
        )
        assert len(resolved) == 3  # each child was sent exactly once


def test_a_5xx_before_accept_is_provably_absent_and_sent_again(app, desk, factory, trader, kite):
    app.config["SEND_DEADLINE_SECONDS"] = 120  # the re-place comes after ARRIVAL_GRACE: within this deadline
    client = desk.kite_client("K", kite)
    batch = factory.batch(trader, [client], desk.instrument)
    kite.faults.script("place", "error_5xx", "ok")
    send(desk, batch.id)
    assert list(statuses(app, batch.id).values()) == [states.UNKNOWN]  # the send may still arrive
    with app.app_context():
        from datetime import timedelta

        from webapp.timeutil import utcnow

        engine.reconcile(desk.context(), now=utcnow() + engine.ARRIVAL_GRACE + timedelta(seconds=1))
    assert list(statuses(app, batch.id).values())[0] in (states.PLACED, states.COMPLETE)
    assert list(ledger_counts(kite, [client]).values()) == [1]
    with app.app_context():
        assert db.session.execute(sa.select(Order.attempts).where(Order.batch_id == batch.id)).scalar_one() == 2


def test_429_waits_and_retries(app, desk, factory, trader, kite):
    client = desk.kite_client("K", kite)
    batch = factory.batch(trader, [client], desk.instrument)
    kite.faults.script("place", "burst_429", "burst_429", "ok")
    send(desk, batch.id)
    assert list(statuses(app, batch.id).values())[0] in (states.PLACED, states.COMPLETE)
    assert list(ledger_counts(kite, [client]).values()) == [1]


def test_token_expiry_fails_that_client_only(app, desk, factory, trader, kite):
    good, expired = desk.kite_client("Good", kite), desk.kite_client("Expired", kite)
    with app.app_context():
        kite.expire_sessions(db.session.get(type(expired), expired.id).client_code)
    batch = factory.batch(trader, [good, expired], desk.instrument)
    send(desk, batch.id)
    result = statuses(app, batch.id)
    assert result[expired.id] == states.FAILED and result[good.id] in (states.PLACED, states.COMPLETE)
    with app.app_context():
        reason = db.session.execute(sa.select(Order.reason).where(Order.client_id == expired.id)).scalar_one()
        assert reason.startswith("Login needed:")


def test_a_client_whose_secrets_cannot_be_read_fails_alone(app, desk, factory, trader, kite):
    from cryptography.fernet import Fernet

    from webapp.models import Client
    from webapp.vault import Vault

    good, broken = desk.kite_client("Good", kite), desk.kite_client("Broken", kite)
    with app.app_context():  # sealed with a key the desk no longer has
        db.session.get(Client, broken.id).credentials_enc = Vault([Fernet.generate_key().decode()]).encrypt({"a": 1})
        db.session.commit()
    batch = factory.batch(trader, [good, broken], desk.instrument)
    send(desk, batch.id)
    result = statuses(app, batch.id)
    assert result[broken.id] == states.FAILED and result[good.id] in (states.PLACED, states.COMPLETE)
    with app.app_context():
        reason = db.session.execute(sa.select(Order.reason).where(Order.client_id == broken.id)).scalar_one()
        assert "stored broker details could not be read" in reason
    assert list(ledger_counts(kite, [good]).values()) == [1] and ledger_counts(kite, [broken]) == Counter()


def test_a_broker_rejection_is_final_with_its_reason(app, desk, factory, trader, kite):
    client = desk.kite_client("K", kite)
    from decimal import Decimal

    batch = factory.batch(trader, [client], desk.instrument, order_type="LIMIT", price=Decimal("1548.25"))
    send(desk, batch.id)
    assert list(statuses(app, batch.id).values()) == [states.REJECTED]
    assert ledger_counts(kite, [client]) == Counter()


def test_unresolvable_stays_unknown_and_reconcile_finishes_it(app, desk, factory, trader, kite):
    client = desk.kite_client("K", kite)
    batch = factory.batch(trader, [client], desk.instrument)
    kite.faults.script("place", "drop_after_accept")
    kite.faults.script("read", "error_5xx")  # the order book cannot be read just then
    send(desk, batch.id)
    assert list(statuses(app, batch.id).values()) == [states.UNKNOWN]
    with app.app_context():
        assert engine.reconcile(desk.context()) in ({states.PLACED: 1}, {states.COMPLETE: 1}, {states.OPEN: 1})
    assert list(ledger_counts(kite, [client]).values()) == [1]


def test_a_child_another_process_is_sending_is_left_alone(app, desk, factory, trader, kite):
    client = desk.kite_client("K", kite)
    batch = factory.batch(trader, [client], desk.instrument)
    with app.app_context():
        order_id = db.session.execute(sa.select(Order.id).where(Order.batch_id == batch.id)).scalar_one()
        lock = desk.context().redis.lock(f"fanout:lock:child:{order_id}", timeout=5)
        assert lock.acquire(blocking=False)
        try:
            assert engine.send_child(order_id, desk.context()) == "busy"
        finally:
            lock.release()
    assert ledger_counts(kite, [client]) == Counter()


def test_a_slow_accept_is_found_not_sent_twice(app, desk, factory, trader, kite, monkeypatch):
    """The broker books the order after the desk gave up waiting (market.md §3.1): the desk must not
    re-send just because the book did not show it at once."""
    import threading
    import time
    from datetime import timedelta

    from webapp.timeutil import utcnow

    client = desk.kite_client("K", kite)
    batch = factory.batch(trader, [client], desk.instrument)
    original, booked = kite.before_accept, threading.Event()

    def slow_first_place(kind, account):
        if kind == "place" and not booked.is_set():
            time.sleep(1.0)  # queued at the broker's gateway longer than the desk's 0.3 s timeout
            booked.set()
        return original(kind, account)

    monkeypatch.setattr(kite, "before_accept", slow_first_place)
    send(desk, batch.id)
    assert list(statuses(app, batch.id).values()) == [states.UNKNOWN]
    assert booked.wait(5)
    time.sleep(0.2)
    with app.app_context():
        engine.reconcile(desk.context(), now=utcnow() + engine.ARRIVAL_GRACE + timedelta(seconds=1))
    assert list(statuses(app, batch.id).values())[0] in (states.PLACED, states.COMPLETE)
    assert list(ledger_counts(kite, [client]).values()) == [1]

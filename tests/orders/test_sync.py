"""Syncing many clients at once: reads in threads, writes in groups, and background syncs waiting
for batches being sent."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import Order, Position, Trade
from webapp.trading import engine, locks, states, sync


@pytest.fixture
def trader(factory):
    return factory.user("tara", role="trader")


def placed_batch(desk, factory, trader, clients, quantity=5):
    batch = factory.batch(trader, clients, desk.instrument, quantity=quantity)
    with desk.app.app_context():
        assert engine.send_batch(batch.id, desk.context()) == {states.PLACED: len(clients)}
    return batch


def book(app):
    with app.app_context():
        trades = db.session.execute(sa.select(Trade.client_id, sa.func.count()).group_by(Trade.client_id)).all()
        positions = db.session.execute(sa.select(Position.client_id, Position.quantity)).all()
        statuses = set(db.session.execute(sa.select(Order.status)).scalars())
    return dict(trades), dict(positions), statuses


def test_many_clients_are_written_in_groups_and_every_one_is_synced(app, desk, factory, trader, monkeypatch):
    monkeypatch.setattr(sync, "WRITE_GROUP", 3)  # 7 clients: groups of 3, 3 and 1
    clients = [desk.paper_client(f"P{n}") for n in range(7)]
    placed_batch(desk, factory, trader, clients)
    with app.app_context():
        assert sync.sync_clients([c.id for c in clients], desk.context(), full=True) == {c.id for c in clients}
    trades, positions, statuses = book(app)
    assert trades == {c.id: 1 for c in clients} and positions == {c.id: 5 for c in clients}
    assert statuses == {states.COMPLETE}


def test_a_trade_another_process_booked_first_is_not_booked_twice(app, desk, factory, trader, monkeypatch):
    """After this sync has looked up the first client's known trades and before it writes, another
    process syncs that client and commits. The group's commit then conflicts; each client is
    written alone and nothing is doubled."""
    first, second = desk.paper_client("P0"), desk.paper_client("P1")
    placed_batch(desk, factory, trader, [first, second])
    mirror_funds, raced = sync._mirror_funds, []

    def racing(client_id, funds):
        if not raced:
            raced.append(client_id)
            other = threading.Thread(target=lambda: _sync_in_own_context(app, desk, client_id))
            other.start()
            other.join()
        return mirror_funds(client_id, funds)

    monkeypatch.setattr(sync, "_mirror_funds", racing)
    with app.app_context():
        assert sync.sync_clients([first.id, second.id], desk.context(), full=False) == {first.id, second.id}
    trades, positions, statuses = book(app)
    assert trades == {first.id: 1, second.id: 1} and positions == {first.id: 5, second.id: 5}
    assert statuses == {states.COMPLETE}


def _sync_in_own_context(app, desk, client_id):
    with app.app_context():
        assert sync.sync_clients([client_id], desk.context(), full=False) == {client_id}
        db.session.remove()


def test_a_background_sync_waits_for_a_batch_being_sent(app, desk, factory, trader, redis_client):
    client = desk.paper_client("P0")
    placed_batch(desk, factory, trader, [client])
    sending = locks.ChildLocks(redis_client)
    assert sending.acquire([999_999])  # another batch's child, being sent now
    done = threading.Event()

    def background():
        with app.app_context():
            sync.sync_clients([client.id], desk.context(), full=False)
            db.session.remove()
        done.set()

    worker = threading.Thread(target=background)
    worker.start()
    assert not done.wait(0.5)  # holds its reads while the batch is out
    assert book(app)[2] == {states.PLACED}
    sending.release()
    assert done.wait(10)
    worker.join()
    assert book(app)[2] == {states.COMPLETE}


def test_a_lapsed_send_mark_does_not_hold_syncs(redis_client):
    redis_client.zadd(locks.SENDING, {"a-dead-worker": 1.0})  # lapsed long ago
    assert not locks.sends_in_flight(redis_client)
    held = locks.ChildLocks(redis_client)
    held.acquire([1])
    assert locks.sends_in_flight(redis_client)
    assert redis_client.zscore(locks.SENDING, "a-dead-worker") is None  # swept on the next acquire
    held.release()
    assert not locks.sends_in_flight(redis_client)

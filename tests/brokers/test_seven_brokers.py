"""Issue 16's "done when": a desk with a client at every real broker (Kite, Motilal, ShareKhan,
Angel One, Kotak Neo, Upstox, Dhan), each behind its own emulator on loopback, plus a paper client,
takes ONE ticket (the trader's form POST) and then ONE exit across every holder (the exit page),
through the real order path: batch → send job run by a worker (SimpleWorker, burst) → each adapter
→ each emulator. Every child is acknowledged with the order id the broker's ledger has; the sync
brings the fills into desk positions, and the exit leaves every position flat. Counted at each
emulator's ledger: exactly one entry order and one exit order per client.

All seven must be there (tests/emulators/desks.py says why one is missing).
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
import requests
import sqlalchemy as sa
from rq import Queue, SimpleWorker

from jobs.context import use_app
from tests.emulators import desks
from tests.emulators.common import EmulatorServer, FaultPlan
from webapp.brokers.paper import ensure_account
from webapp.extensions import db, get_rq_redis
from webapp.models import Batch, Instrument, Order, Position
from webapp.trading import states, sync
from webapp.trading.context import build_context

ACKED = states.AT_BROKER | {states.COMPLETE}
TICKET = "00000000-0000-4000-8000-000000000716"
INFY_ISIN = "INE009A01021"  # Upstox keys equities by NSE_EQ|ISIN
SYNC_ATTEMPTS = 5


@pytest.fixture(scope="module")
def servers():
    """One emulator per available broker, for the module: name -> (EmulatedBroker, server)."""
    names = desks.available()
    started = {}
    try:
        for name in names:
            broker = desks.emulated(name)
            started[name] = (broker, EmulatorServer(broker.emulator(FaultPlan(hang_seconds=1.0))).start())
        yield started
    finally:
        for _, server in started.values():
            server.stop()


def run_worker(app) -> None:
    """Every queued job (orders, then sync and default), in this process, as `rq worker --burst`."""
    use_app(app)
    with app.app_context():
        connection = get_rq_redis()
        queues = [Queue(name, connection=connection) for name in ("orders", "sync", "default")]
        SimpleWorker(queues, connection=connection).work(burst=True)


def sync_everyone(app, clients) -> None:
    """The sync job for every client. A broker that answers 'rate limited' (the worker's own sync
    job has just read it) is read again a second later, as the next sync would."""
    unread = list(clients)
    for attempt in range(SYNC_ATTEMPTS):
        if attempt:
            time.sleep(1.1)  # past a per-second read window
        with app.app_context():
            ctx = build_context(app)
            unread = [c for c in unread if not sync.sync_client(c.id, ctx)]
        if not unread:
            return
    raise AssertionError(f"the sync could not read {[c.broker for c in unread]}")


def children(app, batch_id: int) -> dict[int, Order]:
    with app.app_context():
        rows = db.session.execute(sa.select(Order).where(Order.batch_id == batch_id)).scalars().all()
        for row in rows:
            db.session.expunge(row)
        return {row.client_id: row for row in rows}


def positions(app) -> dict[int, int]:
    with app.app_context():
        return dict(db.session.execute(sa.select(Position.client_id, Position.quantity)).all())


def newest_batch(app) -> Batch:
    with app.app_context():
        batch = db.session.execute(sa.select(Batch).order_by(Batch.id.desc())).scalars().first()
        db.session.expunge(batch)
        return batch


def check_acknowledged(app, batch_id: int, clients, ledgers) -> dict[int, Order]:
    """Every child at the broker with the order id the broker booked for that client and tag."""
    found = children(app, batch_id)
    assert set(found) == {c.id for c in clients}
    problems = []
    for client in clients:
        child = found[client.id]
        if child.status not in ACKED or not child.broker_order_id:
            problems.append(f"{client.broker}: {child.status} {child.reason!r}")
            continue
        if client.broker == "paper":
            continue
        booked = [e for e in ledgers[client.broker]() if e.order_id == child.broker_order_id]
        if len(booked) != 1 or booked[0].account != client.client_code:
            problems.append(f"{client.broker}: child {child.broker_order_id} is not one ledger entry: {booked}")
        elif booked[0].tag is not None and booked[0].tag != child.tag:
            problems.append(f"{client.broker}: booked with tag {booked[0].tag}, child tag {child.tag}")
    assert not problems, "\n".join(problems)
    return found


def test_one_ticket_and_one_exit_across_every_broker(app, client, auth, factory, servers):
    seven = {"kite", "motilal", "sharekhan", "angel", "kotak", "upstox", "dhan"}
    assert seven <= set(servers), {name: desks.missing(name) for name in seven - set(servers)}
    skipped = {name: desks.missing(name) for name in desks.ORDER if name not in servers}
    print(f"brokers on the desk: {sorted(servers)} + paper; left out: {skipped}")
    for broker, server in servers.values():
        app.config.update(broker.settings(server.url))
        server.app.faults = FaultPlan(hang_seconds=1.0)
    app.config.update(BROKER_TIMEOUT_SECONDS=5)
    instrument = factory.instrument("INFY", 1594, price="1512.40", tick="0.10", band="10")
    with app.app_context():
        db.session.get(Instrument, instrument.id).isin = INFY_ISIN
        db.session.commit()

    clients = []
    with requests.Session() as http:
        for name, (broker, server) in servers.items():
            clients.append(
                desks.store_client(app, factory, f"{name} client", name, broker.open_account(server.url, http))
            )
    paper = factory.client("paper client", broker="paper")
    with app.app_context():
        ensure_account(paper.client_code)
    clients.append(paper)
    ledgers = {name: server.app.ledger.entries for name, (_, server) in servers.items()}
    before = {name: len(entries()) for name, entries in ledgers.items()}
    factory.user("tara", role="trader", clients=clients)
    auth.login("tara")

    # ONE ticket: a MARKET BUY of one share for every client
    assert f'name="qty_{clients[0].id}"' in client.get(f"/orders/new?instrument_id={instrument.id}").data.decode()
    form = {
        "ticket_id": TICKET,
        "instrument_id": instrument.id,
        "action": "BUY",
        "product": "MIS",
        "order_type": "MARKET",
        "validity": "DAY",
        **{f"qty_{c.id}": "1" for c in clients},
    }
    posted = client.post("/orders/new", data=form)
    assert posted.status_code == 302, posted.data.decode()[:500]
    entry = newest_batch(app)
    run_worker(app)
    bought = check_acknowledged(app, entry.id, clients, ledgers)
    assert all(child.side == "BUY" for child in bought.values())
    sync_everyone(app, clients)
    assert positions(app) == {c.id: 1 for c in clients}, "every fill reached the desk's positions"

    # ONE exit across every holder: the exit page, 100 %, every holder ticked
    page = client.get(f"/exits/{instrument.id}").data.decode()
    keys = [f"{c.id}-{instrument.id}-MIS" for c in clients]
    assert all(f'name="pick_{key}"' in page for key in keys)
    posted = client.post(f"/exits/{instrument.id}", data={"share": "100", **{f"pick_{key}": "1" for key in keys}})
    assert posted.status_code == 302, posted.data.decode()[:500]
    exit_batch = newest_batch(app)
    assert exit_batch.id != entry.id and exit_batch.kind == "exit"
    run_worker(app)
    sold = check_acknowledged(app, exit_batch.id, clients, ledgers)
    assert {(child.side, child.quantity) for child in sold.values()} == {("SELL", 1)}
    sync_everyone(app, clients)
    assert positions(app) == {c.id: 0 for c in clients}, "every position is flat"

    # at each broker: exactly one entry order and one exit order for its client, the children's
    for c in clients:
        if c.broker == "paper":
            continue
        entries = ledgers[c.broker]()[before[c.broker] :]
        per_account = Counter(e.account for e in entries)
        assert per_account == {c.client_code: 2}, f"{c.broker}: {per_account}"
        assert [e.order_id for e in entries] == [bought[c.id].broker_order_id, sold[c.id].broker_order_id]

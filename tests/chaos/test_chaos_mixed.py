"""The chaos test on a mixed desk (issue 16, "Proven"): clients at several brokers at once, Kite
and every tag-keeping broker present (Motilal, Angel One, Kotak Neo, Upstox, Dhan as they land;
tests/emulators/desks.py), CLIENTS_PER_BROKER at each, every broker behind its own emulator with
test_chaos's fault rates (timeouts and dropped connections after accepting, 5xx before and after,
429s; lighter faults on reads). The same real `orders` worker processes send six tickets, the same
seeded kills hit send jobs mid-flight and idle workers, the whole fleet dies, a new one retries, and
the reconcile cron finishes (test_chaos's helpers run it all; see its docstring for the two things
that stand in for waiting). Counted at each broker's own ledger:

- every (broker, account, tag) was booked at most once, and nothing was booked that no child stands for;
- every child is at its broker with the order id that broker's ledger has, or definitively
  REJECTED/FAILED with a reason (and then not booked, unless the broker booked and rejected it and
  the child carries that id; an emulator may also give an RMS-rejected order an id and leave it off
  its ledger of accepted orders, as Dhan's does: then nothing may be booked under the child's tag);
- none is left NEW, SUBMITTING or UNKNOWN; no send job failed.

ShareKhan sends no tag (its ledger has none to count a (client, tag) by), so it is not on this desk;
tests/brokers/test_seven_brokers.py has it. FANOUT_CHAOS_SEED replays another schedule.
"""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest
import redis as redis_lib
import requests
import sqlalchemy as sa

from tests.chaos.test_chaos import (
    BATCHES,
    BOOKED,
    PLACE_FAULTS,
    READ_FAULTS,
    SEED,
    SEND_DEADLINE,
    WORKERS,
    ChaosPlan,
    Fleet,
    Phases,
    _tail,
    chaos,
    reconcile_all,
    restart,
    worker_env,
)
from tests.emulators import desks
from tests.emulators.common import EmulatorServer
from webapp.extensions import db
from webapp.models import Client, Instrument, Order
from webapp.trading import states, sync
from webapp.trading.context import build_context

pytestmark = pytest.mark.slow

BROKERS = ("kite", "motilal", "angel", "kotak", "upstox", "dhan")  # the ones that tag their orders
CLIENTS_PER_BROKER = 5
POOR_PER_BROKER = 1  # too little cash: a broker's RMS books and rejects it, or refuses it outright
INFY_ISIN = "INE009A01021"
SYNC_SECONDS = 45.0  # bounds a failing run; a passing one takes a fraction


def sync_every_client(app, clients) -> None:
    """The sync cron (jobs.orders.sync_all_clients: every client's books read concurrently) until
    each client has been read once, so the brokers' verdicts (fills, RMS rejections) reach the
    children. Reads still meet faults; a client whose read failed is read again a second later."""
    deadline = time.monotonic() + SYNC_SECONDS
    pending = {c.id for c in clients}
    while pending and time.monotonic() < deadline:
        with app.app_context():
            pending -= sync.sync_clients(sorted(pending), build_context(app), full=True)
        if pending:
            time.sleep(1.1)  # past every broker's per-second read window
    assert not pending, f"{len(pending)} clients could not be synced in {SYNC_SECONDS} s"


def mixed_children(app) -> list:
    with app.app_context():
        return db.session.execute(
            sa.select(
                Order.id,
                Client.broker,
                Client.client_code,
                Order.tag,
                Order.status,
                Order.broker_order_id,
                Order.reason,
                Order.attempts,
            )
            .join(Client, Order.client_id == Client.id)
            .order_by(Order.id)
        ).all()


def test_a_mixed_desk_with_faulty_brokers_and_killed_workers_places_every_child_once(app, factory, tmp_path):
    names = desks.available(BROKERS)
    assert names == list(BROKERS), {name: desks.missing(name) for name in BROKERS if name not in names}
    rng = random.Random(SEED)
    report: dict[str, object] = {"seed": SEED, "brokers": names, "phases": {}}
    clients_count = CLIENTS_PER_BROKER * len(names)
    servers: dict[str, EmulatorServer] = {}
    log_path = tmp_path / "workers.log"
    try:
        settings: dict[str, str] = {}
        for i, name in enumerate(names):
            broker = desks.emulated(name)
            plan = ChaosPlan(seed=SEED + i, hang_seconds=2.0, rates=PLACE_FAULTS, read_rates=READ_FAULTS)
            servers[name] = EmulatorServer(broker.emulator(plan)).start()
            settings.update(broker.settings(servers[name].url))
        app.config.update(settings, BROKER_TIMEOUT_SECONDS=1, SEND_DEADLINE_SECONDS=SEND_DEADLINE)
        trader = factory.user("tara", role="trader")
        instrument = factory.instrument("INFY", 1594, price="1512.40", tick="0.10", band="10")
        with app.app_context():
            db.session.get(Instrument, instrument.id).isin = INFY_ISIN
            db.session.commit()
        clients = []
        with requests.Session() as http:
            for name in names:
                broker, url = desks.emulated(name), servers[name].url
                for n in range(CLIENTS_PER_BROKER):
                    cash = "100" if n < POOR_PER_BROKER else "1000000"
                    account = broker.open_account(url, http, cash=cash)
                    clients.append(desks.store_client(app, factory, f"{name}-{n:02d}", name, account))
        kite_url = servers["kite"].url
        with (
            open(log_path, "ab") as log,
            redis_lib.Redis.from_url(app.config["REDIS_URL"]) as redis,
        ):
            fleet = Fleet(worker_env(app, kite_url, tmp_path, settings), log, redis)
            phase = Phases(report)
            try:
                for _ in range(WORKERS):
                    fleet.start()
                with phase("chaos"):
                    job_ids = chaos(app, factory, trader, clients, instrument, fleet, rng, report)
                with phase("restart"):
                    job_ids += restart(app, fleet, job_ids, rng, report)
                with phase("reconcile"):
                    reconcile_all(app, report)
                with phase("sync"):
                    sync_every_client(app, clients)
                report["injected"] = {name: dict(server.app.faults.injected) for name, server in servers.items()}
                check_against_ledgers(app, servers, clients_count, report)
            except BaseException:
                fleet.stop()
                print(f"mixed chaos report: {report}\n--- worker log (tail) ---\n{_tail(log_path)}")
                raise
            finally:
                fleet.stop()
    finally:
        for server in servers.values():
            server.stop()
    print(f"mixed chaos report: {report}")


def check_against_ledgers(app, servers: dict[str, EmulatorServer], clients_count: int, report) -> None:
    booked: Counter[tuple[str, str, str | None]] = Counter()
    order_ids: dict[tuple[str, str, str | None], str] = {}
    for name, server in servers.items():
        for e in server.app.ledger.entries():
            booked[(name, e.account, e.tag)] += 1
            order_ids[(name, e.account, e.tag)] = e.order_id
    rows = mixed_children(app)
    report["final"] = {name: dict(Counter(r.status for r in rows if r.broker == name)) for name in servers}
    report["failed"] = [
        f"{r.broker} {r.id}: {r.reason} (attempts={r.attempts})" for r in rows if r.status == states.FAILED
    ]
    report["booked"] = {name: sum(n for key, n in booked.items() if key[0] == name) for name in servers}

    duplicates = {key: n for key, n in booked.items() if n > 1}
    assert not duplicates, f"booked more than once at a broker: {duplicates}"
    ours = {(r.broker, r.client_code, r.tag) for r in rows}
    assert set(booked) <= ours, f"booked with no child behind it: {set(booked) - ours}"
    assert len(rows) == clients_count * BATCHES

    problems = []
    for r in rows:
        key = (r.broker, r.client_code, r.tag)
        if r.status in states.IN_FLIGHT:
            problems.append(f"{r.broker} child {r.id} left {r.status}: {r.reason!r}")
        elif r.status in BOOKED:
            if order_ids.get(key) != r.broker_order_id or not r.broker_order_id:
                problems.append(
                    f"{r.broker} child {r.id} {r.status} as {r.broker_order_id} but the ledger has {order_ids.get(key)}"
                )
        elif r.status in (states.REJECTED, states.FAILED):
            if not r.reason:
                problems.append(f"{r.broker} child {r.id} {r.status} with no reason")
            if r.broker_order_id and key in booked and order_ids[key] != r.broker_order_id:
                problems.append(f"{r.broker} child {r.id} rejected as {r.broker_order_id}, ledger {order_ids.get(key)}")
            if not r.broker_order_id and key in booked:
                problems.append(f"{r.broker} child {r.id} {r.status} ({r.reason!r}) but booked as {order_ids[key]}")
        else:
            problems.append(f"{r.broker} child {r.id} in unexpected state {r.status}")
    assert not problems, "\n".join(problems)

    # every broker was hit by unclear answers and its children still reached it; the run re-sent
    for name, server in servers.items():
        injected = server.app.faults.injected
        unclear = sum(
            injected[("place", f)] for f in ("timeout_after_accept", "drop_after_accept", "error_5xx_after_accept")
        )
        assert unclear >= 1, f"{name}: no unclear answer injected: {injected}"
        assert report["booked"][name] >= 1, f"{name}: nothing booked"
    assert any(r.attempts > 1 for r in rows)
    assert sum(1 for r in rows if r.broker == "kite" and r.status == states.REJECTED and r.broker_order_id) >= (
        POOR_PER_BROKER
    ), "Kite's RMS books and rejects the poor client"

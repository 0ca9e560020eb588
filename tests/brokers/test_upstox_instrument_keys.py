"""Upstox instruments the desk knows without an ISIN (Kite's master has none): the adapter names them
by the instrument key Upstox's daily instrument file gives their exchange token (webapp/brokers/upstox/
keys.py), fetched once per IST day through the adapter's own HTTP path. Real HTTP against the emulator,
whose file lists every sample instrument (a made-up ISIN where the sample has none)."""

from __future__ import annotations

import gzip
import json
import threading
from dataclasses import replace
from datetime import date, datetime, time, timedelta
from decimal import Decimal

import pytest
import requests

from tests.brokers.upstox_fixtures import order, ref, upstox, upstox_server  # noqa: F401
from tests.emulators.upstox_book import made_up_isin
from webapp.brokers.base import InstrumentRef, InvalidInput, Unavailable
from webapp.brokers.upstox import keys
from webapp.timeutil import IST, UTC

NSE_FILE = "/market-quote/instruments/exchange/NSE.json.gz"
BARE = dict(isin=None)  # what an order or ref built from Kite's master carries


def bare_ref(symbol: str) -> InstrumentRef:
    return InstrumentRef("NSE", symbol, ref(symbol).exchange_token, ref(symbol).instrument_token, None)


def bare_order(symbol: str, **kwargs):
    return order(symbol, **{**kwargs, **BARE})


def file_fetches(env) -> int:
    return sum(1 for _, p in env.emulator.requests if p == NSE_FILE)


def places(env) -> int:
    return sum(1 for _, p in env.emulator.requests if p == "/v3/order/place")


@pytest.fixture(autouse=True)
def fresh_cache():
    keys.forget()
    yield
    keys.forget()


def test_the_emulators_file_lists_every_sample_instrument_with_a_made_up_isin_where_none_is_known(upstox):
    with requests.Session() as http:
        records = json.loads(gzip.decompress(http.get(upstox.url + NSE_FILE, timeout=5).content))
    by_symbol = {r["trading_symbol"]: r for r in records}
    assert by_symbol["INFY"]["instrument_key"] == "NSE_EQ|INE009A01021"  # a real ISIN stays
    wipro = upstox.emulator.instrument("WIPRO")
    assert wipro.isin == made_up_isin(3787) == by_symbol["WIPRO"]["isin"] and len(wipro.isin) == 12
    assert (
        by_symbol["WIPRO"]["instrument_key"] == f"NSE_EQ|{wipro.isin}"
        and by_symbol["WIPRO"]["exchange_token"] == "3787"
    )
    assert "NIFTY 50" not in by_symbol  # indices are not cash instruments
    assert made_up_isin(1594) != made_up_isin(3787) and made_up_isin(3787) == made_up_isin(3787)


def test_an_order_without_an_isin_is_placed_with_the_files_key(upstox):
    order_id = upstox.broker.place(bare_order("WIPRO", quantity=3, tag="nokey1"))
    entry = upstox.emulator.ledger.entries()[-1]
    assert entry.payload["instrument_token"] == upstox.emulator.instrument("WIPRO").key
    assert (entry.order_id, entry.tag) == (order_id, "nokey1")
    assert upstox.broker.order(order_id).tradingsymbol == "WIPRO"


def test_margin_quotes_and_candles_without_an_isin_use_the_files_key(upstox):
    upstox.emulator.set_price("WIPRO", "247.15")
    quotes = upstox.broker.quotes([bare_ref("WIPRO"), ref("INFY"), bare_ref("TITAN")])
    assert set(quotes) == {"NSE:WIPRO", "NSE:INFY", "NSE:TITAN"}
    assert quotes["NSE:WIPRO"].last_price == Decimal("247.15")
    assert upstox.broker.margin_required([bare_order("WIPRO", quantity=4)]) > 0
    day = date(2026, 3, 2)
    bars = upstox.broker.historical_candles(
        bare_ref("WIPRO"),
        15,
        datetime.combine(day, time(9, 15), IST).astimezone(UTC),
        datetime.combine(day, time(15, 30), IST).astimezone(UTC),
    )
    assert bars and all(isinstance(b.open, Decimal) for b in bars)
    key = upstox.emulator.instrument("WIPRO").key
    assert any(p.startswith("/v3/historical-candle/" + key) for _, p in upstox.emulator.requests)


def test_the_file_is_fetched_once_for_many_calls_and_again_the_next_ist_day(upstox, monkeypatch):
    before = file_fetches(upstox)
    for symbol in ("WIPRO", "TITAN", "MARUTI"):
        upstox.broker.place(bare_order(symbol))
        upstox.broker.quotes([bare_ref(symbol)])
    other = upstox.new_broker(creds=upstox.emulator.add_account())  # another client, the same process
    other.quotes([bare_ref("LT")])
    assert file_fetches(upstox) == before + 1
    upstox.broker.quotes([ref("INFY")])  # an ISIN is enough: no file needed
    assert file_fetches(upstox) == before + 1

    tomorrow = keys.today() + timedelta(days=1)
    monkeypatch.setattr(keys, "today", lambda: tomorrow)
    upstox.broker.quotes([bare_ref("WIPRO")])
    upstox.broker.quotes([bare_ref("TITAN")])
    assert file_fetches(upstox) == before + 2


def test_concurrent_first_calls_share_one_fetch(upstox):
    before = file_fetches(upstox)
    results: list[set[str]] = []
    brokers = [upstox.new_broker() for _ in range(6)]
    threads = [threading.Thread(target=lambda b=b: results.append(set(b.quotes([bare_ref("WIPRO")])))) for b in brokers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == [{"NSE:WIPRO"}] * 6
    assert file_fetches(upstox) == before + 1


@pytest.mark.parametrize(
    ("status", "body"),
    [(500, b'{"status":"error"}'), (200, gzip.compress(b"not json")), (404, b"")],
)
def test_a_failed_fetch_is_unavailable_nothing_is_sent_and_the_next_call_fetches_again(upstox, status, body):
    before, placed = file_fetches(upstox), places(upstox)
    upstox.emulator.script_response("instruments", status, body, content_type="application/gzip")
    with pytest.raises(Unavailable, match="instrument file"):
        upstox.broker.place(bare_order("WIPRO", tag="failfile"))
    assert places(upstox) == placed and upstox.emulator.ledger.count(upstox.user_id, "failfile") == 0
    upstox.broker.place(bare_order("WIPRO", tag="failfile"))  # not cached: fetched again, and it works
    assert file_fetches(upstox) == before + 2
    assert upstox.emulator.ledger.count(upstox.user_id, "failfile") == 1


def test_an_unreachable_file_is_unavailable_too(upstox):
    broker = upstox.new_broker(assets_url="http://127.0.0.1:9", timeout=0.5)
    with pytest.raises(Unavailable, match="did not download"):
        broker.quotes([bare_ref("WIPRO")])
    assert set(upstox.broker.quotes([bare_ref("WIPRO")])) == {"NSE:WIPRO"}  # its own URL: unaffected


def test_an_instrument_upstox_does_not_list_is_invalid_input_and_never_sent(upstox):
    placed = places(upstox)
    unlisted = replace(bare_order("WIPRO"), exchange_token=999999)
    with pytest.raises(InvalidInput, match="does not list NSE exchange token 999999"):
        upstox.broker.place(unlisted)
    with pytest.raises(InvalidInput, match="does not list"):
        upstox.broker.margin_required([unlisted])
    bse = replace(bare_order("WIPRO"), exchange="BSE", exchange_token=507685)  # the emulator's BSE file is empty
    with pytest.raises(InvalidInput, match="does not list BSE"):
        upstox.broker.place(bse)
    with pytest.raises(InvalidInput, match="not NFO"):
        upstox.broker.place(replace(bare_order("WIPRO"), exchange="NFO"))
    assert places(upstox) == placed
    nowhere = InstrumentRef("NSE", "NOSUCH", 999999)
    assert set(upstox.broker.quotes([nowhere, bare_ref("WIPRO")])) == {"NSE:WIPRO"}


def test_the_desk_places_an_order_for_an_instrument_from_kites_master(app, factory, upstox_server):
    """Through the order engine: the desk's instrument has no ISIN (as Kite's dump gives it); setting
    UPSTOX_API_URL is all the desk needs, and Upstox gets the file's key."""
    import sqlalchemy as sa

    from tests.brokers.upstox_fixtures import API_URL_SETTING, desk_account
    from webapp.extensions import db
    from webapp.models import Client, Order
    from webapp.trading import engine, states
    from webapp.trading.context import build_context
    from webapp.trading.sessions import store_session
    from webapp.vault import current_vault

    emulator, server = upstox_server
    app.config.update({API_URL_SETTING: server.url})
    instrument = factory.instrument("WIPRO", 3787, price="245.37", tick="0.01", band="10")
    trader = factory.user("tina", role="trader")
    code, credentials, session = desk_account(emulator.add_account())
    client = factory.client("Upstox kite master", broker="upstox", code=code, credentials=credentials)
    with app.app_context():
        assert db.session.get(type(instrument), instrument.id).isin in (None, "")
        store_session(db.session.get(Client, client.id), session, current_vault())
        db.session.commit()
    batch = factory.batch(trader, [client], instrument, quantity=2)
    with app.app_context():
        engine.send_batch(batch.id, build_context(app))
        (row,) = db.session.execute(sa.select(Order).where(Order.batch_id == batch.id)).scalars().all()
        assert row.status in {states.PLACED, states.OPEN, states.COMPLETE} and row.broker_order_id
    (entry,) = [e for e in emulator.ledger.entries() if e.account == code]
    assert entry.payload["instrument_token"] == emulator.instrument("WIPRO").key

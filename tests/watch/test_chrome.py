"""The page chrome's live parts: its socket's spans (own ids, with the move), the header's index
tickers from the master through the simulator and the feed's subscriptions."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

from tests.live.test_fragment_targets import parse
from tests.watch.conftest import make_index
from webapp.brokers.base import Quote
from webapp.extensions import db, get_redis
from webapp.feed import fragments
from webapp.feed.hub import Subscriber
from webapp.instruments.master import load_master_text
from webapp.marketdata.simulator import MarketSimulator, static_quote
from webapp.marketdata.store import TICKS_CHANNEL, write_quotes
from webapp.marketfeed.feed import wanted_tokens
from webapp.models import Instrument

HX = {"HX-Request": "true"}
COMMON = dict(user_id=1, role="admin", client_ids=frozenset(), target=None)


def tick(prices: dict[int, str], closes: dict[int, str] | None = None):
    """Quotes written the feed's way; returns the TICKS_CHANNEL message the hub would receive."""
    redis = get_redis()
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(TICKS_CHANNEL)
    pubsub.get_message(timeout=1)
    closes = closes or {}
    write_quotes(
        redis,
        {
            t: Quote("NSE", "X", Decimal(p), close=Decimal(closes[t]) if t in closes else None)
            for t, p in prices.items()
        },
    )
    message = pubsub.get_message(timeout=5)
    pubsub.close()
    assert message is not None
    return message["data"]


def test_a_chrome_socket_gets_its_own_spans_with_the_move_and_a_page_its_ltp(app, factory):
    infy = factory.instrument("INFY", 1594, price="1548.20")
    nifty = make_index(app)
    t, n = infy.instrument_token, nifty.instrument_token
    chrome = Subscriber(id=1, page="chrome", tokens={t, n}, **COMMON)
    page = Subscriber(id=2, page="instrument", tokens={t}, **COMMON)
    with app.test_request_context():
        data = tick({t: "1551.00", n: "26100.00"}, closes={t: "1540.00"})
        sent = dict((sub.id, html) for sub, html in fragments.for_ticks(data, [chrome, page]))
    assert parse(sent[2]).targets == [f"ltp-{t}"]  # the page's own span, nothing of the chrome's
    assert sorted(parse(sent[1]).targets) == sorted([f"mw-{t}", f"mw-{n}", f"ix-{n}"])
    # INFY against the quote's close (1540.00); the index has none in its quote: the master's reference
    assert "+11.00" in sent[1] and "+0.71%" in sent[1] and "q-up" in sent[1]
    assert "-86.45" in sent[1] and "-0.33%" in sent[1] and "q-down" in sent[1]


def test_a_chrome_socket_following_nothing_ticked_gets_nothing(app, factory):
    infy = factory.instrument("INFY", 1594, price="1548.20")
    chrome = Subscriber(id=1, page="chrome", tokens={999}, **COMMON)
    with app.test_request_context():
        assert fragments.for_ticks(tick({infy.instrument_token: "1551.00"}), [chrome]) == []


def test_every_chrome_fragment_targets_an_id_the_page_has(app, client, auth, factory):
    infy = factory.instrument("INFY", 1594, price="1548.20")
    nifty = make_index(app)
    make_index(app, "NIFTY BANK", 260105, "59288.70")
    factory.user("tara")
    auth.login("tara")
    client.post("/instruments/watch/add", data={"instrument_id": str(infy.id), "list": "1"}, headers=HX)
    client.post("/instruments/watch/add", data={"instrument_id": str(nifty.id), "list": "1"}, headers=HX)
    html = client.get(f"/instruments/{infy.id}").get_data(as_text=True)  # a page with its own ltp span too
    ids = parse(html).ids
    assert {f"ltp-{infy.instrument_token}", f"mw-{infy.instrument_token}", "ix-260105", "ix-256265"} <= ids
    assert "page=chrome&amp;tokens=" in html
    tokens = {infy.instrument_token, 256265, 260105}
    chrome = Subscriber(id=1, page="chrome", tokens=tokens, **COMMON)
    with app.test_request_context():
        data = tick({infy.instrument_token: "1549.00", 256265: "26190.00", 260105: "59000.00"})
        sent = [fragments.snapshot(chrome)] + [h for _, h in fragments.for_ticks(data, [chrome])]
    targets = [target for h in sent for target in parse(h).targets]
    assert len(targets) >= 8  # the snapshot's and the tick's spans, and the chip
    # the socket's tokens do not say which are the list's: a header index off the list gets a market
    # watch span too, which live.js drops (no element has its id); everything else lands
    assert set(targets) - ids == {"mw-260105"}


def test_the_feed_chip_starts_hidden_and_hidden_beats_the_chip_style(app, client, auth, factory):
    factory.user("tara")
    auth.login("tara")
    html = client.get("/").get_data(as_text=True)
    assert '<span id="feed-state" class="chip chip-muted" hidden' in html
    css = (Path(app.static_folder) / "css" / "watch.css").read_text()
    assert "[hidden] { display: none !important; }" in css


def test_the_header_shows_the_index_tickers_from_the_master(app, client, auth, factory):
    make_index(app)
    make_index(app, "NIFTY BANK", 260105, "59288.70")
    factory.user("tara")
    auth.login("tara")
    html = client.get("/").get_data(as_text=True)
    assert html.index('id="ix-256265"') < html.index('id="ix-260105"')  # NIFTY 50 first
    assert "26,186.45" in html and "q-stale" in html  # no tick yet: the reference price, marked


KITE_HEADER = (
    "instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,tick_size,lot_size,"
    "instrument_type,segment,exchange\n"
)


def test_kite_index_rows_load_as_untradable_indices(app):
    text = KITE_HEADER + (
        "256265,1001,NIFTY 50,NIFTY 50,0,,0,0,0,EQ,INDICES,NSE\n"
        "260105,1016,NIFTY BANK,NIFTY BANK,59288.70,,0,,0,EQ,INDICES,NSE\n"
        "408065,1594,INFY,INFOSYS,1548.20,,0,0,1,EQ,NSE,NSE\n"  # a stock still needs its tick
    )
    with app.app_context():
        report = load_master_text(text)
        db.session.commit()
        assert report.created == 2 and len(report.errors) == 1 and "tick_size" in report.errors[0]
        rows = db.session.execute(sa.select(Instrument).order_by(Instrument.instrument_token)).scalars().all()
        assert [(i.tradingsymbol, i.segment, i.tick_size, i.lot_size) for i in rows] == [
            ("NIFTY 50", "INDICES", Decimal("0.05"), 1),
            ("NIFTY BANK", "INDICES", Decimal("0.05"), 1),
        ]


def test_the_sample_master_has_both_indices_with_kites_tokens(app, runner):
    from tests.test_instruments import SAMPLE

    runner.invoke(args=["instruments", "load", str(SAMPLE)])
    with app.app_context():
        found = db.session.execute(
            sa.select(Instrument.tradingsymbol, Instrument.instrument_token, Instrument.segment).where(
                Instrument.segment == "INDICES"
            )
        ).all()
    assert sorted(found) == [("NIFTY 50", 256265, "INDICES"), ("NIFTY BANK", 260105, "INDICES")]


def test_the_simulator_moves_an_index_with_no_book_and_no_volume(app):
    nifty = make_index(app)
    stock = Instrument(
        instrument_token=408065,
        exchange_token=1594,
        exchange="NSE",
        tradingsymbol="INFY",
        segment="NSE",
        tick_size=Decimal("0.10"),
        lot_size=1,
        last_price=Decimal("1548.20"),
    )
    simulator = MarketSimulator([nifty, stock], seed=7)
    now = datetime(2026, 12, 4, 4, 0, tzinfo=UTC)
    seen = set()
    for _ in range(30):
        quotes = simulator.step_by_token(now)
        index, equity = quotes[nifty.instrument_token], quotes[408065]
        assert index.bids == () and index.asks == () and index.volume == 0
        assert equity.bids and equity.asks
        assert index.close == Decimal("26186.45") and (index.last_price / Decimal("0.05")) % 1 == 0
        seen.add(index.last_price)
    assert len(seen) > 5  # it moves
    assert static_quote(nifty).bids == () and static_quote(stock).bids


def test_the_feed_always_subscribes_the_header_indices(app, factory):
    make_index(app)
    make_index(app, "NIFTY BANK", 260105, "59288.70")
    make_index(app, "NIFTY IT", 259849, "38000.00")  # an index nobody shows is not followed
    factory.instrument("INFY", 1594)
    with app.app_context():
        assert wanted_tokens(get_redis()) == {256265, 260105}

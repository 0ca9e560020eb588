"""Repricing without a fresh tick: the broker's quote API (the Kite emulator answers), else the last
known price; either way the mark is stale, with its age on the client page."""

from datetime import datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa

from jobs.context import use_app
from webapp.brokers.base import Quote
from webapp.extensions import db, get_redis
from webapp.marketdata.store import quote_key, write_quotes
from webapp.models import Position
from webapp.timeutil import IST, as_utc, utcnow
from webapp.trading.pnl import mark_to_market
from webapp.trading.quote_fallback import ASK_EVERY_SECONDS, ASKED_KEY, BrokerQuotes
from webapp.vault import current_vault

MARKET_OPEN = datetime(2026, 11, 18, 11, 0, tzinfo=IST)  # a Wednesday, 11:00 IST
AFTER_CLOSE = datetime(2026, 11, 18, 17, 0, tzinfo=IST)


def hold(app, client, instrument, quantity=10, cost="15000.00"):
    with app.app_context():
        db.session.add(
            Position(
                client_id=client.id,
                instrument_id=instrument.id,
                product="MIS",
                quantity=quantity,
                cost=Decimal(cost),
                average_price=Decimal(cost) / quantity,
            )
        )
        db.session.commit()


def position(app, instrument):
    with app.app_context():
        return db.session.execute(sa.select(Position).where(Position.instrument_id == instrument.id)).scalar_one()


def fallback(app):
    return BrokerQuotes(app.config, current_vault(), get_redis())


def test_a_position_without_a_tick_is_marked_at_the_brokers_quote_by_the_job(app, desk, factory, kite):
    client = desk.kite_client("K", kite)
    hold(app, client, desk.instrument)
    kite.set_price("INFY", "1601.50")  # the master says 1548.20; nothing in Redis
    from jobs.market import reprice

    use_app(app)
    assert reprice() == 1
    marked = position(app, desk.instrument)
    assert (marked.last_price, marked.unrealized_pnl, marked.price_stale) == (
        Decimal("1601.50"),
        Decimal("16015.00") - Decimal("15000.00"),
        True,
    )
    assert marked.price_at is not None


def test_an_old_tick_in_market_hours_is_replaced_by_the_quote(app, desk, factory, kite):
    client = desk.kite_client("K", kite)
    hold(app, client, desk.instrument)
    kite.set_price("INFY", "1601.50")
    with app.app_context():
        old = as_utc(MARKET_OPEN) - timedelta(minutes=5)
        write_quotes(
            get_redis(), {desk.instrument.instrument_token: Quote("NSE", "INFY", Decimal("1590.00"), timestamp=old)}
        )
        mark_to_market(
            get_redis(), fallback=fallback(app), now=as_utc(AFTER_CLOSE)
        )  # after hours: the last tick stands
        marked = db.session.execute(sa.select(Position)).scalar_one()
        assert (marked.last_price, marked.price_stale, marked.price_at) == (Decimal("1590.00"), False, old)
        mark_to_market(get_redis(), fallback=fallback(app), now=as_utc(MARKET_OPEN))  # 5 min old in hours: ask Kite
        db.session.expire_all()
        marked = db.session.execute(sa.select(Position)).scalar_one()
        assert (marked.last_price, marked.price_stale) == (Decimal("1601.50"), True)


def test_a_failing_quote_keeps_the_last_price_stale_and_the_pass_goes_on(app, desk, factory, kite):
    tcs = factory.instrument("TCS", 11536, price="3215.50")
    client = desk.kite_client("K", kite)
    hold(app, client, desk.instrument)
    hold(app, client, tcs, quantity=2, cost="6400.00")
    now = as_utc(MARKET_OPEN)
    seen = now - timedelta(seconds=5)
    with app.app_context():
        redis = get_redis()
        write_quotes(
            redis,
            {
                desk.instrument.instrument_token: Quote("NSE", "INFY", Decimal("1600.00"), timestamp=seen),
                tcs.instrument_token: Quote("NSE", "TCS", Decimal("3210.00"), timestamp=seen),
            },
        )
        assert len(mark_to_market(redis, fallback=fallback(app), now=now)) == 2  # both fresh: Kite not asked
        redis.delete(quote_key(desk.instrument.instrument_token))  # INFY's tick is gone; TCS moves on
        write_quotes(redis, {tcs.instrument_token: Quote("NSE", "TCS", Decimal("3220.00"), timestamp=now)})
        kite.faults.script("read", "error_5xx")
        changed = mark_to_market(redis, fallback=fallback(app), now=now + timedelta(seconds=2))
        assert {m.last_price for m in changed} == {Decimal("1600.00"), Decimal("3220.00")}
        infy = db.session.execute(sa.select(Position).where(Position.instrument_id == desk.instrument.id)).scalar_one()
        assert (infy.last_price, infy.price_stale, infy.price_at) == (Decimal("1600.00"), True, seen)
        assert infy.unrealized_pnl == Decimal("16000.00") - Decimal("15000.00")
        other = db.session.execute(sa.select(Position).where(Position.instrument_id == tcs.id)).scalar_one()
        assert (other.last_price, other.price_stale) == (Decimal("3220.00"), False)
        # backing off after the failure: Kite is not asked again (its next answer would have been good)
        assert redis.ttl(ASKED_KEY.format(broker="kite")) > ASK_EVERY_SECONDS
        kite.set_price("INFY", "1650.00")
        assert mark_to_market(redis, fallback=fallback(app), now=now + timedelta(seconds=4)) == []


def test_a_hung_broker_costs_the_pass_its_timeout_and_no_more(app, desk, factory, kite):
    client = desk.kite_client("K", kite)
    hold(app, client, desk.instrument)
    kite.faults.script("read", "timeout_after_accept")  # answers after 1 s; the desk waits 0.3 s
    with app.app_context():
        changed = mark_to_market(get_redis(), fallback=fallback(app))
        assert [m.last_price for m in changed] == [Decimal("1548.20")]  # the master's close, stale
        assert db.session.execute(sa.select(Position.price_stale)).scalar_one() is True


def test_the_feed_client_is_asked_first_and_a_paper_desk_uses_the_paper_quotes(app, desk, factory, kite):
    paper = desk.paper_client("P")
    hold(app, paper, desk.instrument)
    with app.app_context():
        asked = [c.broker for c in fallback(app).clients()]
        assert asked == ["paper"]
        mark_to_market(get_redis(), fallback=fallback(app))
        marked = db.session.execute(sa.select(Position)).scalar_one()
        assert (marked.last_price, marked.price_stale) == (Decimal("1548.20"), True)
    kite_client = desk.kite_client("K", kite)
    app.config["FEED_CLIENT_ID"] = kite_client.id
    try:
        with app.app_context():
            assert [c.id for c in fallback(app).clients()] == [kite_client.id, paper.id]
    finally:
        app.config["FEED_CLIENT_ID"] = None


def test_the_client_page_shows_a_stale_price_with_its_age(app, client, auth, desk, factory):
    paper = desk.paper_client("P")
    hold(app, paper, desk.instrument)
    other = factory.instrument("TCS", 11536, price="3215.50")
    hold(app, paper, other, quantity=2, cost="6400.00")
    observed = utcnow() - timedelta(minutes=3, seconds=20)
    with app.app_context():
        db.session.execute(
            sa.update(Position)
            .where(Position.instrument_id == desk.instrument.id)
            .values(last_price=Decimal("1548.20"), price_at=observed, price_stale=True)
        )
        db.session.execute(
            sa.update(Position)
            .where(Position.instrument_id == other.id)
            .values(last_price=Decimal("3215.50"), price_at=utcnow(), price_stale=False)
        )
        db.session.commit()
    factory.user("tara", role="trader", clients=[paper])
    auth.login("tara")
    shown = observed.astimezone(IST).strftime("%d %b %H:%M:%S")
    for page in (
        client.get(f"/clients/{paper.id}").data.decode(),
        client.get(f"/clients/{paper.id}/live", headers={"HX-Request": "true"}).data.decode(),
    ):
        assert (
            f'1,548.20 <span class="chip-amber stale" title="Not a live tick: observed {shown} IST">· stale 3m</span>'
            in page
        )
        assert page.count("· stale") == 1  # TCS is a fresh tick

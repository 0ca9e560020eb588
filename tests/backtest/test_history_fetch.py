"""A broker's history into the desk's candles: `history.fetch` and `flask history fetch` against the Kite
emulator over real HTTP (the adapter splits the range into requests Kite allows and paces them)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from tests.brokers.kite_fixtures import kite_server  # noqa: F401
from webapp.brokers.base import Account, BrokerSession
from webapp.brokers.kite import KiteBroker
from webapp.extensions import db
from webapp.marketdata import history
from webapp.marketdata.intervals import aggregate
from webapp.models import Candle, Client
from webapp.timeutil import IST, utcnow
from webapp.trading.sessions import store_session
from webapp.vault import current_vault

MONDAY = date(2026, 11, 2)


def ist(day: date, hour: int, minute: int) -> datetime:
    return datetime.combine(day, time(hour, minute), IST)


@pytest.fixture
def kite_account(kite_server):
    emulator, server = kite_server
    return emulator, server.url, emulator.add_account()


def count_candles(instrument_id: int, interval: int) -> int:
    return db.session.execute(
        sa.select(sa.func.count()).where(Candle.instrument_id == instrument_id, Candle.interval == interval)
    ).scalar_one()


def test_fetching_stores_the_brokers_bars_once(app, factory, kite_account):
    emulator, url, creds = kite_account
    with app.app_context():
        infy = factory.instrument("INFY", 1594)  # instrument_token 408065, as Kite numbers it
        account = Account(
            creds["user_id"],
            {"api_key": creds["api_key"], "api_secret": creds["api_secret"]},
            BrokerSession(creds["access_token"]),
        )
        adapter = KiteBroker(account, {"base_url": url, "timeout": 5.0})
        try:
            report = history.fetch(db.session, infy, 5, MONDAY, MONDAY + timedelta(days=1), adapter)
            db.session.commit()
            assert (report.loaded, report.skipped, report.errors) == (150, 0, [])
            series = history.load(db.session, infy.id, 5, MONDAY, MONDAY + timedelta(days=1))
            asked = emulator.history_requests[-1]
            assert asked == (infy.instrument_token, "5minute", "2026-11-02 00:00:00", "2026-11-03 23:59:00")
            assert len(series) == 150 and series.time[0] == int(ist(MONDAY, 9, 15).timestamp())
            again = history.fetch(db.session, infy, 5, MONDAY, MONDAY, adapter)
            assert (again.loaded, again.skipped) == (0, 75)
            minutes = history.fetch(db.session, infy, 1, MONDAY, MONDAY, adapter)
            db.session.commit()
            assert minutes.loaded == 375 and count_candles(infy.id, 1) == 375
            # the emulator's 5-minute bars are its minutes bucketed from 09:15: so are the desk's
            built = aggregate(history.load(db.session, infy.id, 1, MONDAY, MONDAY), 5)
            stored5 = history.load(db.session, infy.id, 5, MONDAY, MONDAY)
            assert built.close.tolist() == stored5.close.tolist() and built.volume.tolist() == stored5.volume.tolist()
            first = (
                db.session.execute(
                    sa.select(Candle)
                    .where(Candle.instrument_id == infy.id, Candle.interval == 1)
                    .order_by(Candle.start)
                )
                .scalars()
                .first()
            )
            assert isinstance(first.open, Decimal) and first.open % Decimal("0.10") == 0
        finally:
            adapter.close()


def test_bars_a_broker_sends_that_fail_the_checks_are_reported(app, factory, kite_account):
    emulator, url, creds = kite_account
    with app.app_context():
        sbin = factory.instrument("SBIN", 3045)
        emulator.set_history(
            sbin.instrument_token,
            [
                (ist(MONDAY, 9, 15), "800", "801", "799", "800.5", 10),
                (ist(MONDAY, 9, 16), "800", "799", "801", "800", 10),  # high below low
                (ist(MONDAY, 9, 17), "800", "801", "799", "800", 10),
            ],
        )
        account = Account(creds["user_id"], {"api_key": creds["api_key"]}, BrokerSession(creds["access_token"]))
        adapter = KiteBroker(account, {"base_url": url, "timeout": 5.0})
        try:
            report = history.fetch(db.session, sbin, 1, MONDAY, MONDAY, adapter)
        finally:
            adapter.close()
        assert report.loaded == 2 and report.errors == [(2, "high 799 is below low 801")]


def test_the_fetch_command_uses_a_connected_clients_broker(app, runner, factory, kite_account):
    emulator, url, creds = kite_account
    app.config.update(KITE_API_URL=url, KITE_LOGIN_URL=url)
    with app.app_context():
        infy = factory.instrument("INFY", 1594)
        client = factory.client(
            "Kite client",
            broker="kite",
            code=creds["user_id"],
            credentials={"api_key": creds["api_key"], "api_secret": creds["api_secret"]},
        )
        client = db.session.get(Client, client.id)
        store_session(client, BrokerSession(creds["access_token"], utcnow() + timedelta(hours=8)), current_vault())
        factory.client("Paper client", code="PAPER01")
        db.session.commit()
        infy_id = infy.id
    args = ["history", "fetch", "INFY", "--client", creds["user_id"], "--from", "2026-11-02", "--to", "2026-11-02"]
    result = runner.invoke(args=[*args, "--interval", "15"])
    assert result.exit_code == 0, result.output
    assert "25 candles loaded, 0 already stored" in result.output
    with app.app_context():
        assert count_candles(infy_id, 15) == 25
    paper = ["history", "fetch", "INFY", "--client", "PAPER01", "--from", "2026-11-02", "--to", "2026-11-02"]
    refused = runner.invoke(args=paper)
    assert refused.exit_code != 0 and "has no historical candles" in refused.output
    emulator.expire_sessions(creds["user_id"])
    expired = runner.invoke(args=args)
    assert expired.exit_code != 0 and "log in to Kite again" in expired.output
    with app.app_context():
        assert count_candles(infy_id, 1) == 0

"""Mark to market from the feed's prices; only changes are written and published; day P&L rows,
the P&L chart's samples and the CSV exports follow."""
import csv
import io
from decimal import Decimal

import sqlalchemy as sa

from webapp.brokers.base import Quote
from webapp.extensions import db, get_redis
from webapp.marketdata.store import write_quotes
from webapp.models import DailyPnl, Position
from webapp.trading import engine, sync
from webapp.trading.pnl import desk_totals, mark_to_market, pnl_samples, record_day


def bought(app, desk, factory, name="P", qty=10):
    client = desk.paper_client(name)
    batch = factory.batch(factory.user(f"buyer-{name}", role="admin"), [client], desk.instrument, quantity=qty)
    with app.app_context():
        engine.send_batch(batch.id, desk.context())
        sync.sync_client(client.id, desk.context())
        position = db.session.execute(sa.select(Position).where(Position.client_id == client.id)).scalar_one()
        return client, position.average_price


def price(app, desk, value: str):
    """The market at `value`, with depth a tick either side (market orders walk the depth)."""
    from webapp.brokers.base import DepthLevel

    last, tick = Decimal(value), desk.instrument.tick_size
    quote = Quote("NSE", "INFY", last, bids=(DepthLevel(last - tick, 10_000),), asks=(DepthLevel(last + tick, 10_000),))
    with app.app_context():
        write_quotes(get_redis(), {desk.instrument.instrument_token: quote})


def test_positions_are_marked_and_only_changes_written(app, desk, factory):
    client, average = bought(app, desk, factory)
    price(app, desk, "1600.00")
    with app.app_context():
        changed = mark_to_market(get_redis())
        assert [(m.client_id, m.last_price) for m in changed] == [(client.id, Decimal("1600.00"))]
        position = db.session.execute(sa.select(Position)).scalar_one()
        assert position.unrealized_pnl == (Decimal("1600.00") - average) * 10
        assert mark_to_market(get_redis()) == []  # nothing moved: nothing written
        assert desk_totals([client.id]).unrealized == position.unrealized_pnl


def test_without_a_tick_the_master_price_is_used(app, desk, factory):
    bought(app, desk, factory)
    with app.app_context():
        get_redis().delete(f"fanout:quote:{desk.instrument.instrument_token}")
        changed = mark_to_market(get_redis())
        assert [m.last_price for m in changed] == [desk.instrument.last_price]


def test_day_rows_chart_samples_and_exports(app, client, auth, desk, factory):
    paper, _ = bought(app, desk, factory)
    price(app, desk, "1500.00")
    with app.app_context():
        mark_to_market(get_redis())
        record_day([paper.id], get_redis())
        row = db.session.execute(sa.select(DailyPnl)).scalar_one()
        assert row.unrealized < 0 and row.client_id == paper.id
        day = row.day.isoformat()
        samples = pnl_samples(get_redis(), paper.id, day)
        assert len(samples) == 1 and Decimal(samples[0]["value"]) == row.realized + row.unrealized
    factory.user("tara", role="trader", clients=[paper])
    auth.login("tara")
    assert client.get(f"/clients/{paper.id}/pnl.json").json["series"] == samples
    pnl = client.post(f"/clients/{paper.id}/exports", data={"kind": "pnl", "start": day, "end": day})
    rows = list(csv.DictReader(io.StringIO(pnl.data.decode())))
    assert [r["day"] for r in rows] == [day] and Decimal(rows[0]["total"]) == row.realized + row.unrealized
    positions = client.post(f"/clients/{paper.id}/exports", data={"kind": "positions", "start": day, "end": day})
    assert list(csv.DictReader(io.StringIO(positions.data.decode())))[0]["quantity"] == "10"
    bad = client.post(f"/clients/{paper.id}/exports", data={"kind": "pnl", "start": day, "end": "2020-01-01"})
    assert "The last day is before the first." in bad.data.decode()


def test_desk_page_and_its_live_partial_show_pnl(app, client, auth, desk, factory):
    paper, average = bought(app, desk, factory)
    price(app, desk, "1600.00")
    with app.app_context():
        mark_to_market(get_redis())
    factory.user("tara", role="trader", clients=[paper])
    auth.login("tara")
    expected = (Decimal("1600.00") - average) * 10
    from webapp.money import rupees

    page = client.get("/").data.decode()
    assert f'id="desk-mtm">{rupees(expected)}' in page
    live = client.get("/desk/live", headers={"HX-Request": "true"}).data.decode()
    assert 'id="desk-totals" hx-swap-oob="true"' in live and f'<tr id="client-{paper.id}" hx-swap-oob="true">' in live


def test_a_closed_position_keeps_no_unrealized_pnl(app, desk, factory):
    client, _ = bought(app, desk, factory)
    price(app, desk, "1600.00")
    with app.app_context():
        mark_to_market(get_redis())
    exit_batch = factory.batch(factory.user("seller", role="admin"), [client], desk.instrument, quantity=10, side="SELL")
    with app.app_context():
        engine.send_batch(exit_batch.id, desk.context())
        sync.sync_client(client.id, desk.context())
        position = db.session.execute(sa.select(Position)).scalar_one()
        assert (position.quantity, position.unrealized_pnl) == (0, 0) and position.realized_pnl != 0
        assert desk_totals([client.id]).unrealized == 0


def test_position_sync_flags_differences_on_the_desk(app, client, auth, desk, factory):
    paper, _ = bought(app, desk, factory)
    with app.app_context():
        from webapp.trading.sync import position_differences

        assert position_differences(get_redis(), [paper.id]) == {}
        db.session.execute(sa.update(Position).values(quantity=3))  # the ledger drifts from the broker
        db.session.commit()
        sync.sync_client(paper.id, desk.context())
        diffs = position_differences(get_redis(), [paper.id])[paper.id]
        assert diffs == [{"instrument": "NSE:INFY", "product": "MIS", "desk": 3, "broker": 10}]
    factory.user("tara", role="trader", clients=[paper])
    auth.login("tara")
    assert "Positions differ from the broker — NSE:INFY MIS: desk 3, broker 10" in client.get("/").data.decode()

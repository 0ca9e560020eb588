"""The client page's P&L chart ends at the day P&L the page shows (issue 15): samples are taken when
a reprice moves a price, so a position closed since (realized, no longer repriced) was missing from
the line, which stayed at its last mark."""

from decimal import Decimal

import sqlalchemy as sa

from tests.live.test_reprice import bought, price
from webapp.extensions import db, get_redis
from webapp.models import Order
from webapp.money import rupees
from webapp.timeutil import utcnow
from webapp.trading import engine, sync
from webapp.trading.pnl import client_totals, mark_to_market, record_day


def test_the_charts_last_point_is_the_day_pnl_after_an_exit(app, client, auth, desk, factory):
    paper, _ = bought(app, desk, factory)
    price(app, desk, "1500.00")
    with app.app_context():
        mark_to_market(get_redis())
        record_day([paper.id], get_redis())  # a sample at the open position's mark
    price(app, desk, "1700.00")
    sell = factory.batch(factory.user("seller", role="admin"), [paper], desk.instrument, quantity=10, side="SELL")
    with app.app_context():
        engine.send_batch(sell.id, desk.context())
        sync.sync_client(paper.id, desk.context())
        assert db.session.execute(sa.select(Order.status).where(Order.batch_id == sell.id)).scalar_one() == "COMPLETE"
        assert mark_to_market(get_redis()) == []  # flat: nothing to reprice, so no new sample
        day = client_totals([paper.id])[paper.id].day
    factory.user("tara", role="trader", clients=[paper])
    auth.login("tara")
    before = int(utcnow().timestamp())
    series = client.get(f"/clients/{paper.id}/pnl.json").json["series"]
    assert len(series) == 2 and Decimal(series[0]["value"]) != day  # the sample at the mark, then now
    assert Decimal(series[-1]["value"]) == day and series[-1]["time"] >= before  # UTC epoch seconds
    page = client.get(f"/clients/{paper.id}/live").get_data(as_text=True)  # the totals, as page and socket show them
    shown = page[page.index(f'id="client-totals-{paper.id}"') :]
    assert f">{rupees(day)}</span>" in shown[: shown.index("Unrealized")]  # the day P&L the page shows

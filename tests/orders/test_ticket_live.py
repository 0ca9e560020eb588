"""The ticket's defects (issue 15) and its live price and depth partials: errors name clients and show
once, no verdict before an instrument is picked, the quantity tools survive a refused submit, the kill
switches are shown, the margin column says what it is, `?instrument_id=&side=` opens a ticket, indices are
refused; /orders/ticket/quote and /orders/depth read the feed's stored quote, refuse who may not see them
and answer any id without a 500."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from webapp.brokers.base import DepthLevel, Quote
from webapp.extensions import db, get_redis
from webapp.marketdata import depth
from webapp.marketdata.store import write_quotes
from webapp.models import Batch, Client, DeskState, Instrument
from webapp.timeutil import utcnow

TICKET = "00000000-0000-4000-8000-0000000000d1"


@pytest.fixture
def trader(desk, factory, auth):
    clients = [desk.paper_client("Alpha"), desk.paper_client("Beta")]
    factory.user("tara", role="trader", clients=clients)
    auth.login("tara")
    return clients


def ticket(desk, clients, **fields):
    data = {
        "ticket_id": TICKET,
        "instrument_id": desk.instrument.id,
        "action": "BUY",
        "product": "MIS",
        "order_type": "MARKET",
        "validity": "DAY",
    }
    data.update({f"qty_{c.id}": "10" for c in clients})
    data.update(fields)
    return data


def five_levels(base: str, step: str, sign: int) -> tuple[DepthLevel, ...]:
    return tuple(
        DepthLevel(Decimal(base) + sign * i * Decimal(step), 100 * (i + 1), i + 1) for i in range(depth.DEPTH_LEVELS)
    )


def store_quote(app, instrument, *, age=timedelta(0), levels=True, last="1560.00", close="1548.20"):
    quote = Quote(
        exchange="NSE",
        tradingsymbol=instrument.tradingsymbol,
        last_price=Decimal(last),
        close=Decimal(close),
        bids=five_levels("1559.90", "0.10", -1) if levels else (),
        asks=five_levels("1560.10", "0.10", 1) if levels else (),
        timestamp=utcnow() - age,
    )
    with app.app_context():
        write_quotes(get_redis(), {instrument.instrument_token: quote})


# ---------------------------------------------------------------- the view (no Flask)


def test_the_view_computes_change_and_totals_exactly():
    quote = Quote("NSE", "INFY", Decimal("1560.00"), close=Decimal("1548.20"), timestamp=utcnow())
    view = depth.view_of(quote, Decimal("1500"))
    assert view.state == depth.LIVE and view.change == Decimal("11.80") and view.change_pct == Decimal("0.76")
    levels = Quote("NSE", "INFY", Decimal("1"), bids=five_levels("10", "1", -1), asks=five_levels("11", "1", 1)[:2])
    view = depth.view_of(levels, None, now=utcnow())
    assert view.state == depth.STALE  # no timestamp: never "live"
    assert view.bid_quantity == 1500 and view.ask_quantity == 300 and view.bid_orders == 15
    assert [(b is not None, a is not None) for b, a in view.rows()] == [(True, True)] * 2 + [(True, False)] * 3
    assert depth.view_of(None, Decimal("1500")).state == depth.ABSENT


# ---------------------------------------------------------------- the partials


def test_the_ticket_quote_shows_price_change_and_five_levels(app, client, trader, desk):
    store_quote(app, desk.instrument)
    page = client.get(f"/orders/ticket/quote?instrument_id={desk.instrument.id}").data.decode()
    assert 'id="quote-ltp" data-price="1560.00"' in page and "+11.80 (+0.76%)" in page
    assert page.count('class="depth-level"') == 5 and ">live<" in page
    assert 'data-price="1559.50"' in page and 'data-price="1560.50"' in page  # the fifth bid and offer
    assert 'id="depth-bid-total">1500<' in page and 'id="depth-ask-total">1500<' in page


def test_stale_absent_and_no_depth_are_said(app, client, trader, desk):
    url = f"/orders/ticket/quote?instrument_id={desk.instrument.id}"
    assert "No quote from the feed yet" in client.get(url).data.decode()
    store_quote(app, desk.instrument, age=timedelta(minutes=5))
    page = client.get(url).data.decode()
    assert 'data-state="stale"' in page and "Stale: last quote" in page
    store_quote(app, desk.instrument, levels=False)
    assert "No depth from this source" in client.get(url).data.decode()


@pytest.mark.parametrize("raw", ["", "abc", "-1", "0", "99999999999999999999999", "1 OR 1=1", "%00", "١"])
def test_hostile_ids_get_a_clear_answer_not_a_500(client, trader, raw):
    for url in ("/orders/ticket/quote", "/orders/depth"):
        response = client.get(url, query_string={"instrument_id": raw})
        assert response.status_code == 200
        text = response.data.decode()
        assert ("No such instrument" in text) if raw else ("Choose an instrument" in text)


def test_who_may_read_the_partials(app, client, desk, factory, auth):
    url = f"?instrument_id={desk.instrument.id}"
    assert client.get("/orders/ticket/quote" + url).status_code in (302, 401)  # anonymous: to the login
    assert client.get("/orders/depth" + url).status_code in (302, 401)
    factory.user("vera", role="viewer")
    auth.login("vera")
    assert client.get("/orders/ticket/quote" + url).status_code == 403  # no ticket for a viewer
    assert client.get("/orders/depth" + url).status_code == 200  # the instrument page's depth is theirs


def test_the_instrument_page_polls_its_depth(app, client, trader, desk):
    page = client.get(f"/instruments/{desk.instrument.id}").data.decode()
    assert f'hx-get="/orders/depth?instrument_id={desk.instrument.id}"' in page and "every 1s" in page


# ---------------------------------------------------------------- the ticket's defects


def test_errors_name_no_client_by_id_and_show_once(app, client, trader, desk):
    alpha, beta = trader
    message = "Enter a whole number of shares."
    response = client.post("/orders/new", data=ticket(desk, trader, **{f"qty_{alpha.id}": "ten"}))
    page = response.data.decode()
    assert response.status_code == 200 and page.count(message) == 1
    assert re.search(rf'<small class="error" id="qty-{alpha.id}-error">{message}</small>', page)
    assert not re.search(r"Client \d+:", page)
    preview = client.post("/orders/preview", data=ticket(desk, trader, **{f"qty_{alpha.id}": "ten"})).data.decode()
    assert preview.count(message) == 1 and "Alpha" in preview and not re.search(r"Client \d+:", preview)
    assert f'id="qty-{beta.id}-error" hx-swap-oob="true"></small>' in preview  # a fine row's slot is emptied

    price_error = "Price is required for a LIMIT order."
    page = client.post("/orders/new", data=ticket(desk, trader, order_type="LIMIT")).data.decode()
    assert page.count(price_error) == 1


def test_no_verdict_before_an_instrument_is_picked(client, trader, desk):
    preview = client.post("/orders/preview", data=ticket(desk, trader, instrument_id="")).data.decode()
    assert "Choose an instrument" not in preview and 'id="instrument-error" hx-swap-oob="true"></small>' in preview
    page = client.post("/orders/new", data=ticket(desk, trader, instrument_id="")).data.decode()
    assert page.count("Choose an instrument from the search.") == 1  # a submit does say it


def test_a_refused_submit_keeps_the_quantity_tools(app, client, trader, desk):
    alpha, beta = trader
    data = ticket(desk, trader, order_type="LIMIT", tool_same="25", tool_base="3", tool_pct="12.5")
    data[f"mult_{beta.id}"] = "4"
    data[f"qty_{alpha.id}"] = "25"
    page = client.post("/orders/new", data=data).data.decode()
    assert re.search(r'id="fill-same" name="tool_same" class="small" value="25"', page)
    assert 'placeholder="base" value="3"' in page and 'name="tool_pct" class="small" value="12.5"' in page
    assert f'name="mult_{beta.id}" value="4"' in page and f'name="mult_{alpha.id}" value="1"' in page
    assert f'name="qty_{alpha.id}" value="25"' in page
    data["tool_same"] = '"><script>x</script>'
    assert "<script>x" not in client.post("/orders/new", data=data).data.decode()
    with app.app_context():
        assert db.session.execute(sa.select(sa.func.count()).select_from(Batch)).scalar_one() == 0


def test_the_margin_column_and_tool_say_available_margin(client, trader, desk):
    page = client.get("/orders/new").data.decode()
    assert "Available margin</th>" in page and "% of available margin" in page and ">Capital<" not in page


def test_kill_switches_are_shown_and_refused(app, client, trader, desk):
    alpha, beta = trader
    with app.app_context():
        stored = db.session.get(Client, alpha.id)
        stored.kill_switch, stored.kill_reason = True, "daily loss limit"
        db.session.commit()
    page = client.get(f"/orders/new?instrument_id={desk.instrument.id}").data.decode()
    assert f'id="client-kill-{alpha.id}"' in page and f'id="client-kill-{beta.id}"' not in page
    assert "desk-kill-banner" not in page and "disabled" not in page.split('id="submit-ticket"', 1)[1][:40]
    preview = client.post("/orders/preview", data=ticket(desk, trader)).data.decode()
    assert re.search(rf'id="preview-{alpha.id}".*?blocked.*?kill switch is on', preview, re.S)

    with app.app_context():
        db.session.merge(DeskState(id=1, kill_switch=True, kill_reason="manual"))
        db.session.commit()
    page = client.get("/orders/new").data.decode()
    assert 'id="desk-kill-banner"' in page and "Desk kill switch is ON" in page
    assert re.search(r'id="submit-ticket" disabled', page)


def test_the_ticket_opens_on_an_instrument_and_side(client, trader, desk):
    page = client.get(f"/orders/new?instrument_id={desk.instrument.id}&side=SELL").data.decode()
    assert re.search(r'<input checked id="action-1" name="action" type="radio" value="SELL">', page)
    assert "Sell INFY: enter quantities" in page and f'value="{desk.instrument.id}"' in page
    page = client.get("/orders/new?instrument_id=12345678&side=nonsense").data.decode()
    assert "not in the master" in page and 'value="BUY" checked' not in page  # BUY is the default, unchanged
    assert re.search(r'<input checked id="action-0" name="action" type="radio" value="BUY">', page)


def test_an_index_is_refused_clearly(app, client, trader, desk, factory):
    index = factory.instrument("NIFTY 50", 256, price="24000.00", tick="0.05", band=None)
    with app.app_context():
        db.session.get(Instrument, index.id).segment = "INDICES"
        db.session.commit()
    page = client.get(f"/orders/new?instrument_id={index.id}&side=BUY").data.decode()
    assert "NIFTY 50 is an index" in page and 'name="instrument_id" id="instrument_id" value=""' in page
    response = client.post("/orders/new", data=ticket(desk, trader, instrument_id=index.id))
    assert response.status_code == 200 and response.data.decode().count("NIFTY 50 is an index") == 1
    with app.app_context():
        assert db.session.execute(sa.select(sa.func.count()).select_from(Batch)).scalar_one() == 0

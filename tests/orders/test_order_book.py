"""The desk-wide order book: search by symbol and IST day, filters kept in the query string, paging,
and per-order cancel / modify through a job on the orders queue, counted at the paper exchange."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa
from rq import Queue

from webapp.extensions import db, get_rq_redis
from webapp.feed import fragments
from webapp.feed.hub import Subscriber
from webapp.models import Order, Trade
from webapp.models.paper import PaperOrder
from webapp.money import rupees
from webapp.timeutil import IST
from webapp.trading import engine, states, sync

HX = {"HX-Request": "true"}


@pytest.fixture
def root(factory):
    return factory.user("root", role="admin")


def orders_queue(app) -> int:
    with app.app_context():
        return Queue("orders", connection=get_rq_redis()).count


def order(app, order_id: int) -> Order:
    with app.app_context():
        found = db.session.get(Order, order_id)
        db.session.expunge(found)
        return found


def set_created(app, order_id: int, when: datetime) -> None:
    with app.app_context():
        db.session.execute(sa.update(Order).where(Order.id == order_id).values(created_at=when))
        db.session.commit()


def only_child(app, batch) -> int:
    with app.app_context():
        return db.session.execute(sa.select(Order.id).where(Order.batch_id == batch.id)).scalar_one()


@pytest.fixture
def open_limit(app, desk, factory, root):
    """A BUY LIMIT resting at the paper exchange (below the market), OPEN on the desk."""

    def make(client, price="1400.00", quantity=3, order_type="LIMIT", **fields):
        batch = factory.batch(
            root, [client], desk.instrument, quantity=quantity, order_type=order_type, price=Decimal(price), **fields
        )
        with app.app_context():
            engine.send_batch(batch.id, desk.context())
            sync.sync_client(client.id, desk.context())
        child = only_child(app, batch)
        assert order(app, child).status == states.OPEN
        return child

    return make


def paper_order(app, order_id: int) -> PaperOrder:
    with app.app_context():
        broker_id = db.session.get(Order, order_id).broker_order_id
        found = db.session.execute(sa.select(PaperOrder).where(PaperOrder.order_id == broker_id)).scalar_one()
        db.session.expunge(found)
        return found


# ---- search, filters, paging


def test_search_by_symbol_side_and_state_keeps_its_filters(client, auth, desk, factory, root):
    paper = desk.paper_client("P")
    tcs = factory.instrument("TCS", 2953, price="3500", tick="0.05")
    factory.batch(root, [paper], desk.instrument)
    factory.batch(root, [paper], tcs, side="SELL", status=states.REJECTED)
    auth.login("root")
    page = client.get("/orders/?symbol=tc").data.decode()
    assert "TCS" in page and "INFY" not in page.split('id="book-table"')[1]
    assert 'value="tc"' in page  # the search stays in the form (and the URL: a bookmark)
    partial = client.get("/orders/?symbol=tc&side=SELL", headers=HX).data.decode()
    assert 'href="/orders/export.csv?symbol=tc&amp;side=SELL" class="button" id="book-export" hx-swap-oob' in partial
    assert "INFY" in client.get("/orders/?symbol=INF&side=BUY").data.decode().split('id="book-table"')[1]
    assert "No orders." in client.get("/orders/?symbol=INF&side=SELL").data.decode()
    assert "TCS" in client.get("/orders/?status=REJECTED").data.decode().split('id="book-table"')[1]
    assert "No orders." in client.get("/orders/?status=open").data.decode()
    csv = client.get("/orders/export.csv?symbol=TCS").data.decode().splitlines()
    assert len(csv) == 2 and "NSE:TCS" in csv[1]


def test_date_search_is_by_ist_day(app, client, auth, desk, factory, root):
    paper = desk.paper_client("P")
    late = only_child(app, factory.batch(root, [paper], desk.instrument, quantity=7))
    early = only_child(app, factory.batch(root, [paper], desk.instrument, quantity=9))
    # 10 Mar 19:00 UTC is 11 Mar 00:30 IST; 10 Mar 18:00 UTC is 10 Mar 23:30 IST
    set_created(app, late, datetime(2026, 3, 10, 19, 0, tzinfo=UTC))
    set_created(app, early, datetime(2026, 3, 10, 18, 0, tzinfo=UTC))
    auth.login("root")

    def shown(query):
        body = client.get("/orders/" + query).data.decode().split('id="book-table"')[1]
        return {n for n in (late, early) if f'id="order-{n}"' in body}

    assert shown("?start=2026-03-11&end=2026-03-11") == {late}
    assert shown("?start=2026-03-10&end=2026-03-10") == {early}
    assert shown("?start=2026-03-10&end=2026-03-11") == {late, early}
    assert shown("?start=2026-03-11") == {late}
    assert shown("?end=2026-03-10") == {early}
    assert shown("?start=2026-03-12") == set()


@pytest.mark.parametrize(
    "query, field, message",
    [
        ("start=2026-02-30", "start", "Not a valid date value."),
        ("start=9999-99-99", "start", "Not a valid date value."),
        ("start=2026-03-11&end=2026-03-01", "end", "The last day is before the first."),
        ("start=2020-01-01&end=2026-01-01", "end", "At most 366 days at a time."),
        ("symbol=%25'%20OR%201=1--", "symbol", "Letters, digits, spaces and &amp; . - _ only."),
        ("symbol=" + "A" * 40, "symbol", "At most 32 characters."),
        ("status=DROP", "status", "Not a valid choice."),
        ("side=HOLD", "side", "Not a valid choice."),
        ("page=0", "page", "Must be at least 1."),
        ("page=１２", "page", "Enter a whole number using the digits 0-9 only."),
        ("client=99999", "client", "Choose a client from the list."),
        ("client=abc", "client", "Choose a client from the list."),
    ],
)
def test_bad_search_says_so_next_to_the_field(client, auth, desk, factory, root, query, field, message):
    paper = desk.paper_client("P")
    factory.batch(root, [paper], desk.instrument)
    auth.login("root")
    page = client.get("/orders/?" + query)
    assert page.status_code == 400
    body = page.data.decode()
    assert f'<small class="error" id="book-error-{field}">{message}</small>' in body
    assert "Fix the search above." in body and 'id="order-' not in body
    partial = client.get("/orders/?" + query, headers=HX)  # htmx: swapped (422), the message out of band
    assert partial.status_code == 422
    assert f'id="book-error-{field}" hx-swap-oob="true">{message}</small>' in partial.data.decode()
    assert client.get("/orders/export.csv?" + query).status_code == 400
    assert client.get("/orders/trades?" + query).status_code == 400


def test_a_client_not_granted_is_not_a_filter_a_trader_may_use(client, auth, desk, factory, root):
    mine, theirs = desk.paper_client("Mine"), desk.paper_client("Theirs")
    factory.batch(root, [mine, theirs], desk.instrument)
    factory.user("tara", role="trader", clients=[mine])
    auth.login("tara")
    page = client.get(f"/orders/?client={theirs.id}")
    assert page.status_code == 400 and "Theirs" not in page.data.decode()
    assert "Mine" in client.get(f"/orders/?client={mine.id}").data.decode()


def test_paging_keeps_the_search(app, client, auth, desk, factory, root):
    paper = desk.paper_client("P")
    batch = factory.batch(root, [paper], desk.instrument)
    with app.app_context():
        first = db.session.execute(sa.select(Order).where(Order.batch_id == batch.id)).scalar_one()
        for n in range(54):
            db.session.add(
                Order(
                    batch_id=batch.id,
                    client_id=paper.id,
                    instrument_id=desk.instrument.id,
                    side="BUY",
                    quantity=1,
                    product="MIS",
                    order_type="MARKET",
                    tag=f"pg{n:08d}",
                    status=states.NEW,
                )
            )
        db.session.commit()
        first_id = first.id
    auth.login("root")
    one = client.get("/orders/?symbol=INFY").data.decode()
    assert one.count('<tr id="order-') == 50 and "1–50 of 55 orders" in one
    assert 'href="/orders/?symbol=INFY&amp;page=2"' in one
    two = client.get("/orders/?symbol=INFY&page=2", headers=HX).data.decode()
    assert two.count('<tr id="order-') == 5 and "51–55 of 55 orders" in two and f'id="order-{first_id}"' in two
    assert two.startswith('\n<div id="book-results"') or two.lstrip().startswith('<div id="book-results"')
    assert "No orders." in client.get("/orders/?symbol=INFY&page=9").data.decode()


# ---- per-order cancel


def test_cancel_one_open_order_enqueues_once_and_the_exchange_cancels_once(
    app, client, auth, desk, factory, open_limit, caplog
):
    paper = desk.paper_client("P")
    child = open_limit(paper)
    other = open_limit(paper, price="1395.00")
    factory.user("tara", role="trader", clients=[paper])
    auth.login("tara")
    first = client.post(f"/orders/{child}/cancel", headers=HX)
    assert first.status_code == 200 and f"Cancel sent for order #{child}." in first.data.decode()
    assert first.data.decode().startswith(f'<tr id="order-{child}"')
    again = client.post(f"/orders/{child}/cancel", headers=HX)  # a double click
    assert f"A cancel of order #{child} is already on its way to the broker." in again.data.decode()
    assert orders_queue(app) == 1
    caplog.set_level(logging.INFO, logger="webapp.brokers.paper.exchange")
    desk.run_worker()
    assert caplog.text.count("broker=paper op=cancel") == 1
    cancelled = order(app, child)
    assert cancelled.status == states.CANCELLED and cancelled.reason == "Cancelled by tara"
    assert paper_order(app, child).status == "CANCELLED"
    assert order(app, other).status == states.OPEN and paper_order(app, other).status == "OPEN"  # only that one
    final = client.post(f"/orders/{child}/cancel", headers=HX).data.decode()
    assert f"Order #{child} is already CANCELLED: it can no longer be cancelled." in final
    assert orders_queue(app) == 0
    page = client.get("/orders/").data.decode()
    assert f'id="order-{other}-cancel"' in page and f'id="order-{child}-cancel"' not in page


def test_cancel_without_javascript_flashes_and_returns_to_the_book(app, client, auth, desk, factory, open_limit):
    paper = desk.paper_client("P")
    child = open_limit(paper)
    auth.login(factory.user("tara", role="trader", clients=[paper]).username)
    answer = client.post(f"/orders/{child}/cancel", follow_redirects=True)
    assert answer.status_code == 200 and f"Cancel sent for order #{child}." in answer.data.decode()
    assert orders_queue(app) == 1


# ---- per-order modify


def test_modify_price_and_quantity_of_an_open_limit_order(app, client, auth, desk, factory, open_limit, caplog):
    paper = desk.paper_client("P")
    child = open_limit(paper)
    auth.login(factory.user("tara", role="trader", clients=[paper]).username)
    sent = client.post(f"/orders/{child}/modify", data={"price": "1410.00", "quantity": "5"}, headers=HX)
    assert sent.status_code == 200
    assert f"Change sent for order #{child}: price ₹1,410.00, quantity 5." in sent.data.decode()
    again = client.post(f"/orders/{child}/modify", data={"price": "1411.00", "quantity": "5"}, headers=HX)
    assert "already on its way" in again.data.decode() and orders_queue(app) == 1
    caplog.set_level(logging.INFO, logger="webapp.brokers.paper.exchange")
    desk.run_worker()
    assert caplog.text.count("broker=paper op=modify") == 1
    changed = order(app, child)
    assert (changed.price, changed.quantity, changed.status) == (Decimal("1410"), 5, states.OPEN)
    at_exchange = paper_order(app, child)
    assert (at_exchange.price, at_exchange.quantity) == (Decimal("1410"), 5)
    page = client.get("/orders/?symbol=INFY&status=open").data.decode()
    assert f'id="order-{child}-price"' in page and 'value="1410"' in page


def test_modify_trigger_of_an_open_stop_loss(app, client, auth, desk, factory, open_limit):
    paper = desk.paper_client("P")
    child = open_limit(paper, price="1605.00", order_type="SL", trigger_price=Decimal("1600.00"))
    auth.login("root")
    sent = client.post(f"/orders/{child}/modify", data={"price": "1605.00", "trigger_price": "1602.00"}, headers=HX)
    assert "trigger ₹1,602.00" in sent.data.decode()
    desk.run_worker()
    assert order(app, child).trigger_price == Decimal("1602")
    assert paper_order(app, child).trigger_price == Decimal("1602")


@pytest.mark.parametrize(
    "form, field, message",
    [
        ({"price": "1400.03"}, "price", "Price must be a multiple of the tick size ₹0.1."),
        ({"price": "99999"}, "price", "Price is outside today&#39;s circuit band"),
        ({"price": "abc"}, "price", "Enter a number using the digits 0-9 and a decimal point only."),
        ({"price": "NaN"}, "price", "Enter a number using the digits 0-9 and a decimal point only."),
        ({"price": "-5"}, "price", "Price must be above zero."),
        ({"quantity": "0"}, "quantity", "Must be at least 1."),
        ({"quantity": "2.5"}, "quantity", "Enter a whole number using the digits 0-9 only."),
        ({"quantity": "99999999999"}, "quantity", "Must be at most"),
        ({"price": "1400.00", "quantity": "3"}, "price", "Nothing to change: this is the order as it stands."),
    ],
)
def test_bad_modify_input_says_so_next_to_the_field_and_changes_nothing(
    app, client, auth, desk, factory, open_limit, form, field, message
):
    paper = desk.paper_client("P")
    child = open_limit(paper)
    auth.login("root")
    answer = client.post(f"/orders/{child}/modify", data=form, headers=HX)
    assert answer.status_code == 422
    body = answer.data.decode()
    assert f'<small class="error" id="order-{child}-{"trigger" if field == "trigger_price" else field}-error">' in body
    assert message in body and "<details" in body and " open>" in body
    assert orders_queue(app) == 0
    unchanged = order(app, child)
    assert (unchanged.price, unchanged.quantity) == (Decimal("1400"), 3)
    plain = client.post(f"/orders/{child}/modify", data=form)  # without JavaScript: a page with the form open
    assert plain.status_code == 400 and message in plain.data.decode()


def test_a_lot_size_and_a_client_limit_are_kept(app, client, auth, desk, factory, root):
    lots = factory.instrument("NIFTYFUT", 9001, price="100", tick="0.05")
    with app.app_context():
        db.session.execute(sa.text("UPDATE instruments SET lot_size = 25 WHERE id = :id"), {"id": lots.id})
        db.session.commit()
    paper = desk.paper_client("P", max_quantity=60)
    batch = factory.batch(root, [paper], lots, quantity=25, order_type="LIMIT", price=Decimal("90"))
    with app.app_context():
        engine.send_batch(batch.id, desk.context())
        sync.sync_client(paper.id, desk.context())
    child = only_child(app, batch)
    auth.login("root")
    body = client.post(f"/orders/{child}/modify", data={"quantity": "30"}, headers=HX).data.decode()
    assert "Quantity must be a multiple of the lot size 25." in body
    body = client.post(f"/orders/{child}/modify", data={"quantity": "75"}, headers=HX).data.decode()
    assert "Quantity 75 is above this client&#39;s limit of 60." in body
    assert orders_queue(app) == 0


def test_only_open_limit_and_stop_loss_orders_can_be_modified(app, client, auth, desk, factory, root):
    paper = desk.paper_client("P")
    market = factory.batch(root, [paper], desk.instrument, quantity=2)
    with app.app_context():
        engine.send_batch(market.id, desk.context())
        sync.sync_client(paper.id, desk.context())
    done = only_child(app, market)
    assert order(app, done).status == states.COMPLETE
    auth.login("root")
    body = client.post(f"/orders/{done}/modify", data={"price": "1500"}, headers=HX).data.decode()
    assert f"Order #{done} is already COMPLETE: it can no longer be modified." in body
    pending = only_child(app, factory.batch(root, [paper], desk.instrument, order_type="LIMIT", price=Decimal("1400")))
    body = client.post(f"/orders/{pending}/cancel", headers=HX).data.decode()
    assert f"Order #{pending} is NEW: not open at its broker, so it cannot be cancelled now." in body
    assert orders_queue(app) == 0


# ---- access


def test_roles_and_grants(app, client, auth, desk, factory, open_limit):
    mine, theirs = desk.paper_client("Mine"), desk.paper_client("Theirs")
    my_order, their_order = open_limit(mine), open_limit(theirs)
    factory.user("vic", role="viewer", clients=[mine])
    factory.user("tara", role="trader", clients=[mine])
    auth.login("vic")
    page = client.get("/orders/").data.decode()
    assert f'id="order-{my_order}"' in page and "order-modify" not in page and "<th>Actions</th>" not in page
    assert client.post(f"/orders/{my_order}/cancel", headers=HX).status_code == 403
    assert client.post(f"/orders/{my_order}/modify", data={"price": "1410"}).status_code == 403
    auth.logout()
    auth.login("tara")
    assert f'id="order-{their_order}"' not in client.get("/orders/").data.decode()
    assert client.post(f"/orders/{their_order}/cancel", headers=HX).status_code == 404
    assert client.post(f"/orders/{their_order}/modify", data={"price": "1410"}).status_code == 404
    assert client.post("/orders/99999999/cancel").status_code == 404
    assert orders_queue(app) == 0
    assert order(app, their_order).status == states.OPEN


@pytest.mark.csrf
def test_per_order_actions_need_the_csrf_token(app, client, auth, desk, factory, open_limit):
    paper = desk.paper_client("P")
    child = open_limit(paper)
    auth.login("root")
    assert client.post(f"/orders/{child}/cancel").status_code == 400
    assert client.post(f"/orders/{child}/modify", data={"price": "1410"}).status_code == 400
    assert orders_queue(app) == 0


# ---- live rows


def book_socket(role: str, client_ids=frozenset()) -> Subscriber:
    return Subscriber(id=1, user_id=1, role=role, client_ids=frozenset(client_ids), page="book", target=None)


def pushed(app, order_id: int, client_id: int, sub: Subscriber) -> str:
    event = {"event": "order.updated", "order_id": order_id, "client_id": client_id, "batch_id": None}
    with app.test_request_context("/"):  # as the hub renders
        return "".join(html for _, html in fragments.for_event(event, [sub]))


def test_the_book_socket_gets_the_row_with_actions_for_those_who_may_act(app, desk, factory, open_limit):
    mine, theirs = desk.paper_client("Mine"), desk.paper_client("Theirs")
    child = open_limit(mine)
    trader = pushed(app, child, mine.id, book_socket("trader", {mine.id}))
    assert f'<tr id="order-{child}" hx-swap-oob="true">' in trader and f'id="order-{child}-cancel"' in trader
    assert "csrf_token" not in trader  # no request on the socket: the token travels in the body's hx-headers
    viewer = pushed(app, child, mine.id, book_socket("viewer", {mine.id}))
    assert f'<tr id="order-{child}"' in viewer and "order-actions" not in viewer
    assert pushed(app, child, mine.id, book_socket("trader", {theirs.id})) == ""


# ---- the trade book


@pytest.fixture
def trades_made(app, desk, factory, root):
    """A paper client's buy of 3 and sell of 2 (filled at the market), and another client's buy."""
    mine, theirs = desk.paper_client("Mine"), desk.paper_client("Theirs")
    for client, side, quantity in ((mine, "BUY", 3), (mine, "SELL", 2), (theirs, "BUY", 5)):
        batch = factory.batch(root, [client], desk.instrument, quantity=quantity, side=side)
        with app.app_context():
            engine.send_batch(batch.id, desk.context())
            sync.sync_client(client.id, desk.context())
    with app.app_context():
        trades = db.session.execute(sa.select(Trade).order_by(Trade.id)).scalars().all()
        assert [(t.side, t.quantity) for t in trades] == [("BUY", 3), ("SELL", 2), ("BUY", 5)]
        prices = [t.price for t in trades]
    return mine, theirs, prices


def test_trades_default_to_today_with_totals(app, client, auth, trades_made):
    mine, theirs, (buy, sell, other) = trades_made
    auth.login("root")
    page = client.get("/orders/trades").data.decode()
    today = datetime.now(IST).date().isoformat()
    assert f'id="trades-start" value="{today}"' in page and f'id="trades-end" value="{today}"' in page
    assert 'id="trades-count">3<' in page
    assert f'id="trades-buy">₹{rupees(buy * 3 + other * 5)}<' in page
    assert f'id="trades-sell">₹{rupees(sell * 2)}<' in page
    mine_only = client.get(f"/orders/trades?client={mine.id}&side=BUY", headers=HX).data.decode()
    assert 'id="trades-count">1<' in mine_only and f'id="trades-buy">₹{rupees(buy * 3)}<' in mine_only
    assert "hx-swap-oob" in mine_only and f"client={mine.id}" in mine_only  # the export link follows the search
    assert 'id="trades-count">0<' in client.get("/orders/trades?symbol=TCS").data.decode()
    csv = client.get(f"/orders/trades/export.csv?start={today}&end={today}&client={theirs.id}").data.decode()
    lines = csv.splitlines()
    assert len(lines) == 2 and "Theirs" in lines[1] and ",5," in lines[1]


def test_trades_by_ist_date_range(app, client, auth, trades_made):
    with app.app_context():
        first = db.session.execute(sa.select(Trade.id).order_by(Trade.id)).scalars().first()
        # 31 Dec 2025 20:00 UTC is 1 Jan 2026 01:30 IST
        db.session.execute(
            sa.update(Trade).where(Trade.id == first).values(filled_at=datetime(2025, 12, 31, 20, 0, tzinfo=UTC))
        )
        db.session.commit()
    auth.login("root")
    assert 'id="trades-count">1<' in client.get("/orders/trades?start=2026-01-01&end=2026-01-01").data.decode()
    assert 'id="trades-count">0<' in client.get("/orders/trades?start=2025-12-31&end=2025-12-31").data.decode()
    assert 'id="trades-count">2<' in client.get("/orders/trades").data.decode()  # today: the other two
    bad = client.get("/orders/trades?start=2026-01-05&end=2026-01-01")
    assert bad.status_code == 400 and "The last day is before the first." in bad.data.decode()
    assert client.get("/orders/trades/export.csv?end=tomorrow").status_code == 400


def test_trades_show_only_granted_clients(client, auth, factory, trades_made):
    mine, theirs, _ = trades_made
    factory.user("tara", role="trader", clients=[mine])
    auth.login("tara")
    page = client.get("/orders/trades").data.decode()
    assert 'id="trades-count">2<' in page and "Theirs" not in page
    assert client.get(f"/orders/trades?client={theirs.id}").status_code == 400

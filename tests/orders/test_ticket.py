"""The ticket: bad input gets a clear message and changes nothing; a good ticket writes one batch
with a NEW child per client in one transaction and enqueues one job — no broker call in the request."""

import re

import pytest
import sqlalchemy as sa
from rq import Queue

from webapp.extensions import db, get_rq_redis
from webapp.models import Batch, Order


@pytest.fixture
def trader(desk, factory, auth):
    clients = [desk.paper_client("Alpha"), desk.paper_client("Beta"), desk.paper_client("Gamma")]
    factory.user("tara", role="trader", clients=clients)
    auth.login("tara")
    return clients


TICKET_1 = "00000000-0000-4000-8000-000000000001"  # the ticket id is a UUID (the input layer refuses others)
TICKET_2 = "00000000-0000-4000-8000-000000000002"


def ticket_data(desk, clients, **fields):
    data = {
        "ticket_id": TICKET_1,
        "instrument_id": desk.instrument.id,
        "action": "BUY",
        "product": "MIS",
        "order_type": "MARKET",
        "validity": "DAY",
    }
    data.update({f"qty_{c.id}": "10" for c in clients})
    data.update(fields)
    return data


def counts(app):
    with app.app_context():
        return (
            db.session.execute(sa.select(sa.func.count()).select_from(Batch)).scalar_one(),
            db.session.execute(sa.select(sa.func.count()).select_from(Order)).scalar_one(),
        )


def queued(app):
    with app.app_context():
        return Queue("orders", connection=get_rq_redis()).count


def test_ticket_page_lists_the_traders_clients(client, trader, desk):
    page = client.get(f"/orders/new?instrument_id={desk.instrument.id}").data.decode()
    assert all(f'name="qty_{c.id}"' in page for c in trader)
    assert "NSE:INFY" in page and re.search(r'name="ticket_id" type="hidden" value="[0-9a-f-]{36}"', page)


def test_ticket_page_shows_each_clients_capital_as_last_synced(app, client, trader, desk):
    from decimal import Decimal

    from webapp.models import FundsSnapshot

    alpha, beta, _ = trader
    with app.app_context():
        db.session.add(
            FundsSnapshot(
                client_id=alpha.id,
                available_cash=Decimal("250000.50"),
                collateral=Decimal("10000"),
                margin_used=Decimal("60000.25"),
            )
        )
        db.session.commit()
    page = client.get(f"/orders/new?instrument_id={desk.instrument.id}").data.decode()
    alpha_row = re.search(rf'<tr id="ticket-client-{alpha.id}" data-capital="([^"]*)">(.*?)</tr>', page, re.S)
    beta_row = re.search(rf'<tr id="ticket-client-{beta.id}" data-capital="([^"]*)">(.*?)</tr>', page, re.S)
    assert Decimal(alpha_row.group(1)) == Decimal("200000.25") and "2,00,000" in alpha_row.group(2)
    assert beta_row.group(1) == "" and "—" in beta_row.group(2)  # never synced: no capital to split by


def test_a_good_ticket_writes_one_batch_and_enqueues_one_job(app, client, trader, desk):
    response = client.post("/orders/new", data=ticket_data(desk, trader))
    assert response.status_code == 302 and "/orders/batches/" in response.headers["Location"]
    assert counts(app) == (1, 3) and queued(app) == 1
    with app.app_context():
        children = db.session.execute(sa.select(Order)).scalars().all()
        assert {o.status for o in children} == {"NEW"}
        assert len({o.tag for o in children}) == 3 and all(re.fullmatch(r"[A-Za-z0-9]{10}", o.tag) for o in children)


def test_double_submit_makes_one_batch(app, client, trader, desk):
    first = client.post("/orders/new", data=ticket_data(desk, trader))
    second = client.post("/orders/new", data=ticket_data(desk, trader), follow_redirects=True)
    assert "This ticket was already submitted" in second.data.decode()
    assert counts(app) == (1, 3) and queued(app) == 1
    assert first.headers["Location"] in second.request.url


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"instrument_id": "999999"}, "Choose an instrument from the search."),
        ({"instrument_id": ""}, "Choose an instrument from the search."),
        ({"order_type": "LIMIT"}, "Price is required for a LIMIT order."),
        ({"order_type": "LIMIT", "price": "1548.25"}, "Price must be a multiple of the tick size ₹0.1."),
        (
            {"order_type": "LIMIT", "price": "2000.00"},
            "Price is outside today&#39;s circuit band ₹1,393.40 – ₹1,703.00.",
        ),
        ({"order_type": "LIMIT", "price": "-5"}, "Price must be above zero."),
        ({"order_type": "SL", "price": "1500.00"}, "Trigger price is required for a SL order."),
        (
            {"order_type": "SL", "price": "1490.00", "trigger_price": "1500.00"},
            "For a buy stop-loss the price must be at or above the trigger.",
        ),
        ({"price": "abc", "order_type": "LIMIT"}, "Enter a number using the digits 0-9 and a decimal point only."),
        ({"price": "NaN", "order_type": "LIMIT"}, "Enter a number using the digits 0-9 and a decimal point only."),
        ({"price": "1e309", "order_type": "LIMIT"}, "Enter a number using the digits 0-9 and a decimal point only."),
        (
            {"price": "１５４８.２", "order_type": "LIMIT"},
            "Enter a number using the digits 0-9 and a decimal point only.",
        ),
        ({"price": "9" * 30, "order_type": "LIMIT"}, "Too large: at most 10 digits before the decimal point."),
        ({"price": "1548.12345", "order_type": "LIMIT"}, "At most 4 decimal places."),
        ({"instrument_id": str(2**31)}, "Choose an instrument from the search."),
        ({"instrument_id": "١"}, "Choose an instrument from the search."),
        ({"chase": "y"}, "Only limit orders can be chased."),
        ({"chase": "y", "order_type": "LIMIT", "price": "1500.00", "chase_seconds": "1"}, "Between 2 and 300 seconds."),
    ],
)
def test_bad_order_fields(app, client, trader, desk, fields, message):
    response = client.post("/orders/new", data=ticket_data(desk, trader, **fields))
    assert response.status_code == 200 and message in response.data.decode()
    assert counts(app) == (0, 0) and queued(app) == 0


def test_quantity_errors(app, client, trader, desk):
    a, b, c = trader
    response = client.post("/orders/new", data=ticket_data(desk, trader, **{f"qty_{a.id}": "-3", f"qty_{b.id}": "2.5"}))
    body = response.data.decode()
    assert "Quantity cannot be negative." in body and "Enter a whole number of shares." in body
    assert counts(app) == (0, 0)


def test_zero_for_all_clients(app, client, trader, desk):
    response = client.post("/orders/new", data=ticket_data(desk, trader, **{f"qty_{c.id}": "0" for c in trader}))
    assert "Enter a quantity for at least one client." in response.data.decode()
    assert counts(app) == (0, 0)


def test_a_client_the_user_may_not_trade_is_refused(app, client, trader, desk):
    other = desk.paper_client("Stranger")
    data = ticket_data(desk, trader, **{f"qty_{other.id}": "5"})
    response = client.post("/orders/new", data=data)
    assert "A client on this ticket is not one you may trade." in response.data.decode()
    assert counts(app) == (0, 0) and queued(app) == 0


def test_a_disconnected_client_is_blocked_and_the_others_go_on(app, client, factory, desk, auth):
    paper = desk.paper_client("Alpha")
    kite = factory.client("Kite no session", broker="kite", credentials={"api_key": "k", "api_secret": "s"})
    factory.user("tara", role="trader", clients=[paper, kite])
    auth.login("tara")
    preview = client.post("/orders/preview", data=ticket_data(desk, [paper, kite]), headers={"HX-Request": "true"})
    assert "Broker login needed: connect this client first." in preview.data.decode()
    assert client.post("/orders/new", data=ticket_data(desk, [paper, kite])).status_code == 302
    with app.app_context():
        rows = dict(db.session.execute(sa.select(Order.client_id, Order.status)).all())
        assert rows == {paper.id: "NEW", kite.id: "FAILED"}
    assert queued(app) == 1


def test_all_clients_blocked_sends_nothing(app, client, factory, desk, auth):
    kite = factory.client("Kite no session", broker="kite")
    factory.user("tara", role="trader", clients=[kite])
    auth.login("tara")
    response = client.post("/orders/new", data=ticket_data(desk, [kite]))
    assert "No client can take this order: Broker login needed" in response.data.decode()
    assert counts(app) == (0, 0) and queued(app) == 0


@pytest.mark.parametrize(
    "limits, qty, message",
    [
        ({"max_quantity": 5}, "10", "Quantity 10 is above this client&#39;s limit of 5."),
        ({"max_order_value": "10000"}, "10", "Order value ₹15,482.00 is above this client&#39;s limit of ₹10,000.00."),
        ({"allowed_products": "CNC"}, "10", "MIS is not allowed for this client."),
        ({"kill_switch": True}, "10", "This client&#39;s kill switch is on."),
        ({"enabled": False}, "10", "This client is disabled."),
    ],
)
def test_client_limits_block_the_child(app, client, desk, factory, auth, limits, qty, message):
    from decimal import Decimal

    limits = {k: Decimal(v) if k == "max_order_value" else v for k, v in limits.items()}
    limited = desk.paper_client("Limited", **limits)
    ok = desk.paper_client("Fine")
    factory.user("tara", role="trader", clients=[limited, ok])
    auth.login("tara")
    preview = client.post("/orders/preview", data=ticket_data(desk, [limited, ok], **{f"qty_{limited.id}": qty}))
    if limits.get("enabled") is False:  # a disabled client is not on the ticket at all
        assert f"qty_{limited.id}" not in client.get("/orders/new").data.decode()
        return
    assert message in preview.data.decode()


@pytest.mark.parametrize(
    "limits, history, message",
    [
        ({"max_orders_per_day": 1}, "an order today", "This client has reached its 1 orders for today."),
        (
            {"max_daily_loss": "1000"},
            "a loss today",
            "Today&#39;s loss ₹1,500.00 has reached this client&#39;s limit of ₹1,000.00.",
        ),
        (
            {"max_open_positions": 1},
            "a position in another stock",
            "This client already holds its limit of 1 open positions.",
        ),
    ],
)
def test_client_limits_that_need_the_days_history_block_the_child(
    app, client, desk, factory, auth, limits, history, message
):
    from decimal import Decimal

    from webapp.models import Position

    limits = {k: Decimal(v) if k == "max_daily_loss" else v for k, v in limits.items()}
    limited, fine = desk.paper_client("Limited", **limits), desk.paper_client("Fine", **limits)
    user = factory.user("tara", role="trader", clients=[limited, fine])
    if history == "an order today":
        factory.batch(user, [limited], desk.instrument, quantity=1)
    else:
        other = factory.instrument("TCS", 11536, price="3900.00")
        with app.app_context():
            db.session.add(
                Position(
                    client_id=limited.id,
                    instrument_id=other.id,
                    product="MIS",
                    quantity=5,
                    cost=Decimal("19500"),
                    average_price=Decimal("3900"),
                    buy_quantity=5,
                    realized_pnl=Decimal("-1000"),
                    unrealized_pnl=Decimal("-500"),
                )
            )
            db.session.commit()
    auth.login("tara")
    response = client.post("/orders/new", data=ticket_data(desk, [limited, fine]), follow_redirects=True)
    with app.app_context():
        children = dict(
            db.session.execute(
                sa.select(Order.client_id, Order.reason).where(
                    Order.batch_id == db.session.execute(sa.select(sa.func.max(Batch.id))).scalar_one()
                )
            ).all()
        )
    assert children[fine.id] == ""  # the others go on
    assert children[limited.id] == message.replace("&#39;", "'")
    assert message in response.data.decode()


def test_viewer_cannot_trade(client, desk, factory, auth, app):
    paper = desk.paper_client("Alpha")
    factory.user("vic", role="viewer", clients=[paper])
    auth.login("vic")
    assert client.get("/orders/new").status_code == 403
    assert client.post("/orders/new", data=ticket_data(desk, [paper])).status_code == 403
    assert counts(app) == (0, 0)


def test_user_limits_block_children(app, client, desk, factory, auth):
    from decimal import Decimal

    alpha = desk.paper_client("Alpha")
    user = factory.user("tara", role="trader", clients=[alpha])
    with app.app_context():
        from webapp.models import User

        saved = db.session.get(User, user.id)
        saved.max_position_value, saved.max_orders_per_day = Decimal("5000"), 1
        db.session.commit()
    auth.login("tara")
    preview = client.post("/orders/preview", data=ticket_data(desk, [alpha])).data.decode()
    assert "Order value ₹15,482.00 is above your limit of ₹5,000.00." in preview
    ok = client.post("/orders/new", data=ticket_data(desk, [alpha], **{f"qty_{alpha.id}": "3"}))
    assert ok.status_code == 302
    again = client.post(
        "/orders/preview", data=ticket_data(desk, [alpha], ticket_id=TICKET_2, **{f"qty_{alpha.id}": "1"})
    )
    assert "You have reached your 1 orders for today." in again.data.decode()


def test_a_users_orders_per_day_count_only_todays_batches(app, client, desk, factory, auth):
    from datetime import timedelta

    from webapp.models import User
    from webapp.trading.risk import start_of_day

    alpha = desk.paper_client("Alpha")
    user = factory.user("tara", role="trader", clients=[alpha])
    yesterday = factory.batch(user, [alpha], desk.instrument, quantity=1)
    with app.app_context():
        before_midnight = start_of_day() - timedelta(minutes=1)
        db.session.execute(sa.update(Batch).where(Batch.id == yesterday.id).values(created_at=before_midnight))
        db.session.execute(sa.update(Order).where(Order.batch_id == yesterday.id).values(created_at=before_midnight))
        db.session.get(User, user.id).max_orders_per_day = 1
        db.session.commit()
    auth.login("tara")
    first = client.post("/orders/preview", data=ticket_data(desk, [alpha], **{f"qty_{alpha.id}": "1"})).data.decode()
    assert "orders for today" not in first  # yesterday's child does not count
    assert client.post("/orders/new", data=ticket_data(desk, [alpha], **{f"qty_{alpha.id}": "1"})).status_code == 302
    again = client.post(
        "/orders/preview", data=ticket_data(desk, [alpha], ticket_id=TICKET_2, **{f"qty_{alpha.id}": "1"})
    )
    assert "You have reached your 1 orders for today." in again.data.decode()


def test_a_chased_ticket_keeps_its_settings(app, client, trader, desk):
    data = ticket_data(
        desk,
        trader,
        order_type="LIMIT",
        price="1500.00",
        chase="y",
        chase_seconds="7",
        chase_max_ticks="12",
        chase_then="market",
    )
    assert client.post("/orders/new", data=data).status_code == 302
    with app.app_context():
        batch = db.session.execute(sa.select(Batch)).scalar_one()
        assert (batch.chase_seconds, batch.chase_max_ticks, batch.chase_then) == (7, 12, "market")

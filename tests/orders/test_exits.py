"""Exits on the same path: an instrument across clients, one position, a client's square-off, and
the kill switches — each with a confirmation step and an audit event."""

import pytest
import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import AuditEvent, Batch, DeskState, Order, Position
from webapp.trading import engine, sync


@pytest.fixture
def book(app, desk, factory):
    """Three paper clients who bought INFY intraday (7, 4, 1 shares), synced into the ledger."""
    clients = [desk.paper_client(name) for name in ("Alpha", "Beta", "Gamma")]
    buyer = factory.user("system-buyer", role="admin")
    for client, qty in zip(clients, (7, 4, 1)):
        batch = factory.batch(buyer, [client], desk.instrument, quantity=qty)
        with app.app_context():
            engine.send_batch(batch.id, desk.context())
            sync.sync_client(client.id, desk.context())
    return clients


def children(app, batch_id):
    with app.app_context():
        return (
            db.session.execute(sa.select(Order).where(Order.batch_id == batch_id).order_by(Order.client_id))
            .scalars()
            .all()
        )


def last_batch(app):
    with app.app_context():
        return db.session.execute(sa.select(Batch).order_by(Batch.id.desc())).scalars().first()


def test_exit_page_lists_every_holder(client, auth, factory, book, desk):
    factory.user("tara", role="trader", clients=book)
    auth.login("tara")
    page = client.get(f"/exits/{desk.instrument.id}").data.decode()
    assert all(c.name in page for c in book)


def test_exit_half_across_selected_clients(app, client, auth, factory, book, desk):
    factory.user("tara", role="trader", clients=book)
    auth.login("tara")
    alpha, beta, gamma = book
    form = {"share": "50", **{f"pick_{c.id}-{desk.instrument.id}-MIS": "1" for c in book}}
    response = client.post(f"/exits/{desk.instrument.id}", data=form)
    assert response.status_code == 302
    exits = children(app, last_batch(app).id)
    assert [(o.client_id, o.side, o.quantity) for o in exits] == [
        (alpha.id, "SELL", 3),
        (beta.id, "SELL", 2),
    ]  # 50% of 1 is 0
    with app.app_context():
        engine.send_batch(last_batch(app).id, desk.context())
        for c in book:
            sync.sync_client(c.id, desk.context())
        held = dict(db.session.execute(sa.select(Position.client_id, Position.quantity)).all())
    assert held == {alpha.id: 4, beta.id: 2, gamma.id: 1}


def test_custom_quantity_is_checked(app, client, auth, factory, book, desk):
    factory.user("tara", role="trader", clients=book)
    auth.login("tara")
    key = f"{book[0].id}-{desk.instrument.id}-MIS"
    response = client.post(
        f"/exits/{desk.instrument.id}", data={"share": "custom", f"pick_{key}": "1", f"qty_{key}": "99"}
    )
    assert "At most 7." in response.data.decode()
    assert last_batch(app).kind == "ticket"  # nothing new


def test_nothing_selected(app, client, auth, factory, book, desk):
    factory.user("tara", role="trader", clients=book)
    auth.login("tara")
    response = client.post(f"/exits/{desk.instrument.id}", data={"share": "100"})
    assert "Select at least one client to exit" in response.data.decode()


def test_limited_trader_cannot_exit_all_or_kill(client, auth, factory, book, desk):
    factory.user("lim", role="limited", clients=book)
    auth.login("lim")
    assert client.get(f"/exits/{desk.instrument.id}").status_code == 403
    assert client.post(f"/exits/clients/{book[0].id}/kill", data={"on": "1"}).status_code == 403
    assert client.post("/exits/desk/kill", data={"on": "1"}).status_code == 403
    assert client.get(f"/exits/clients/{book[0].id}/square-off").status_code == 403


def test_limited_trader_may_exit_one_position(app, client, auth, factory, book, desk):
    factory.user("lim", role="limited", clients=book)
    auth.login("lim")
    response = client.post(
        "/exits/position", data={"client_id": book[0].id, "instrument_id": desk.instrument.id, "product": "MIS"}
    )
    assert response.status_code == 302
    assert [(o.side, o.quantity) for o in children(app, last_batch(app).id)] == [("SELL", 7)]


def test_client_kill_switch_flattens_and_blocks(app, client, auth, factory, book, desk):
    factory.user("tara", role="trader", clients=book)
    auth.login("tara")
    alpha = book[0]
    confirm = client.get(f"/exits/clients/{alpha.id}/kill").data.decode()
    assert "square off 1 intraday position(s)" in confirm
    assert client.post(f"/exits/clients/{alpha.id}/kill", data={"on": "1"}).status_code == 302
    kill_batch = last_batch(app)
    assert kill_batch.kind == "kill_switch"
    assert [(o.client_id, o.side, o.quantity, o.status) for o in children(app, kill_batch.id)] == [
        (alpha.id, "SELL", 7, "NEW")
    ]
    ticket = {
        "ticket_id": "00000000-0000-4000-8000-00000000000a",
        "instrument_id": desk.instrument.id,
        "action": "BUY",
        "product": "MIS",
        "order_type": "MARKET",
        "validity": "DAY",
        f"qty_{alpha.id}": "1",
    }
    assert "This client&#39;s kill switch is on." in client.post("/orders/new", data=ticket).data.decode()
    client.post(f"/exits/clients/{alpha.id}/kill", data={"on": "0"})
    assert client.post("/orders/new", data=ticket).status_code == 302
    with app.app_context():
        actions = list(
            db.session.execute(
                sa.select(AuditEvent.action).where(AuditEvent.action.like("kill_switch%")).order_by(AuditEvent.seq)
            ).scalars()
        )
        assert actions == ["kill_switch.client.on", "kill_switch.client.off"]


def test_desk_kill_switch_is_admin_only_and_refuses_new_orders(app, client, auth, factory, book, desk):
    factory.user("tara", role="trader", clients=book)
    factory.user("root", role="admin")
    auth.login("tara")
    assert client.post("/exits/desk/kill", data={"on": "1"}).status_code == 403
    auth.logout()
    auth.login("root")
    assert "square off 3 intraday position(s)" in client.get("/exits/desk/kill").data.decode()
    assert client.post("/exits/desk/kill", data={"on": "1"}).status_code == 302
    flatten = last_batch(app)
    assert sorted(o.quantity for o in children(app, flatten.id)) == [1, 4, 7]
    with app.app_context():
        engine.send_batch(flatten.id, desk.context())
        for c in book:
            sync.sync_client(c.id, desk.context())
        assert db.session.get(DeskState, 1).kill_switch
        assert set(db.session.execute(sa.select(Position.quantity)).scalars()) == {0}  # the desk is flat
    assert "Desk kill switch is ON" in client.get("/").data.decode()
    ticket = {
        "ticket_id": "00000000-0000-4000-8000-00000000000b",
        "instrument_id": desk.instrument.id,
        "action": "BUY",
        "product": "MIS",
        "order_type": "MARKET",
        "validity": "DAY",
        f"qty_{book[0].id}": "1",
    }
    assert "The desk kill switch is on" in client.post("/orders/new", data=ticket).data.decode()


def test_square_off_a_client(app, client, auth, factory, book, desk):
    factory.user("tara", role="trader", clients=book)
    auth.login("tara")
    page = client.get(f"/exits/clients/{book[1].id}/square-off").data.decode()
    assert "SELL 4 INFY MIS" in page
    assert client.post(f"/exits/clients/{book[1].id}/square-off").status_code == 302
    batch = last_batch(app)
    assert batch.kind == "square_off" and [(o.side, o.quantity) for o in children(app, batch.id)] == [("SELL", 4)]

"""Order book, trade book, batch history and their CSV exports show only the user's clients."""

import csv
import io

import pytest

from webapp.trading import engine, sync


@pytest.fixture
def traded(app, desk, factory):
    mine, theirs = desk.paper_client("Mine"), desk.paper_client("Theirs")
    root = factory.user("root", role="admin")
    for client in (mine, theirs):
        batch = factory.batch(root, [client], desk.instrument, quantity=3)
        with app.app_context():
            engine.send_batch(batch.id, desk.context())
            sync.sync_client(client.id, desk.context())
    factory.user("tara", role="trader", clients=[mine])
    return mine, theirs


def rows(response):
    return list(csv.DictReader(io.StringIO(response.data.decode())))


def test_books_show_only_granted_clients(client, auth, traded):
    auth.login("tara")
    for path in ("/orders/", "/orders/trades", "/orders/batches"):
        page = client.get(path).data.decode()
        assert "Mine" in page or path == "/orders/batches", path
        assert "Theirs" not in page, path


def test_csv_exports_respect_access(client, auth, traded):
    auth.login("tara")
    orders = rows(client.get("/orders/export.csv"))
    assert [r["client"] for r in orders] == ["Mine"] and orders[0]["status"] == "COMPLETE"
    trades = rows(client.get("/orders/trades/export.csv"))
    assert [r["client"] for r in trades] == ["Mine"] and trades[0]["quantity"] == "3"
    assert len(rows(client.get("/orders/batches/export.csv"))) == 1
    auth.logout()
    auth.login("root")
    assert len(rows(client.get("/orders/export.csv"))) == 2


def test_order_book_filters(client, auth, traded):
    auth.login("root")
    mine, theirs = traded
    filtered = client.get(f"/orders/?client={theirs.id}", headers={"HX-Request": "true"}).data.decode()
    assert "Theirs" in filtered and "Mine" not in filtered and "<html" not in filtered
    assert "No orders." in client.get("/orders/?status=REJECTED").data.decode()


def test_batch_page_is_404_for_clients_not_granted(client, auth, traded, app):
    import sqlalchemy as sa

    from webapp.extensions import db
    from webapp.models import Order

    auth.login("tara")
    with app.app_context():
        theirs_batch = db.session.execute(sa.select(Order.batch_id).where(Order.client_id == traded[1].id)).scalar_one()
        mine_batch = db.session.execute(sa.select(Order.batch_id).where(Order.client_id == traded[0].id)).scalar_one()
    assert client.get(f"/orders/batches/{theirs_batch}").status_code == 404
    page = client.get(f"/orders/batches/{mine_batch}").data.decode()
    assert "COMPLETE" in page and "every 1s" not in page  # everything final: polling stopped

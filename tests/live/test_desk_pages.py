"""The desk's client table a page at a time (search, sort, pages), with totals, alerts and the live
partial still over every client the user may see."""

import re
from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace
from urllib.parse import unquote

import pytest
import sqlalchemy as sa

from webapp.desk.summary import PAGE_SIZE
from webapp.extensions import db
from webapp.models import Client, FundsSnapshot, Order, Position
from webapp.money import rupees
from webapp.timeutil import utcnow

N = 2 * PAGE_SIZE + 20  # three pages


def row_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr id="client-(\d+)"', html)]


@pytest.fixture
def book(app, factory):
    """N granted clients, each with one position: client i has day P&L (i − 60) × 100 (realized
    i × 10, the rest unrealized), margin used i, one open order; one more client not granted."""
    instrument = factory.instrument()
    with app.app_context():
        clients = [Client(name=f"Client {i:03d}", broker="paper", client_code=f"PC{i:03d}") for i in range(N)]
        hidden = Client(name="Hidden", broker="paper", client_code="HID")
        db.session.add_all(clients + [hidden])
        db.session.flush()
        for i, client in enumerate(clients + [hidden]):
            day = Decimal((i - 60) * 100) if client is not hidden else Decimal("-999999")
            realized = Decimal(i * 10)
            db.session.add(
                Position(
                    client_id=client.id,
                    instrument_id=instrument.id,
                    product="MIS",
                    quantity=1,
                    cost=Decimal("100"),
                    average_price=Decimal("100"),
                    realized_pnl=realized,
                    unrealized_pnl=day - realized,
                    last_price=Decimal("100"),
                )
            )
            db.session.add(FundsSnapshot(client_id=client.id, available_cash=Decimal("1000"), margin_used=Decimal(i)))
            db.session.add(
                Order(
                    client_id=client.id,
                    instrument_id=instrument.id,
                    side="BUY",
                    quantity=1,
                    product="MIS",
                    order_type="LIMIT",
                    price=Decimal("90"),
                    validity="DAY",
                    tag=f"t{i:05d}",
                    status="OPEN",
                )
            )
        db.session.commit()
        ids = {c.name: c.id for c in clients}
        hidden_id = hidden.id
    factory.user("tara", role="trader", clients=[SimpleNamespace(id=i) for i in ids.values()])
    return {"ids": ids, "hidden": hidden_id}


def name_of(book, client_id):
    return next(name for name, i in book["ids"].items() if i == client_id)


def test_a_page_of_rows_with_totals_over_every_granted_client(client, auth, book):
    auth.login("tara")
    page = client.get("/").data.decode()
    ids = row_ids(page)
    assert len(ids) == PAGE_SIZE
    # worst day P&L first: Client 000 (−6,000.00), 001, …
    assert [name_of(book, i) for i in ids[:3]] == ["Client 000", "Client 001", "Client 002"]
    assert book["hidden"] not in ids
    day = sum(Decimal((i - 60) * 100) for i in range(N))
    realized = sum(Decimal(i * 10) for i in range(N))
    assert f'id="desk-day-pnl">{rupees(day)}<' in page  # every granted client, not the page's 50
    assert f'id="desk-mtm">{rupees(day - realized)}<' in page
    assert f">{rupees(Decimal(sum(range(N))))}<" in page  # margin used over all
    assert re.search(r'Open orders</span><span class="big num">\s*' + str(N) + "<", page)
    assert f"{N} clients" in page and f"1–{PAGE_SIZE} of {N}" in page


def test_pages_clamp_to_the_last_and_sort_by_name(client, auth, book):
    auth.login("tara")
    last = client.get("/?sort=name&page=3").data.decode()
    assert [name_of(book, i) for i in row_ids(last)] == [f"Client {i:03d}" for i in range(2 * PAGE_SIZE, N)]
    assert "page 3 of 3" in last and 'rel="next"' not in last and 'rel="prev"' in last
    assert row_ids(client.get("/?sort=name&page=99").data.decode()) == row_ids(last)
    second = client.get("/?sort=name&page=2").data.decode()
    assert name_of(book, row_ids(second)[0]) == f"Client {PAGE_SIZE:03d}"


def test_search_by_name_or_code_case_insensitive(client, auth, book):
    auth.login("tara")
    found = client.get("/?q=client 11").data.decode()
    assert sorted(name_of(book, i) for i in row_ids(found)) == [f"Client {i}" for i in range(110, 120)]
    assert "1–10 of 10 matching" in found
    assert [name_of(book, i) for i in row_ids(client.get("/?q=pc007").data.decode())] == ["Client 007"]
    assert row_ids(client.get("/?q=hidden").data.decode()) == []  # not granted: not found either
    assert "No client matches" in client.get("/?q=100%25").data.decode()  # % is a character, not a wildcard


def test_an_htmx_request_gets_the_board_with_its_live_wiring(client, auth, book):
    auth.login("tara")
    board = client.get("/?sort=name&page=2", headers={"HX-Request": "true"}).data.decode()
    assert "<html" not in board and 'id="desk-board"' in board and len(row_ids(board)) == PAGE_SIZE
    ids = ",".join(map(str, row_ids(board)))
    assert f'/ws/feed?page=desk&amp;clients={ids}"' in unquote(board)
    assert f'hx-get="/desk/live?clients={ids}"' in unquote(board)


@pytest.mark.parametrize(
    "query, message",
    [
        ("page=abc", "Page must be a whole number from 1"),
        ("page=-1", "Page must be a whole number from 1"),
        ("page=0", "Page must be a whole number from 1"),
        ("page=1.5", "Page must be a whole number from 1"),
        ("page=%C2%B3", "Page must be a whole number from 1"),  # "³" is a digit to str.isdigit(), not to int()
        ("sort=random", "Sort must be one of: pnl, name."),
        ("q=" + "x" * 101, "A search is at most 100 characters."),
    ],
)
def test_bad_table_input_is_a_clear_400(client, auth, book, query, message):
    auth.login("tara")
    response = client.get(f"/?{query}")
    assert response.status_code == 400 and message in response.data.decode()


def test_the_live_partial_refreshes_the_rows_shown_and_all_totals(client, auth, book):
    auth.login("tara")
    shown = [book["ids"]["Client 005"], book["ids"]["Client 100"], book["hidden"]]
    live = client.get(f"/desk/live?clients={','.join(map(str, shown))}", headers={"HX-Request": "true"}).data.decode()
    assert sorted(row_ids(live)) == sorted(shown[:2])  # the one not granted is left out
    assert 'id="desk-totals" hx-swap-oob="true"' in live
    assert f'id="desk-day-pnl">{rupees(sum(Decimal((i - 60) * 100) for i in range(N)))}<' in live
    assert len(row_ids(client.get("/desk/live").data.decode())) == PAGE_SIZE  # no list: the first page
    for bad in ("1,x", "1,%C2%B3", ",".join(["1"] * 201)):
        response = client.get(f"/desk/live?clients={bad}")
        assert response.status_code == 400


def test_admins_see_every_client_in_the_totals(client, auth, book, factory):
    factory.user("root", role="admin")
    auth.login("root")
    page = client.get("/?q=hidden").data.decode()
    assert row_ids(page) == [book["hidden"]]
    day = sum(Decimal((i - 60) * 100) for i in range(N)) + Decimal("-999999")
    assert f'id="desk-day-pnl">{rupees(day)}<' in page and f"{N + 1} clients" in page


def test_alerts_cover_clients_on_other_pages(app, client, auth, book):
    with app.app_context():
        # the best client today sorts last (page 3), its broker session ran out an hour ago
        late = db.session.get(Client, book["ids"][f"Client {N - 1:03d}"])
        late.broker, late.session_enc, late.session_expires_at = "kite", "token", utcnow() - timedelta(hours=1)
        hidden = db.session.get(Client, book["hidden"])
        hidden.broker, hidden.session_enc, hidden.session_expires_at = "kite", "token", utcnow() - timedelta(hours=1)
        db.session.commit()
    auth.login("tara")
    page = client.get("/").data.decode()
    assert book["ids"][f"Client {N - 1:03d}"] not in row_ids(page)
    assert f"<strong>Client {N - 1:03d}</strong> — Broker session expired" in page
    assert "<strong>Hidden</strong>" not in page


def test_many_alerts_are_capped(app, client, auth, book):
    with app.app_context():
        db.session.execute(
            sa.update(Client).values(
                broker="kite", session_enc="token", session_expires_at=utcnow() - timedelta(hours=1)
            )
        )
        db.session.commit()
    auth.login("tara")
    page = client.get("/").data.decode()
    assert page.count("Broker session expired") == 30 and f"{N - 30} more alert(s) not shown" in page


def test_desk_totals_are_exact_to_the_hundredth_of_a_paisa(app, factory):
    """SQLite keeps Numeric as REAL: 300 × ₹0.0001 added to ₹99,999,999,999.0001 drifts by paise in
    floats. The totals must be the Decimal sum."""
    from webapp.desk.summary import desk_totals

    instrument = factory.instrument()
    with app.app_context():
        clients = [Client(name=f"Exact {i}", broker="paper", client_code=f"EX{i}") for i in range(300)]
        db.session.add_all(clients)
        db.session.flush()
        values = [Decimal("99999999999.0001")] + [Decimal("0.0001")] * 299
        for client, value in zip(clients, values):
            db.session.add(
                Position(
                    client_id=client.id,
                    instrument_id=instrument.id,
                    product="MIS",
                    quantity=0,
                    cost=Decimal(0),
                    average_price=Decimal(0),
                    realized_pnl=value,
                    unrealized_pnl=-value,
                )
            )
        db.session.commit()
        totals = desk_totals(None)
        assert totals.realized == Decimal("99999999999.0300") and totals.unrealized == Decimal("-99999999999.0300")
        assert totals.day_pnl == 0 and totals.clients == 300

"""The client page (issue 15): the current positions export needs no dates (only the daily P&L does),
and the recent orders table has column headers."""

import csv
import io
import re

import pytest

from webapp.trading import engine, sync


@pytest.fixture
def held(app, desk, factory):
    paper = desk.paper_client("Held")
    batch = factory.batch(factory.user("buyer", role="admin"), [paper], desk.instrument, quantity=6)
    with app.app_context():
        engine.send_batch(batch.id, desk.context())
        sync.sync_client(paper.id, desk.context())
    factory.user("tara", role="trader", clients=[paper])
    return paper


def test_positions_export_needs_no_dates(client, auth, held):
    auth.login("tara")
    response = client.post(f"/clients/{held.id}/exports", data={"kind": "positions"})
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.data.decode())))
    assert [(r["client"], r["quantity"]) for r in rows] == [("Held", "6")]


def test_positions_export_ignores_stray_dates(client, auth, held):
    auth.login("tara")
    response = client.post(f"/clients/{held.id}/exports", data={"kind": "positions", "start": "garbage"})
    assert response.mimetype == "text/csv"


def test_daily_pnl_export_still_asks_for_its_range(client, auth, held):
    auth.login("tara")
    response = client.post(f"/clients/{held.id}/exports", data={"kind": "pnl"})
    text = response.data.decode()
    assert response.mimetype == "text/html"
    assert "Choose the first day." in text and "Choose the last day." in text


def test_export_page_offers_positions_without_date_fields(client, auth, held):
    auth.login("tara")
    page = client.get(f"/clients/{held.id}/exports").data.decode()
    positions_form = re.search(r'<form[^>]*id="export-positions".*?</form>', page, re.S).group(0)
    assert 'type="date"' not in positions_form and 'name="start"' not in positions_form


def test_recent_orders_have_headers(client, auth, held):
    auth.login("tara")
    page = client.get(f"/clients/{held.id}").data.decode()
    recent = page[page.index("Recent orders") :]
    table = re.search(r"<table.*?</table>", recent, re.S).group(0)
    headers = re.findall(r"<th[^>]*>([^<]*)</th>", table.split("<tbody")[0])
    assert headers[:6] == ["#", "Time (IST)", "Batch", "Client", "Instrument", "Side"]
    first_row = re.search(r"<tr id=\"order-\d+\">(.*?)</tr>", table, re.S).group(1)
    assert len(re.findall(r"<td", first_row)) == len(headers)  # one header per column

"""The exit page (issue 15): every holder ticked at first, 50% rounding said next to the row, and a
confirmation step naming each client, side and quantity and the total before anything is sent."""

import re

import pytest
import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import Batch, Order
from webapp.trading import engine, sync
from webapp.trading.exits import share_note


@pytest.fixture
def book(app, desk, factory):
    """Three paper clients long INFY intraday: 3, 4 and 1 shares."""
    clients = [desk.paper_client(name) for name in ("Alpha", "Beta", "Gamma")]
    buyer = factory.user("system-buyer", role="admin")
    for client, qty in zip(clients, (3, 4, 1)):
        batch = factory.batch(buyer, [client], desk.instrument, quantity=qty)
        with app.app_context():
            engine.send_batch(batch.id, desk.context())
            sync.sync_client(client.id, desk.context())
    factory.user("tara", role="trader", clients=clients)
    return clients


def keys(book, desk):
    return [f"{c.id}-{desk.instrument.id}-MIS" for c in book]


def exit_batches(app) -> list[int]:
    with app.app_context():
        return list(db.session.execute(sa.select(Batch.id).where(Batch.kind == "exit")).scalars())


def legs(text: str) -> dict[str, tuple[str, str]]:
    """leg-<key> rows of the review: key -> (side, quantity)."""
    found = {}
    for key, row in re.findall(r'<tr id="leg-([^"]+)"[^>]*>(.*?)</tr>', text, re.S):
        side = re.search(r"side-(buy|sell)\">(\w+)<", row)
        qty = re.search(r'class="num qty-cell">(\d+)<', row)
        found[key] = (side.group(2) if side else "", qty.group(1) if qty else "0")
    return found


def test_share_note_says_how_it_rounded():
    assert share_note(3, 50) == "50% of 3 = 1 (rounded down)"
    assert share_note(-3, 50) == "50% of 3 = 1 (rounded down)"
    assert share_note(4, 50) is None
    assert share_note(1, 50) == "50% of 1 = 0 (rounded down; nothing to exit)"
    assert share_note(30, 50, lot_size=10) == "50% of 30 = 10 (rounded down to a lot of 10)"


def test_every_holder_is_ticked_and_the_half_rounding_is_said(client, auth, book, desk):
    auth.login("tara")
    page = client.get(f"/exits/{desk.instrument.id}").data.decode()
    for key in keys(book, desk):
        assert re.search(rf'name="pick_{key}" value="1"[^>]*checked', page), key
    alpha, beta, gamma = keys(book, desk)
    assert re.search(rf'id="half-{alpha}">.*50% of 3 = 1 \(rounded down\)', page)
    assert re.search(rf'id="half-{beta}"><span class="mono">2<', page)  # exact: no note
    assert re.search(rf'id="half-{gamma}">.*50% of 1 = 0', page)
    assert "data-confirm" not in page  # no vague browser dialog: a review step


def test_review_lists_each_client_side_quantity_and_total_and_sends_nothing(app, client, auth, book, desk):
    auth.login("tara")
    alpha, beta, gamma = keys(book, desk)
    form = {"share": "50", "step": "review", **{f"pick_{k}": "1" for k in (alpha, beta, gamma)}}
    response = client.post(f"/exits/{desk.instrument.id}", data=form)
    text = response.data.decode()
    assert response.status_code == 200
    assert legs(text) == {alpha: ("SELL", "1"), beta: ("SELL", "2"), gamma: ("", "0")}
    assert "50% of 3 = 1 (rounded down)" in text and "50% of 1 = 0" in text
    assert re.search(r'id="exit-total".*SELL</span> 3.*2 order\(s\)', text, re.S)
    assert all(name in text for name in ("Alpha", "Beta", "Gamma"))
    assert exit_batches(app) == []  # the review writes nothing


def test_confirming_sends_exactly_what_was_reviewed(app, client, auth, book, desk):
    auth.login("tara")
    alpha, beta, _ = keys(book, desk)
    form = {"share": "50", f"pick_{alpha}": "1", f"pick_{beta}": "1"}
    response = client.post(
        f"/exits/{desk.instrument.id}", data={**form, "step": "confirm", f"expect_{alpha}": "1", f"expect_{beta}": "2"}
    )
    assert response.status_code == 302
    (batch_id,) = exit_batches(app)
    with app.app_context():
        query = sa.select(Order.client_id, Order.side, Order.quantity).where(Order.batch_id == batch_id)
        sent = db.session.execute(query)
        assert sorted(sent) == [(book[0].id, "SELL", 1), (book[1].id, "SELL", 2)]


def test_a_confirmation_sent_twice_exits_once(app, client, auth, book, desk):
    auth.login("tara")
    alpha, _, _ = keys(book, desk)
    form = {"share": "100", f"pick_{alpha}": "1"}
    review = client.post(f"/exits/{desk.instrument.id}", data={**form, "step": "review"}).data.decode()
    confirm = {
        **form,
        "step": "confirm",
        **dict(re.findall(r'name="(expect_[^"]+|ticket_id)" value="([^"]+)"', review)),
    }
    assert "ticket_id" in confirm and confirm[f"expect_{alpha}"] == "3"
    first = client.post(f"/exits/{desk.instrument.id}", data=confirm)
    second = client.post(f"/exits/{desk.instrument.id}", data=confirm)  # a double click, a resent form
    assert first.status_code == second.status_code == 302
    assert first.headers["Location"] == second.headers["Location"]
    assert len(exit_batches(app)) == 1


def test_a_confirmation_that_no_longer_matches_goes_back_to_review(app, client, auth, book, desk):
    auth.login("tara")
    alpha, _, _ = keys(book, desk)
    stale = {"share": "100", f"pick_{alpha}": "1", "step": "confirm", f"expect_{alpha}": "5"}  # holds 3 now
    response = client.post(f"/exits/{desk.instrument.id}", data=stale)
    text = response.data.decode()
    assert response.status_code == 200 and "holdings changed since you reviewed" in text
    assert legs(text) == {alpha: ("SELL", "3")}
    assert exit_batches(app) == []


def test_change_keeps_the_choices(client, auth, book, desk):
    auth.login("tara")
    alpha, beta, gamma = keys(book, desk)
    page = client.post(
        f"/exits/{desk.instrument.id}", data={"share": "50", "step": "edit", f"pick_{beta}": "1"}
    ).data.decode()
    assert re.search(rf'name="pick_{beta}" value="1"[^>]*checked', page)
    assert not re.search(rf'name="pick_{alpha}" value="1"[^>]*checked', page)
    assert re.search(r'value="50"\s+checked', page)

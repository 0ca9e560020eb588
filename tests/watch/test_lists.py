"""The market watch's lists: add from search, remove, five lists of fifty, the chosen list remembered,
and what a refused request says (and that it changes nothing)."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from tests.conftest import count
from webapp.extensions import db
from webapp.instruments import watch
from webapp.models import Instrument, WatchlistItem

HX = {"HX-Request": "true"}


@pytest.fixture
def world(app, factory):
    infy = factory.instrument("INFY", 1594, price="1548.20")
    tcs = factory.instrument("TCS", 11536, price="3102.50")
    factory.user("tara")
    factory.user("omar")
    return infy, tcs


def rows(app, username: str) -> list[tuple[int, str, int]]:
    """(list, symbol, position) of a user's watch, in order."""
    with app.app_context():
        return [
            tuple(r)
            for r in db.session.execute(
                sa.select(WatchlistItem.list_no, Instrument.tradingsymbol, WatchlistItem.position)
                .join(Instrument, Instrument.id == WatchlistItem.instrument_id)
                .where(WatchlistItem.user_id == _user_id(username))
                .order_by(WatchlistItem.list_no, WatchlistItem.position)
            ).all()
        ]


def _user_id(username: str) -> int:
    from webapp.models import User

    return db.session.execute(sa.select(User.id).where(User.username == username)).scalar_one()


def add(client, instrument_id, list_no="1", htmx=True):
    return client.post(
        "/instruments/watch/add",
        data={"instrument_id": str(instrument_id), "list": str(list_no)},
        headers=HX if htmx else {},
    )


def test_add_from_search_then_the_watch_shows_it_and_remove_takes_it_off(app, client, auth, world):
    infy, tcs = world
    auth.login("tara")
    found = client.get("/instruments/watch/search?find=inf&list=1", headers=HX).get_data(as_text=True)
    assert "INFY" in found and "TCS" not in found and "+ Add" in found
    response = add(client, infy.id)
    assert response.status_code == 303  # GET after POST: the watch again, a refresh repeats nothing
    assert response.headers["Location"] == "/instruments/watch?list=1"
    add(client, tcs.id)
    page = client.get(response.headers["Location"], headers=HX).get_data(as_text=True)
    assert page.index(f"mw-row-{infy.id}") < page.index(f"mw-row-{tcs.id}")  # in the order added
    assert f'data-buy="/orders/new?instrument_id={infy.id}&amp;side=BUY"' in page
    assert f'data-sell="/orders/new?instrument_id={infy.id}&amp;side=SELL"' in page
    assert "on list 1" in client.get("/instruments/watch/search?find=INFY&list=1", headers=HX).get_data(as_text=True)
    response = client.post("/instruments/watch/remove", data={"instrument_id": str(infy.id), "list": "1"}, headers=HX)
    assert response.status_code == 303
    assert rows(app, "tara") == [(1, "TCS", 2)]


def test_each_list_is_its_own_and_the_chosen_one_is_remembered(app, client, auth, world):
    infy, tcs = world
    auth.login("tara")
    add(client, infy.id, 1)
    add(client, infy.id, 2)  # the same instrument on another list
    add(client, tcs.id, 2)
    assert rows(app, "tara") == [(1, "INFY", 1), (2, "INFY", 1), (2, "TCS", 2)]
    two = client.get("/instruments/watch?list=2", headers=HX).get_data(as_text=True)
    assert 'id="mw-tab-2"' in two and f"mw-row-{tcs.id}" in two
    page = client.get("/clients/").get_data(as_text=True)  # the next page's market watch shows list 2
    assert 'data-list="2"' in page and f"mw-row-{tcs.id}" in page
    assert "List 2" in client.get("/instruments/watchlist").get_data(as_text=True)


def test_a_duplicate_is_refused_with_a_message_and_changes_nothing(app, client, auth, world):
    infy, _ = world
    auth.login("tara")
    add(client, infy.id)
    response = add(client, infy.id)
    assert response.status_code == 422
    assert "INFY is already on list 1." in response.get_data(as_text=True)
    assert 'id="mw-error"' in response.get_data(as_text=True)
    assert rows(app, "tara") == [(1, "INFY", 1)]


def test_a_list_holds_fifty(app, client, auth, world):
    auth.login("tara")
    with app.app_context():
        many = [
            Instrument(
                instrument_token=900000 + n,
                exchange_token=9000 + n,
                exchange="NSE",
                tradingsymbol=f"S{n:02d}",
                tick_size=Decimal("0.05"),
                lot_size=1,
            )
            for n in range(51)
        ]
        db.session.add_all(many)
        db.session.commit()
        ids = [i.id for i in many]
    for instrument_id in ids[:50]:
        assert add(client, instrument_id, 3).status_code == 303
    response = add(client, ids[50], 3)
    assert response.status_code == 422
    assert "List 3 is full (50 instruments)" in response.get_data(as_text=True)
    assert add(client, ids[50], 4).status_code == 303  # another list has room
    with app.app_context():
        assert count(WatchlistItem) == 51


@pytest.mark.parametrize("list_no", ["0", "6", "-1", "abc", "１", "", "1.0", "99999999999999999999"])
def test_a_list_outside_1_to_5_is_refused(app, client, auth, world, list_no):
    infy, _ = world
    auth.login("tara")
    response = add(client, infy.id, list_no)
    assert response.status_code == 422
    assert "Choose a list from 1 to 5." in response.get_data(as_text=True)
    with app.app_context():
        assert count(WatchlistItem) == 0


@pytest.mark.parametrize("instrument_id", ["0", "999999", "x", "", "2147483648", "1e3", "<script>"])
def test_an_unknown_instrument_is_refused(app, client, auth, world, instrument_id):
    auth.login("tara")
    response = add(client, instrument_id)
    assert response.status_code == 422 and "Choose an instrument from the search." in response.get_data(as_text=True)
    response = client.post("/instruments/watch/remove", data={"instrument_id": instrument_id, "list": "1"}, headers=HX)
    assert response.status_code == 422
    with app.app_context():
        assert count(WatchlistItem) == 0


def test_a_plain_form_post_comes_back_to_the_full_page_with_the_message(app, client, auth, world):
    infy, _ = world
    auth.login("tara")
    response = add(client, infy.id, 2, htmx=False)
    assert response.status_code == 302 and response.headers["Location"] == "/instruments/watchlist?list=2"
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "INFY added to list 2." in page
    response = add(client, infy.id, 2, htmx=False)
    assert "INFY is already on list 2." in client.get(response.headers["Location"]).get_data(as_text=True)


def test_one_user_never_touches_anothers_lists(app, client, auth, world):
    infy, _ = world
    auth.login("tara")
    add(client, infy.id)
    auth.logout()
    auth.login("omar")
    response = client.post("/instruments/watch/remove", data={"instrument_id": str(infy.id), "list": "1"}, headers=HX)
    assert response.status_code == 422  # not on omar's list: tara's row stays
    assert f"mw-row-{infy.id}" not in client.get("/instruments/watch?list=1", headers=HX).get_data(as_text=True)
    assert rows(app, "tara") == [(1, "INFY", 1)]


def test_signed_out_nobody_reads_or_changes_a_watch(app, client, world):
    infy, _ = world
    for method, url in [
        ("GET", "/instruments/watch?list=1"),
        ("GET", "/instruments/watch/search?find=INF"),
        ("GET", "/instruments/watchlist"),
        ("POST", "/instruments/watch/add"),
        ("POST", "/instruments/watch/remove"),
    ]:
        response = client.open(url, method=method, data={"instrument_id": str(infy.id), "list": "1"})
        assert response.status_code == 302 and "/login" in response.headers["Location"], url
    with app.app_context():
        assert count(WatchlistItem) == 0


def test_a_viewer_watches_but_gets_no_buy_or_sell(app, client, auth, factory, world):
    infy, _ = world
    factory.user("vic", role="viewer")
    auth.login("vic")
    add(client, infy.id)
    page = client.get("/instruments/watch?list=1", headers=HX).get_data(as_text=True)
    assert f"mw-row-{infy.id}" in page and "data-buy" not in page and 'class="mw-b"' not in page


@pytest.mark.parametrize("q", ["%", "_", "' OR 1=1 --", "<b>x</b>", "x" * 500, "\x00", "ＩＮＦＹ"])
def test_hostile_searches_answer_plainly(app, client, auth, world, q):
    auth.login("tara")
    response = client.get("/instruments/watch/search", query_string={"find": q, "list": "9"}, headers=HX)
    assert response.status_code == (400 if q == "\x00" else 200)  # a NUL is refused before any view
    assert "<b>x</b>" not in response.get_data(as_text=True)


def test_the_instrument_page_watch_button_uses_the_chosen_list(app, client, auth, world):
    infy, _ = world
    auth.login("tara")
    client.get("/instruments/watch?list=4", headers=HX)
    assert "Watch (list 4)" in client.get(f"/instruments/{infy.id}").get_data(as_text=True)
    client.post(f"/instruments/{infy.id}/watch")
    assert rows(app, "tara") == [(4, "INFY", 1)]
    client.post(f"/instruments/{infy.id}/watch")
    assert rows(app, "tara") == []


def test_moves_are_exact_decimals():
    move = watch.Move(Decimal("1551.00"), Decimal("1548.20"), live=True)
    assert move.change == Decimal("2.80") and move.percent == Decimal("0.18") and move.direction == "up"
    down = watch.Move(Decimal("3000.00"), Decimal("3102.50"), live=True)
    assert down.change == Decimal("-102.50") and down.percent == Decimal("-3.30") and down.direction == "down"
    assert watch.Move(Decimal("5"), Decimal("5"), live=True).direction == ""
    assert watch.Move(Decimal("5"), None, live=True).percent is None
    assert watch.Move(Decimal("5"), Decimal("0"), live=True).percent is None

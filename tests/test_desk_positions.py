"""The desk-wide positions page (/positions): filters in the query string, totals over the filtered
set in Decimal, access per role, hostile queries, the CSV export, and exiting a selection of rows
through the exit domain (the legs it builds, and the positions it refuses); the desk MTM series."""

import csv
import io
import re
from decimal import Decimal

import pytest
import sqlalchemy as sa

from webapp.desk.book import desk_mtm_series
from webapp.extensions import db
from webapp.models import Batch, Position


@pytest.fixture
def book(app, factory):
    """Alpha long 7 INFY MIS and short 3 SBIN CNC, Beta long 4 INFY MIS, Gamma long 2 INFY MTF;
    Hidden (granted to nobody but admins) long 9 INFY MIS; Beta's closed SBIN MIS (flat)."""
    infy = factory.instrument("INFY", 1594, price="1548.20")
    sbin = factory.instrument("SBIN", 3045, price="951.15", tick="0.05")
    alpha, beta, gamma, hidden = (factory.client(n) for n in ("Alpha", "Beta", "Gamma", "Hidden"))
    rows = [
        (alpha, infy, "MIS", 7, "1500.10", "337.05", "10.50"),
        (alpha, sbin, "CNC", -3, "960.00", "26.55", "0"),
        (beta, infy, "MIS", 4, "1550.00", "-7.20", "-1.25"),
        (gamma, infy, "MTF", 2, "1540.00", "16.40", "0"),
        (hidden, infy, "MIS", 9, "1500.00", "433.80", "0"),
        (beta, sbin, "MIS", 0, "0", "0", "5.00"),
    ]
    with app.app_context():
        for client, instrument, product, qty, avg, unrealized, realized in rows:
            db.session.add(
                Position(
                    client_id=client.id,
                    instrument_id=instrument.id,
                    product=product,
                    quantity=qty,
                    cost=abs(qty) * Decimal(avg),
                    average_price=Decimal(avg),
                    last_price=instrument.last_price,
                    unrealized_pnl=Decimal(unrealized),
                    realized_pnl=Decimal(realized),
                )
            )
        db.session.commit()
    granted = [alpha, beta, gamma]
    for role in ("trader", "limited", "viewer"):
        factory.user(role, role=role, clients=granted)
    factory.user("boss", role="admin")
    return {"alpha": alpha, "beta": beta, "gamma": gamma, "hidden": hidden, "infy": infy, "sbin": sbin}


def shown(html: str) -> list[tuple[str, str]]:
    """(client name, symbol) of each row, from the row's links."""
    return re.findall(
        r'<tr id="dpos-\d+">.*?<a href="/clients/\d+">([^<]+)</a>.*?<a href="/instruments/\d+">([^<]+)</a>', html, re.S
    )


def total(html: str, name: str) -> str:
    return re.search(rf'id="pt-{name}">([^<]*)<', html).group(1)


def test_every_open_position_of_the_visible_clients_with_exact_totals(client, auth, book):
    auth.login("trader")
    html = client.get("/positions/").data.decode()
    assert shown(html) == [("Alpha", "INFY"), ("Alpha", "SBIN"), ("Beta", "INFY"), ("Gamma", "INFY")]
    assert "Hidden" not in html  # not granted
    # 337.05 + 26.55 − 7.20 + 16.40 = 372.80 MTM; realized 10.50 − 1.25 = 9.25 (the totals are the
    # table's: Beta's closed SBIN is not an open position)
    assert total(html, "count") == "4" and total(html, "clients") == "3"
    assert total(html, "unrealized") == "372.80" and total(html, "realized") == "9.25"
    assert total(html, "day") == "382.05"


def test_admin_sees_every_client(client, auth, book):
    auth.login("boss")
    html = client.get("/positions/").data.decode()
    assert ("Hidden", "INFY") in shown(html) and total(html, "unrealized") == "806.60"


@pytest.mark.parametrize(
    "query, expected, unrealized",
    [
        ("instrument=inf", [("Alpha", "INFY"), ("Beta", "INFY"), ("Gamma", "INFY")], "346.25"),
        ("product=MIS", [("Alpha", "INFY"), ("Beta", "INFY")], "329.85"),
        ("instrument=SBIN&product=CNC", [("Alpha", "SBIN")], "26.55"),
        ("instrument=%25", [], "0.00"),  # a LIKE wildcard is a character, not "anything"
        ("instrument=_NFY", [], "0.00"),
    ],
)
def test_filters_narrow_rows_and_totals(client, auth, book, query, expected, unrealized):
    auth.login("trader")
    html = client.get(f"/positions/?{query}").data.decode()
    assert shown(html) == expected and total(html, "unrealized") == unrealized


def test_client_filter_and_a_client_not_granted(client, auth, book):
    auth.login("trader")
    html = client.get(f"/positions/?client={book['beta'].id}").data.decode()
    assert shown(html) == [("Beta", "INFY")] and total(html, "realized") == "-1.25"
    response = client.get(f"/positions/?client={book['hidden'].id}")
    html = response.data.decode()
    assert response.status_code == 400 and 'id="pf-client-error">Choose a client from the list.' in html
    assert "dpos-" not in html and "433.80" not in html  # nothing of the hidden client


@pytest.mark.parametrize(
    "query, field",
    [
        ("client=abc", "client"),
        ("client=" + "9" * 400, "client"),
        ("client=-1", "client"),
        ("client=%D9%A1", "client"),  # an Arabic-Indic digit
        ("product=NRML", "product"),
        ("product=%3Cscript%3E", "product"),
        ("instrument=" + "A" * 41, "instrument"),
    ],
)
def test_hostile_filters_get_a_message_next_to_the_field(client, auth, book, query, field):
    auth.login("viewer")
    response = client.get(f"/positions/?{query}")
    html = response.data.decode()
    assert response.status_code == 400 and f'id="pf-{field}-error"' in html and "<script>" not in html
    assert client.get(f"/positions/export.csv?{query}").status_code == 400
    assert client.get(f"/positions/live?{query}").status_code == 400


def test_the_live_partial_follows_the_shown_rows_in_scope(app, client, auth, book):
    with app.app_context():
        ids = {
            (p.client_id, p.product): p.id
            for p in db.session.execute(sa.select(Position).where(Position.quantity != 0)).scalars()
        }
    mine, hidden = ids[(book["alpha"].id, "MIS")], ids[(book["hidden"].id, "MIS")]
    auth.login("trader")
    response = client.get(f"/positions/live?ids={mine},{hidden}&instrument=INFY")
    html = response.data.decode()
    assert response.status_code == 200
    assert f'id="dpos-{mine}-pnl"' in html and f"dpos-{hidden}" not in html
    assert 'id="pt-unrealized">346.25<' in html and 'hx-swap-oob="true"' in html
    for bad in ("abc", "1,,x", ",".join(["1"] * 300), "9" * 40):
        assert client.get(f"/positions/live?ids={bad}").status_code == 400


def test_csv_export_of_the_filtered_table(client, auth, book):
    auth.login("viewer")
    response = client.get("/positions/export.csv?instrument=INFY")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    table = list(csv.reader(io.StringIO(response.data.decode())))
    assert table[0][:6] == ["client", "client_code", "broker", "instrument", "product", "quantity"]
    assert [(r[0], r[3], r[5]) for r in table[1:]] == [
        ("Alpha", "NSE:INFY", "7"),
        ("Beta", "NSE:INFY", "4"),
        ("Gamma", "NSE:INFY", "2"),
    ]
    assert sum(Decimal(r[8]) for r in table[1:]) == Decimal("346.25")


@pytest.mark.parametrize(
    "role, status, sees_boxes, sees_row_exit",
    [
        ("trader", 200, True, False),
        ("boss", 200, True, False),
        ("limited", 200, False, True),
        ("viewer", 200, False, False),
    ],
)
def test_what_each_role_may_do_on_the_page(client, auth, book, role, status, sees_boxes, sees_row_exit):
    auth.login(role)
    response = client.get("/positions/")
    html = response.data.decode()
    assert response.status_code == status
    assert ('class="position-pick"' in html) is sees_boxes and ('id="positions-exit"' in html) is sees_boxes
    assert ('action="/exits/position"' in html) is sees_row_exit


@pytest.mark.parametrize("role", ["limited", "viewer"])
def test_limited_and_viewers_cannot_exit_a_selection(app, client, auth, book, role):
    auth.login(role)
    key = f"{book['alpha'].id}-{book['infy'].id}-MIS"
    response = client.post("/positions/exit", data={"pick": key, "step": "confirm", f"expect_{key}": "7"})
    assert response.status_code == 403
    with app.app_context():
        assert db.session.execute(sa.select(sa.func.count()).select_from(Batch)).scalar() == 0


def batches(app):
    with app.app_context():
        return [
            (b.kind, b.instrument_id, sorted((o.client_id, o.side, o.quantity, o.product) for o in b.orders))
            for b in db.session.execute(sa.select(Batch)).scalars()
        ]


def test_review_then_confirm_exits_the_selected_positions_in_one_batch(app, client, auth, book):
    alpha, beta, infy, sbin = book["alpha"], book["beta"], book["infy"], book["sbin"]
    picks = [f"{alpha.id}-{sbin.id}-CNC", f"{beta.id}-{infy.id}-MIS"]
    auth.login("trader")
    review = client.post("/positions/exit", data={"pick": picks, "step": "review"})
    html = review.data.decode()
    assert review.status_code == 200 and batches(app) == []  # a review writes nothing
    legs = re.findall(r'<tr id="leg-([^"]+)">.*?side-(buy|sell).*?qty-cell">(\d+)<', html, re.S)
    assert legs == [(picks[0], "buy", "3"), (picks[1], "sell", "4")]  # Alpha's short is bought back
    assert "Alpha" in html and "Beta" in html and "Send 2 exit order(s)" in html
    expect = dict(re.findall(r'name="(expect_[^"]+)" value="(\d+)"', html))
    response = client.post("/positions/exit", data={"pick": picks, "step": "confirm", **expect})
    assert response.status_code == 302 and "/orders/batches/" in response.headers["Location"]
    assert batches(app) == [
        ("exit", None, sorted([(alpha.id, "BUY", 3, "CNC"), (beta.id, "SELL", 4, "MIS")])),
    ]


def test_a_confirmation_sent_twice_exits_once(app, client, auth, book):
    """A double click on Send (or a resent form) must not exit again: with the positions not yet
    moved by the first batch, a second would exit past flat."""
    key = f"{book['alpha'].id}-{book['infy'].id}-MIS"
    auth.login("trader")
    html = client.post("/positions/exit", data={"pick": key, "step": "review"}).data.decode()
    confirm = {
        "pick": key,
        "step": "confirm",
        **dict(re.findall(r'name="(expect_[^"]+|ticket_id)" value="([^"]+)"', html)),
    }
    assert "ticket_id" in confirm
    first = client.post("/positions/exit", data=confirm)
    second = client.post("/positions/exit", data=confirm)
    assert first.status_code == second.status_code == 302
    assert first.headers["Location"] == second.headers["Location"]  # the second shows the first batch
    assert batches(app) == [("exit", book["infy"].id, [(book["alpha"].id, "SELL", 7, "MIS")])]


def test_a_confirm_that_no_longer_matches_the_review_sends_nothing(app, client, auth, book):
    key = f"{book['alpha'].id}-{book['infy'].id}-MIS"
    auth.login("trader")
    response = client.post("/positions/exit", data={"pick": key, "step": "confirm", f"expect_{key}": "5"})
    assert response.status_code == 409 and "changed since your review" in response.data.decode()
    response = client.post("/positions/exit", data={"pick": key, "step": "confirm"})  # no review at all
    assert response.status_code == 409 and batches(app) == []
    response = client.post("/positions/exit", data={"pick": key, "step": "confirm", f"expect_{key}": "7"})
    assert response.status_code == 302
    assert batches(app) == [("exit", book["infy"].id, [(book["alpha"].id, "SELL", 7, "MIS")])]


@pytest.mark.parametrize(
    "picks, message",
    [
        (lambda b: [f"{b['hidden'].id}-{b['infy'].id}-MIS"], "not open positions of your clients"),
        (lambda b: [f"{b['alpha'].id}-{b['infy'].id}-MIS", f"{b['hidden'].id}-{b['infy'].id}-MIS"], "1 selected"),
        (lambda b: [f"{b['beta'].id}-{b['sbin'].id}-MIS"], "not open positions"),  # flat
        (lambda b: [f"{b['alpha'].id}-{b['infy'].id}-CNC"], "not open positions"),  # no such position
        (lambda b: ["1-2-MIS;DROP"], "not a list of positions"),
        (lambda b: ["<script>"], "not a list of positions"),
        (lambda b: [f"{i}-1-MIS" for i in range(1, 300)], "At most 200"),
        (lambda b: [], "Select at least one"),
    ],
)
def test_selections_that_are_refused_change_nothing(app, client, auth, book, picks, message):
    auth.login("trader")
    keys = picks(book)
    data = {"pick": keys, "step": "confirm", **{f"expect_{k}": "9" for k in keys}}
    response = client.post("/positions/exit", data=data)
    assert response.status_code == 400 and message in response.data.decode()
    assert batches(app) == []


def test_desk_mtm_sums_each_clients_latest_sample():
    samples = {
        1: [{"time": 100, "value": "10.10"}, {"time": 120, "value": "-5.05"}],
        2: [{"time": 110, "value": "0.20"}, {"time": 120, "value": "0.30"}, {"time": 130, "value": "1.00"}],
        3: [],
    }
    assert desk_mtm_series(samples) == [
        {"time": 100, "value": "10.10"},
        {"time": 110, "value": "10.30"},  # client 1 carried forward
        {"time": 120, "value": "-4.75"},
        {"time": 130, "value": "-4.05"},
    ]


def test_desk_mtm_route_sums_the_visible_clients_only(app, client, auth, book, redis_client):
    from webapp.timeutil import IST, utcnow
    from webapp.trading.pnl import PNL_SAMPLES_KEY

    day = utcnow().astimezone(IST).date().isoformat()
    for c, value in ((book["alpha"], "100.25"), (book["beta"], "-0.25"), (book["hidden"], "5000")):
        redis_client.zadd(PNL_SAMPLES_KEY.format(client_id=c.id, day=day), {f"1000:{value}": 1000})
    auth.login("trader")
    series = client.get("/desk/mtm.json").get_json()["series"]
    # the samples summed, then now: the desk's day P&L (realized + MTM of every position, closed ones too)
    assert series[0] == {"time": 1000, "value": "100.00"} and len(series) == 2
    assert series[1]["time"] > 1000 and Decimal(series[1]["value"]) == Decimal("387.05")
    auth.logout()
    auth.login("boss")
    series = client.get("/desk/mtm.json").get_json()["series"]
    assert series[0] == {"time": 1000, "value": "5100.00"} and Decimal(series[1]["value"]) == Decimal("820.85")
    html = client.get("/").data.decode()
    assert 'id="desk-mtm-chart"' in html and 'data-series="/desk/mtm.json"' in html

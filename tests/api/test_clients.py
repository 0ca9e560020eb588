"""/api/v1/clients: only granted clients, in lists and on every sub-path; pages; money as exact
decimal strings; every role with a read key; bad query values refused with a message per field."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest

from webapp.extensions import db
from webapp.models import FundsSnapshot, Holding, Order, Position, Trade
from webapp.timeutil import utcnow

SUB_PATHS = ("", "/funds", "/positions", "/holdings", "/orders", "/trades")
MONEY = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")


def _add(app, *rows):
    with app.app_context():
        db.session.add_all(rows)
        db.session.commit()
        return [row.id for row in rows if hasattr(row, "id")]


def _position(client, instrument, **fields):
    values = {"product": "MIS", "quantity": 0, "average_price": Decimal("0"), "cost": Decimal("0")}
    values.update(fields)
    return Position(client_id=client.id, instrument_id=instrument.id, **values)


@pytest.fixture
def desk(factory):
    """Three clients; the trader is granted the first two."""
    mine = [factory.client("Asha Rao", code="AR01"), factory.client("Bela Shah", code="BS02")]
    other = factory.client("Chirag Iyer", code="CI03")
    trader = factory.user("tara", role="trader", clients=mine)
    admin = factory.user("root", role="admin")
    return mine, other, trader, admin


def test_a_trader_lists_only_the_clients_granted(desk, api_as, factory):
    mine, other, trader, admin = desk
    body = api_as(trader).get("/api/v1/clients").get_json()
    assert [c["id"] for c in body["items"]] == [mine[0].id, mine[1].id]
    assert body["total"] == 2 and other.id not in [c["id"] for c in body["items"]]
    assert api_as(trader).get(f"/api/v1/clients?q={other.client_code}").get_json()["items"] == []
    everyone = api_as(admin).get("/api/v1/clients").get_json()
    assert [c["name"] for c in everyone["items"]] == ["Asha Rao", "Bela Shah", "Chirag Iyer"]


def test_an_ungranted_client_is_a_404_on_every_path(desk, api_as):
    mine, other, trader, admin = desk
    api = api_as(trader)
    for sub in SUB_PATHS:
        for client_id in (other.id, 999_999):  # not granted / does not exist: the same answer
            reply = api.get(f"/api/v1/clients/{client_id}{sub}")
            assert reply.status_code == 404, sub
            assert reply.get_json()["error"]["code"] == "not_found"
        assert api.get(f"/api/v1/clients/{mine[0].id}{sub}").status_code == 200, sub
        assert api_as(admin).get(f"/api/v1/clients/{other.id}{sub}").status_code == 200, sub


@pytest.mark.parametrize("role", ["viewer", "limited", "trader", "admin"])
def test_every_role_reads_its_clients_with_a_read_key(role, factory, api_as):
    granted, hidden = factory.client("Granted"), factory.client("Hidden")
    user = factory.user(f"u-{role}", role=role, clients=[granted])
    api = api_as(user, scopes=["read"])
    listed = [c["id"] for c in api.get("/api/v1/clients").get_json()["items"]]
    assert listed == ([granted.id, hidden.id] if role == "admin" else [granted.id])
    for sub in SUB_PATHS:
        assert api.get(f"/api/v1/clients/{granted.id}{sub}").status_code == 200
        assert api.get(f"/api/v1/clients/{hidden.id}{sub}").status_code == (200 if role == "admin" else 404)


def test_a_key_without_the_read_scope_is_refused(factory, api_as):
    client = factory.client()
    user = factory.user("tara", role="trader", clients=[client])
    reply = api_as(user, scopes=["trade"]).get(f"/api/v1/clients/{client.id}")
    assert reply.status_code == 403 and reply.get_json()["error"]["code"] == "scope"


def test_pages_count_the_whole_list(factory, api_as):
    clients = [factory.client(f"Client {letter}") for letter in "EDCBA"]
    api = api_as(factory.user("tara", role="trader", clients=clients))
    first = api.get("/api/v1/clients?per_page=2").get_json()
    assert (first["total"], first["pages"], first["page"], first["next_page"]) == (5, 3, 1, 2)
    second = api.get("/api/v1/clients?per_page=2&page=2").get_json()
    last = api.get("/api/v1/clients?per_page=2&page=3").get_json()
    assert last["next_page"] is None and len(last["items"]) == 1
    names = [c["name"] for page in (first, second, last) for c in page["items"]]
    assert names == [f"Client {letter}" for letter in "ABCDE"]
    beyond = api.get("/api/v1/clients?per_page=2&page=9").get_json()
    assert beyond["items"] == [] and beyond["total"] == 5 and beyond["next_page"] is None


def test_filters_by_name_or_code_and_enabled(factory, api_as):
    clients = [
        factory.client("Asha Rao", code="ZX100"),
        factory.client("Bela Shah", code="RA777", enabled=False),
        factory.client("100% Growth", code="PC9"),
    ]
    api = api_as(factory.user("tara", role="trader", clients=clients))

    def names(query):
        reply = api.get("/api/v1/clients", query_string=query)
        assert reply.status_code == 200, reply.get_json()
        return [c["name"] for c in reply.get_json()["items"]]

    assert names({"q": "rA"}) == ["Asha Rao", "Bela Shah"]  # name or code, any case
    assert names({"q": "zx1"}) == ["Asha Rao"]
    assert names({"q": "0%"}) == ["100% Growth"]  # a % is a character, not a wildcard
    assert names({"q": "  "}) == ["100% Growth", "Asha Rao", "Bela Shah"]  # blank: no filter
    assert names({"enabled": "false"}) == ["Bela Shah"]
    assert names({"enabled": "true", "q": "ra"}) == ["Asha Rao"]


def test_a_client_shows_its_kill_switch_session_and_totals_exact_to_the_paisa(app, factory, api_as):
    client = factory.client("Asha Rao", kill_switch=True, kill_reason="daily loss limit")
    infy, tcs = factory.instrument("INFY", token=1594), factory.instrument("TCS", token=11536, price="3102.50")
    _add(
        app,
        _position(client, infy, realized_pnl=Decimal("0.10"), unrealized_pnl=Decimal("1234.05")),
        _position(client, tcs, realized_pnl=Decimal("0.20"), unrealized_pnl=Decimal("-0.01")),
    )
    api = api_as(factory.user("tara", role="trader", clients=[client]))
    one = api.get(f"/api/v1/clients/{client.id}").get_json()
    assert one == api.get("/api/v1/clients").get_json()["items"][0]
    assert (one["killed"], one["kill_reason"], one["session"], one["enabled"]) == (
        True,
        "daily loss limit",
        "connected",  # paper needs no login
        True,
    )
    totals = one["totals"]
    assert all(isinstance(v, str) and MONEY.match(v) for v in totals.values())
    assert Decimal(totals["realized"]) == Decimal("0.30")  # 0.1 + 0.2, not 0.30000000000000004
    assert Decimal(totals["unrealized"]) == Decimal("1234.04")
    assert Decimal(totals["day"]) == Decimal("1234.34")


def test_a_client_without_positions_is_flat(factory, api_as):
    client = factory.client()
    api = api_as(factory.user("tara", role="trader", clients=[client]))
    totals = api.get(f"/api/v1/clients/{client.id}").get_json()["totals"]
    assert {k: Decimal(v) for k, v in totals.items()} == {"realized": 0, "unrealized": 0, "day": 0}


def test_a_clients_broker_session_state(factory, api_as):
    expired = factory.client(broker="kite", session_enc="x", session_expires_at=utcnow() - timedelta(hours=1))
    never = factory.client(broker="kite")
    api = api_as(factory.user("tara", role="trader", clients=[expired, never]))
    assert api.get(f"/api/v1/clients/{expired.id}").get_json()["session"] == "expired"
    assert api.get(f"/api/v1/clients/{never.id}").get_json()["session"] == "none"


def test_funds_are_null_before_the_first_sync_then_exact(app, factory, api_as):
    client = factory.client()
    api = api_as(factory.user("tara", role="trader", clients=[client]))
    empty = api.get(f"/api/v1/clients/{client.id}/funds").get_json()
    assert empty == {
        "client_id": client.id,
        "available_cash": None,
        "margin_used": None,
        "collateral": None,
        "available_margin": None,
        "synced_at": None,
    }
    _add(
        app,
        FundsSnapshot(
            client_id=client.id,
            available_cash=Decimal("100000.10"),
            margin_used=Decimal("2500.25"),
            collateral=Decimal("0.20"),
        ),
    )
    funds = api.get(f"/api/v1/clients/{client.id}/funds").get_json()
    assert Decimal(funds["available_cash"]) == Decimal("100000.10")
    assert Decimal(funds["margin_used"]) == Decimal("2500.25")
    assert Decimal(funds["available_margin"]) == Decimal("97500.05")
    assert funds["synced_at"] is not None


def test_positions_lists_the_open_ones_with_their_pnl(app, factory, api_as):
    client = factory.client()
    infy, tcs = factory.instrument("INFY", token=1594), factory.instrument("TCS", token=11536, price="3102.50")
    _add(
        app,
        _position(
            client,
            infy,
            quantity=-3,
            average_price=Decimal("1548.35"),
            cost=Decimal("4645.05"),
            last_price=Decimal("1550.05"),
            unrealized_pnl=Decimal("-5.10"),
            price_at=utcnow(),
        ),
        _position(client, tcs, quantity=0, realized_pnl=Decimal("12.40")),  # closed today: not listed
    )
    api = api_as(factory.user("tara", role="trader", clients=[client]))
    body = api.get(f"/api/v1/clients/{client.id}/positions").get_json()
    assert body["client_id"] == client.id and len(body["items"]) == 1
    row = body["items"][0]
    assert row["instrument"] == {"id": infy.id, "exchange": "NSE", "symbol": "INFY"}
    assert (row["product"], row["quantity"], row["stale"]) == ("MIS", -3, False)
    assert all(MONEY.match(row[k]) for k in ("average_price", "last_price", "unrealized_pnl", "realized_pnl"))
    assert Decimal(row["average_price"]) == Decimal("1548.35")
    assert Decimal(row["last_price"]) == Decimal("1550.05")
    assert Decimal(row["unrealized_pnl"]) == Decimal("-5.10")
    # the closed position's realized P&L still counts in the client's totals
    totals = api.get(f"/api/v1/clients/{client.id}").get_json()["totals"]
    assert Decimal(totals["realized"]) == Decimal("12.40") and Decimal(totals["day"]) == Decimal("7.30")


def test_holdings_with_their_pnl(app, factory, api_as):
    client = factory.client()
    infy, tcs = factory.instrument("INFY", token=1594), factory.instrument("TCS", token=11536, price="3102.50")
    _add(
        app,
        Holding(
            client_id=client.id,
            instrument_id=infy.id,
            quantity=7,
            t1_quantity=3,
            average_price=Decimal("1500.15"),
            last_price=Decimal("1548.20"),
        ),
        Holding(client_id=client.id, instrument_id=tcs.id, quantity=2, average_price=Decimal("3000")),
    )
    api = api_as(factory.user("vic", role="viewer", clients=[client]))
    items = api.get(f"/api/v1/clients/{client.id}/holdings").get_json()["items"]
    assert [(h["instrument"]["symbol"], h["quantity"], h["t1_quantity"]) for h in items] == [
        ("INFY", 7, 3),
        ("TCS", 2, 0),
    ]
    assert Decimal(items[0]["pnl"]) == Decimal("480.50")  # (1548.20 − 1500.15) × 10
    assert Decimal(items[0]["average_price"]) == Decimal("1500.15")
    assert items[1]["pnl"] is None and items[1]["last_price"] is None


def test_orders_newest_first_paged_and_by_status(app, factory, api_as):
    client, other = factory.client(), factory.client()
    trader = factory.user("tara", role="trader", clients=[client])
    infy = factory.instrument("INFY", token=1594)
    for status in ("COMPLETE", "REJECTED", "COMPLETE"):
        factory.batch(
            trader, [client, other], infy, quantity=5, status=status, order_type="LIMIT", price=Decimal("1548.35")
        )
    with app.app_context():
        mine = [o.id for o in db.session.query(Order).filter_by(client_id=client.id).order_by(Order.id.desc())]
    api = api_as(trader)
    first = api.get(f"/api/v1/clients/{client.id}/orders?per_page=2").get_json()
    assert [o["id"] for o in first["items"]] == mine[:2]
    assert (first["total"], first["next_page"]) == (3, 2)
    assert all(o["quantity"] == 5 and Decimal(o["price"]) == Decimal("1548.35") for o in first["items"])
    assert first["items"][0]["instrument"]["symbol"] == "INFY"
    rejected = api.get(f"/api/v1/clients/{client.id}/orders", query_string={"status": "REJECTED"}).get_json()
    assert [o["id"] for o in rejected["items"]] == [mine[1]] and rejected["total"] == 1
    assert rejected["items"][0]["status"] == "REJECTED"
    # the other client's children of the same batches are not this client's orders
    assert api.get(f"/api/v1/clients/{other.id}/orders").status_code == 404


def test_trades_newest_first_and_exact(app, factory, api_as):
    client = factory.client()
    infy = factory.instrument("INFY", token=1594)
    now = utcnow()
    _add(
        app,
        *[
            Trade(
                client_id=client.id,
                instrument_id=infy.id,
                broker_trade_id=f"T{i}",
                broker_order_id=f"O{i}",
                side="BUY",
                product="CNC",
                quantity=i + 1,
                price=Decimal("1548.05") + i,
                filled_at=now - timedelta(minutes=10 - i),
            )
            for i in range(3)
        ],
    )
    api = api_as(factory.user("lim", role="limited", clients=[client]))
    page = api.get(f"/api/v1/clients/{client.id}/trades?per_page=2").get_json()
    assert [t["broker_trade_id"] for t in page["items"]] == ["T2", "T1"] and page["next_page"] == 2
    assert Decimal(page["items"][0]["price"]) == Decimal("1550.05") and page["items"][0]["quantity"] == 3
    rest = api.get(f"/api/v1/clients/{client.id}/trades?per_page=2&page=2").get_json()
    assert [t["broker_trade_id"] for t in rest["items"]] == ["T0"] and rest["next_page"] is None


@pytest.mark.parametrize(
    "path, query, field",
    [
        ("/api/v1/clients", {"per_page": "0"}, "per_page"),
        ("/api/v1/clients", {"per_page": "201"}, "per_page"),
        ("/api/v1/clients", {"page": "abc"}, "page"),
        ("/api/v1/clients", {"page": "99999999999999999999"}, "page"),
        ("/api/v1/clients", {"enabled": "maybe"}, "enabled"),
        ("/api/v1/clients", {"q": "x" * 65}, "q"),
        ("/api/v1/clients", {"sort": "name"}, "sort"),
        ("/api/v1/clients/{id}/orders", {"status": "FILLED"}, "status"),
        ("/api/v1/clients/{id}/orders", {"status": ""}, "status"),
        ("/api/v1/clients/{id}/trades", {"per_page": "-1"}, "per_page"),
    ],
)
def test_bad_query_values_are_422_with_a_message_per_field(app, factory, api_as, path, query, field):
    client = factory.client()
    api = api_as(factory.user("tara", role="trader", clients=[client]))
    reply = api.get(path.format(id=client.id), query_string=query)
    assert reply.status_code == 422
    error = reply.get_json()["error"]
    assert error["code"] == "invalid" and field in error["fields"] and error["fields"][field]


def test_hostile_paths_and_query_text_never_500(factory, api_as):
    client = factory.client()
    api = api_as(factory.user("tara", role="trader", clients=[client]))
    for path in ("/api/v1/clients/0", "/api/v1/clients/-1", "/api/v1/clients/99999999999", "/api/v1/clients/x/funds"):
        reply = api.get(path)
        assert reply.status_code == 404 and reply.get_json()["error"]["code"] == "not_found", path
    assert api.get("/api/v1/clients", query_string={"q": "a\x00b"}).status_code == 400
    for text in ("' OR 1=1 --", "_", "\\", "ऄ" * 64):
        reply = api.get("/api/v1/clients", query_string={"q": text})
        assert reply.status_code == 200 and reply.get_json()["items"] == [], text


def test_the_client_page_shows_the_same_book(app, factory, auth, client, api_as):
    account = factory.client("Asha Rao")
    infy = factory.instrument("INFY", token=1594)
    (holding_id,) = _add(
        app,
        Holding(client_id=account.id, instrument_id=infy.id, quantity=4, average_price=Decimal("1500.15")),
    )
    tara = factory.user("tara", role="trader", clients=[account])
    assert [h["id"] for h in api_as(tara).get(f"/api/v1/clients/{account.id}/holdings").get_json()["items"]] == [
        holding_id
    ]
    auth.login("tara")
    page = client.get(f"/clients/{account.id}")
    assert page.status_code == 200 and f'id="holding-{holding_id}"' in page.get_data(as_text=True)

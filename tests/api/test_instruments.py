"""/api/v1/instruments: search the master, one instrument, its price from the feed or the master's
reference (and from the database alone when Redis is away); bad queries refused per field."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tests.api.conftest import Api
from tests.conftest import make_app
from webapp.brokers.base import Quote
from webapp.extensions import db
from webapp.marketdata.store import write_quotes
from webapp.marketfeed.feed import INTEREST_KEY


@pytest.fixture
def master(factory):
    return {
        "INFY": factory.instrument("INFY", token=1594, price="1548.20", tick="0.10", band="10"),
        "INFOEDGE": factory.instrument("INFOEDGE", token=13751, price="6512.50", tick="0.50", band=None),
        "TCS": factory.instrument("TCS", token=11536, price="3102.50"),
    }


@pytest.fixture
def api(factory, api_as):
    return api_as(factory.user("tara", role="trader"), scopes=["read"])


def test_search_by_symbol_prefix_exact_match_first(master, api):
    reply = api.get("/api/v1/instruments", query_string={"q": "inf"})
    assert reply.status_code == 200
    assert [i["symbol"] for i in reply.get_json()["items"]] == ["INFOEDGE", "INFY"]
    assert [i["symbol"] for i in api.get("/api/v1/instruments?q=INFY").get_json()["items"]] == ["INFY"]
    assert [i["symbol"] for i in api.get("/api/v1/instruments?q=inf&limit=1").get_json()["items"]] == ["INFOEDGE"]
    assert api.get("/api/v1/instruments?q=NOSUCH").get_json()["items"] == []


def test_one_instrument_with_lot_tick_and_circuit_band(master, api):
    infy = master["INFY"]
    body = api.get(f"/api/v1/instruments/{infy.id}").get_json()
    assert (body["id"], body["exchange"], body["symbol"], body["name"], body["lot_size"]) == (
        infy.id,
        "NSE",
        "INFY",
        "INFY",
        1,
    )
    assert Decimal(body["tick_size"]) == Decimal("0.10") and isinstance(body["tick_size"], str)
    assert Decimal(body["reference_price"]) == Decimal("1548.20")
    band = body["circuit"]
    assert Decimal(band["band_pct"]) == 10
    assert (Decimal(band["lower"]), Decimal(band["upper"])) == (Decimal("1393.40"), Decimal("1703.00"))
    assert api.get(f"/api/v1/instruments/{master['INFOEDGE'].id}").get_json()["circuit"] is None
    search_item = api.get("/api/v1/instruments?q=INFY").get_json()["items"][0]
    assert search_item == body  # one shape for both


def test_an_unknown_instrument_is_a_json_404(master, api):
    for path in ("/api/v1/instruments/999999", "/api/v1/instruments/999999/quote", "/api/v1/instruments/99999999999"):
        reply = api.get(path)
        assert reply.status_code == 404 and reply.get_json()["error"]["code"] == "not_found", path


def test_the_quote_is_the_masters_reference_until_the_feed_has_a_tick(master, api, redis_client):
    infy = master["INFY"]
    before = api.get(f"/api/v1/instruments/{infy.id}/quote").get_json()
    assert before["source"] == "reference" and Decimal(before["last_price"]) == Decimal("1548.20")
    assert before["as_of"] is not None and (before["exchange"], before["symbol"]) == ("NSE", "INFY")
    assert redis_client.zscore(INTEREST_KEY, str(infy.instrument_token)) is not None  # the feed will subscribe
    at = datetime(2026, 12, 4, 9, 30, 5, tzinfo=UTC)
    write_quotes(redis_client, {infy.instrument_token: Quote("NSE", "INFY", Decimal("1551.05"), timestamp=at)})
    after = api.get(f"/api/v1/instruments/{infy.id}/quote").get_json()
    assert after["source"] == "feed" and after["last_price"] == "1551.05"
    assert datetime.fromisoformat(after["as_of"]) == at
    # the other instruments keep their reference
    assert api.get(f"/api/v1/instruments/{master['TCS'].id}/quote").get_json()["source"] == "reference"


def test_the_quote_comes_from_the_database_when_redis_is_away(app, services, encryption_key, master, make_key, factory):
    user = factory.user("vic", role="viewer")
    key = make_key(user, scopes=["read"])
    down = make_app(services, encryption_key, REDIS_URL="redis://127.0.0.1:1/0")  # nothing listens on port 1
    try:
        api = Api(down.test_client(), key)
        reply = api.get(f"/api/v1/instruments/{master['INFY'].id}/quote")
        assert reply.status_code == 200
        body = reply.get_json()
        assert body["source"] == "reference" and Decimal(body["last_price"]) == Decimal("1548.20")
        assert api.get("/api/v1/instruments?q=TCS").get_json()["items"][0]["symbol"] == "TCS"
    finally:
        down.extensions["fanout_redis"].close()
        with down.app_context():
            db.engine.dispose()


@pytest.mark.parametrize("role", ["viewer", "limited", "trader", "admin"])
def test_every_role_reads_instruments(role, master, factory, api_as):
    api = api_as(factory.user(f"u-{role}", role=role), scopes=["read"])
    infy = master["INFY"]
    for path in ("/api/v1/instruments?q=IN", f"/api/v1/instruments/{infy.id}", f"/api/v1/instruments/{infy.id}/quote"):
        assert api.get(path).status_code == 200, path


def test_a_key_without_the_read_scope_is_refused(master, factory, api_as):
    api = api_as(factory.user("tara", role="trader"), scopes=["trade"])
    reply = api.get("/api/v1/instruments?q=INFY")
    assert reply.status_code == 403 and reply.get_json()["error"]["code"] == "scope"


@pytest.mark.parametrize(
    "query, field",
    [
        ({}, "q"),
        ({"q": ""}, "q"),
        ({"q": "X" * 65}, "q"),
        ({"q": "INFY", "limit": "0"}, "limit"),
        ({"q": "INFY", "limit": "51"}, "limit"),
        ({"q": "INFY", "limit": "ten"}, "limit"),
        ({"q": "INFY", "exchange": "NSE"}, "exchange"),
    ],
)
def test_bad_search_values_are_422_with_a_message_per_field(master, api, query, field):
    reply = api.get("/api/v1/instruments", query_string=query)
    assert reply.status_code == 422
    error = reply.get_json()["error"]
    assert error["code"] == "invalid" and error["fields"].get(field)


def test_hostile_search_text_never_500(master, api):
    assert api.get("/api/v1/instruments", query_string={"q": "IN\x00FY"}).status_code == 400
    for text in ("%", "_", "' OR 1=1 --", "\\", "ऄ" * 64, " "):
        reply = api.get("/api/v1/instruments", query_string={"q": text})
        assert reply.status_code == 200, text
        assert isinstance(reply.get_json()["items"], list)

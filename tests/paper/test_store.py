"""The Redis quote store: exact Decimal round trip, one key per instrument token, one channel."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from decimal import Decimal
from types import SimpleNamespace

import redis as redis_lib

from tests.paper.conftest import MONDAY_10AM, quote
from webapp.marketdata.store import (
    TICKS_CHANNEL,
    decode_ticks,
    quote_key,
    read_quote,
    read_quotes,
    write_quotes,
)

D = Decimal


def sample():
    return replace(
        quote("1548.20", bids=[("1548.10", 120), ("1548.00", 5)], asks=[("1548.30", 7)]),
        volume=991,
        close=D("1540.05"),
        timestamp=MONDAY_10AM,
    )


def test_a_written_quote_reads_back_identical_down_to_the_decimal_exponent(redis_client):
    original = sample()
    assert write_quotes(redis_client, {408065: original}) == 1
    back = read_quote(redis_client, SimpleNamespace(instrument_token=408065))
    assert back == original
    assert str(back.last_price) == "1548.20" and str(back.bids[0].price) == "1548.10"
    assert json.loads(redis_client.get(quote_key(408065)))["last_price"] == "1548.20"  # a string, not a float


def test_no_tick_yet_reads_none_and_read_quotes_skips_it(redis_client):
    write_quotes(redis_client, {1: sample()})
    assert read_quote(redis_client, SimpleNamespace(instrument_token=2)) is None
    assert list(read_quotes(redis_client, [1, 2])) == [1]
    assert write_quotes(redis_client, {}) == 0


def test_the_batchs_last_prices_are_published_on_one_channel(redis_client):
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(TICKS_CHANNEL)
    pubsub.get_message(timeout=1.0)  # the subscribe confirmation
    write_quotes(redis_client, {1: sample(), 2: quote("10.05", symbol="IDEA", band=None)})
    message = None
    deadline = time.monotonic() + 3
    while message is None and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.5)
    pubsub.close()
    assert decode_ticks(message["data"]) == {1: D("1548.20"), 2: D("10.05")}
    assert str(decode_ticks(message["data"])[1]) == "1548.20"  # exact, as written
    assert decode_ticks(message["data"], tokens={2}) == {2: D("10.05")}
    assert "bids" not in message["data"]  # the depth stays in the quote's key, read by who needs it


def test_a_bytes_redis_client_works_too(app, redis_client):
    raw = redis_lib.Redis.from_url(app.config["REDIS_URL"])
    try:
        write_quotes(raw, {5: sample()})
        assert read_quote(raw, SimpleNamespace(instrument_token=5)) == sample()
        assert read_quotes(raw, [5])[5] == sample()
    finally:
        raw.close()

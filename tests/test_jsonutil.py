"""The desk's two JSON forms: exact numbers for broker wires, str() for what it stores and publishes."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

from webapp.jsonutil import exact_json, text_json
from webapp.timeutil import UTC


def test_exact_json_writes_decimals_as_exact_numbers():
    text = exact_json({"price": Decimal("1512.40"), "rows": [Decimal("1E+3"), 5, None, "x"], "ok": True})
    assert text == '{"price":1512.40,"rows":[1000,5,null,"x"],"ok":true}'
    assert json.loads(text, parse_float=Decimal)["price"] == Decimal("1512.40")


def test_text_json_is_the_form_the_audit_chain_and_events_always_stored():
    # the audit chain hashes the stored detail text: this form must never change
    detail = {"z": Decimal("12.50"), "a": datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC), "n": 1}
    assert text_json(detail, sort_keys=True) == json.dumps(detail, sort_keys=True, default=str)
    assert text_json(detail, sort_keys=True) == '{"a": "2025-01-02 03:04:05+00:00", "n": 1, "z": "12.50"}'
    assert text_json({"event": "x", "price": Decimal("0.05")}) == '{"event": "x", "price": "0.05"}'

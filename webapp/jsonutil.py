"""The desk's two JSON forms, each written in one place.

- `exact_json`: Decimals as exact number literals (1512.40 stays 1512.40). For broker wires, which
  want numbers; the stdlib encoder would have to go through float, which rounds. The adapters and
  the emulators in tests/emulators/ both use it, so a request and its answer agree to the paisa.
- `text_json`: what JSON cannot hold (Decimal, datetime, ...) written as its str(). For what the desk
  stores and publishes itself (events, audit details): a Decimal stays exact as a string, and a
  reader never gets a float back from json.loads. Audit links hash the stored `detail` text, so this
  form must not change: tests/test_jsonutil.py pins it.

Imports nothing of the desk, so any layer may use it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any


def exact_json(value: Any) -> str:
    """JSON with Decimals written as exact numbers ("1234.05", never "1.23405E+3")."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{json.dumps(str(k))}:{exact_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(exact_json(v) for v in value) + "]"
    return json.dumps(value)


def text_json(value: Any, *, sort_keys: bool = False) -> str:
    """JSON with anything the stdlib cannot encode written as its str() (Decimal "12.50")."""
    return json.dumps(value, default=str, sort_keys=sort_keys)

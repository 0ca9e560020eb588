"""The Kite emulator's WebSocket ticker (reference/brokers.md §1.9), served at "/" on the same server:

    ws://127.0.0.1:<port>/?api_key=<k>&access_token=<t>       (the real one: wss://ws.kite.trade)

- The upgrade is refused with HTTP 403 and Kite's TokenException envelope when api_key/access_token
  do not name a live session (as the real ticker does: pykiteconnect #102). Expired sessions
  (`expire_sessions`) are refused on the next connect; open sockets are not cut.
- Client text: {"a":"subscribe"|"unsubscribe","v":[tokens]}, {"a":"mode","v":[mode,[tokens]]}.
  New subscriptions start in quote mode; unknown tokens get no packets; a malformed message gets
  {"type":"error","data":...}.
- Every `tick_interval` seconds one binary frame carries a packet per subscribed token, built by
  kite_ticker_codec from the emulator's current prices (set_price moves them; depth and volume as
  the REST quote); a 1-byte heartbeat goes out when nothing else did for `heartbeat_interval`.
- Fault hooks on the emulator: drop_stream(), silence_stream(seconds), push_postback(order).
"""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

from werkzeug.wrappers import Request, Response

from tests.emulators import kite_ticker_codec as codec
from tests.emulators.stream_common import StreamConn, StreamHub
from webapp.jsonutil import exact_json

MODES = ("ltp", "quote", "full")
BAD_TOKEN = {
    "status": "error",
    "message": "Incorrect `api_key` or `access_token`.",
    "error_type": "TokenException",
    "data": None,
}


def paise(value: Decimal) -> int:
    scaled = value * 100
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{value} is not a whole number of paise")
    return int(scaled)


class KiteStreamHub(StreamHub):
    def __init__(self, emulator: Any, tick_interval: float = 1.0, heartbeat_interval: float = 1.0):
        super().__init__(tick_interval, heartbeat_interval)
        self.emulator = emulator

    def authenticate(self, request: Request) -> tuple[str, Response | None]:
        api_key, token = request.args.get("api_key", ""), request.args.get("access_token", "")
        emulator = self.emulator
        with emulator.lock:
            account = emulator.accounts.get(emulator.sessions.get(token, ""))
        if account is None or account.api_key != api_key:
            return "", Response(json.dumps(BAD_TOKEN), status=403, content_type="application/json")
        return account.user_id, None

    def on_message(self, conn: StreamConn, message: str | bytes) -> None:
        try:
            payload = json.loads(message)
            action, value = payload["a"], payload["v"]
            if action in ("subscribe", "unsubscribe"):
                tokens = [int(t) for t in value]
            elif action == "mode" and value[0] in MODES:
                tokens = [int(t) for t in value[1]]
            else:
                raise ValueError(action)
        except (ValueError, TypeError, KeyError, IndexError):
            conn.send(json.dumps({"type": "error", "data": "Invalid message"}))
            return
        for token in tokens:
            if action == "subscribe":
                conn.subscriptions.setdefault(token, "quote")
            elif action == "unsubscribe":
                conn.subscriptions.pop(token, None)
            elif token in conn.subscriptions:
                conn.subscriptions[token] = value[0]

    def heartbeat(self) -> bytes:
        return codec.HEARTBEAT

    def frames(self, conn: StreamConn) -> list[str | bytes]:
        emulator = self.emulator
        now = int(time.time())
        with emulator.lock:
            by_token = {ins.instrument_token: ins for ins in emulator.book.instruments.values()}
            rows = {
                token: (mode, emulator.book.quote_row(by_token[token]))
                for token, mode in conn.subscriptions.items()
                if token in by_token
            }
        packets = [self.packet(token, mode, row, now) for token, (mode, row) in sorted(rows.items())]
        return [codec.encode_frame(packets)] if packets else []

    @staticmethod
    def packet(token: int, mode: str, row: dict[str, Any], now: int) -> bytes:
        """One packet from a REST quote row of the emulator (the same numbers /quote answers)."""
        ohlc = row["ohlc"]
        wire = {
            "instrument_token": token,
            "last_price": paise(row["last_price"]),
            "last_traded_quantity": row["last_quantity"],
            "average_traded_price": paise(row["average_price"]),
            "volume_traded": row["volume"],
            "total_buy_quantity": row["buy_quantity"],
            "total_sell_quantity": row["sell_quantity"],
            "open": paise(ohlc["open"]),
            "high": paise(ohlc["high"]),
            "low": paise(ohlc["low"]),
            "close": paise(ohlc["close"]),
            "last_trade_time": now,
            "oi": row["oi"],
            "oi_day_high": row["oi_day_high"],
            "oi_day_low": row["oi_day_low"],
            "exchange_timestamp": now,
        }
        depth = [
            (level["quantity"], paise(level["price"]), level["orders"])
            for side in ("buy", "sell")
            for level in row["depth"][side]
        ]
        return codec.encode_packet(mode, wire, depth)


class KiteStreamMixin:
    """Mixed into KiteEmulator: the ticker view and its fault hooks. `self.stream` is the hub."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stream = KiteStreamHub(self)

    def ticker(self, request: Request) -> Response:
        return self.stream.serve(request)

    def drop_stream(self) -> None:
        """Close every ticker socket abruptly (no close frame)."""
        self.stream.drop_all()

    def silence_stream(self, seconds: float) -> None:
        """Open ticker sockets stay connected but send (and answer) nothing for `seconds`."""
        self.stream.silence(seconds)

    def push_postback(self, order: dict[str, Any], user_id: str | None = None) -> None:
        """An order update as the ticker sends it: {"type":"order","data":{...}}."""
        self.stream.broadcast(exact_json({"type": "order", "data": order}), user_id)

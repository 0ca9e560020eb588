"""The ShareKhan emulator's JSON market-data stream (reference/brokers.md §3.4), on the same server:

    ws://127.0.0.1:<port>/skstream/api/stream?ACCESS_TOKEN=<t>&API_KEY=<k>
    (the real one: wss://stream.sharekhan.com/skstream/api/stream)

- The upgrade is refused with HTTP 403 and ShareKhan's TokenException envelope when ACCESS_TOKEN is
  not a live session (or API_KEY, when sent, is not that session's app). How the real stream
  refuses a session is not documented; this is our assumption. Expired sessions are refused on
  the next connect; open sockets are not cut.
- On open the server sends {"status":100,"message":"connect",...}.
- {"action":"subscribe","key":["feed","ack"],"value":[""]} opens the modules and is answered
  {"status":100,"message":"subscribe","data":"successFEED,successACK"}; feed requests before the
  feed module is open are answered with an error message (status 400, our assumption).
- {"action":"feed","key":[mode],"value":["NC1594,NC2885"]} subscribes (mode ltp, depth or full);
  {"action":"unsubscribe","key":["feed"],"value":["NC1594"]} stops; {"action":"ack","value":[id]}
  asks for that customer's order acknowledgements.
- The text "ping" is answered "pong".
- Every `tick_interval` seconds one feed message per subscribed scrip, from the scrip's current
  LTP (set_ltp moves it); numbers are exact JSON literals. No unprompted heartbeats.
- Fault hooks on the emulator: drop_stream(), silence_stream(seconds), push_ack(customer_id, data).
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from werkzeug.wrappers import Request, Response

from tests.emulators.stream_common import StreamConn, StreamHub
from webapp.jsonutil import exact_json
from webapp.timeutil import IST

MODES = ("ltp", "depth", "full")
PAISA = Decimal("0.01")
VOLUME = 250000  # the emulator's traded quantity for the day, the same for every scrip
REFUSED = {"data": None, "message": "Invalid or expired access token", "status": 403, "error_type": "TokenException"}


def envelope(message: str, data: Any, status: int = 100) -> str:
    return exact_json(
        {
            "status": status,
            "message": message,
            "data": data,
            "timestamp": datetime.now(IST).isoformat(timespec="seconds"),
        }
    )


class ShareKhanStreamHub(StreamHub):
    def __init__(self, emulator: Any, tick_interval: float = 1.0, heartbeat_interval: float = 1.0):
        super().__init__(tick_interval, heartbeat_interval)
        self.emulator = emulator

    def authenticate(self, request: Request) -> tuple[str, Response | None]:
        token, api_key = request.args.get("ACCESS_TOKEN", ""), request.args.get("API_KEY")
        emulator = self.emulator
        with emulator.lock:
            customer_id = emulator._sessions.get(token) if token else None
            account = emulator.accounts.get(customer_id) if customer_id else None
        if account is None or (api_key is not None and api_key != account.api_key):
            return "", Response(json.dumps(REFUSED), status=403, content_type="application/json")
        return account.customer_id, None

    def on_open(self, conn: StreamConn) -> None:
        conn.send(envelope("connect", "connected"))

    def on_message(self, conn: StreamConn, message: str | bytes) -> None:
        if message == "ping":
            conn.send("pong")
            return
        try:
            payload = json.loads(message)
            action, keys, value = payload["action"], list(payload["key"]), str(payload["value"][0])
        except (ValueError, TypeError, KeyError, IndexError):
            conn.send(envelope("error", "Invalid request", 400))
            return
        if action == "subscribe":
            conn.modules.update(str(k).lower() for k in keys)
            conn.send(envelope("subscribe", ",".join(f"success{str(k).upper()}" for k in keys)))
        elif action == "ack":
            conn.modules.add(f"ack:{value}")
        elif action in ("feed", "unsubscribe") and "feed" not in conn.modules:
            conn.send(envelope("error", "Subscribe to the feed module first", 400))
        elif action == "feed" and keys and keys[0] in MODES:
            for scrip in self._scrips(value):
                conn.subscriptions[scrip] = keys[0]
        elif action == "unsubscribe":
            for scrip in self._scrips(value):
                conn.subscriptions.pop(scrip, None)
        else:
            conn.send(envelope("error", f"Unknown action {action}", 400))

    @staticmethod
    def _scrips(value: str) -> list[tuple[str, int]]:
        scrips = []
        for item in filter(None, (part.strip() for part in value.split(","))):
            if item[2:].isdigit():
                scrips.append((item[:2], int(item[2:])))
        return scrips

    def frames(self, conn: StreamConn) -> list[str | bytes]:
        emulator = self.emulator
        with emulator.lock:
            scrips = [
                (emulator.scrips[key], mode)
                for key, mode in sorted(conn.subscriptions.items())
                if key in emulator.scrips
            ]
            return [envelope("feed", self.feed_data(scrip, mode)) for scrip, mode in scrips]

    @staticmethod
    def feed_data(scrip: Any, mode: str) -> dict[str, Any]:
        ltp, close, tick = scrip.ltp, scrip.close, scrip.tick
        data = {
            "exchangeCode": scrip.exchange,
            "scripCode": scrip.scrip_code,
            "ltp": ltp,
            "ltt": datetime.now(IST).strftime("%d/%m/%Y %H:%M:%S"),
        }
        if mode == "ltp":
            return data
        change = ltp - close
        return {
            **data,
            "ltq": 10,
            "open": close,
            "high": max(ltp, close),
            "low": min(ltp, close),
            "close": close,
            "avgPrice": ltp,
            "bidPrice": ltp - tick,
            "bidQty": 100,
            "offPrice": ltp + tick,
            "offQty": 120,
            "qty": VOLUME,
            "totalBuyQty": 1500,
            "totalSellQty": 1800,
            "rsChange": change,
            "perChange": (change * 100 / close).quantize(PAISA),
            "upperCkt": scrip.upper,
            "lowerCkt": scrip.lower,
            "yrHigh": scrip.upper,
            "yrLow": scrip.lower,
        }


class ShareKhanStreamMixin:
    """Mixed into ShareKhanEmulator: the stream view and its fault hooks. `self.stream` is the hub."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stream = ShareKhanStreamHub(self)

    def feed_stream(self, request: Request) -> Response:
        return self.stream.serve(request)

    def drop_stream(self) -> None:
        """Close every stream socket abruptly (no close frame)."""
        self.stream.drop_all()

    def silence_stream(self, seconds: float) -> None:
        """Open stream sockets stay connected but send (and answer) nothing for `seconds`."""
        self.stream.silence(seconds)

    def push_ack(self, customer_id: str, data: dict[str, Any]) -> None:
        """An order acknowledgement to the sockets that asked for this customer's acks."""
        for conn in self.stream.connections():
            if f"ack:{customer_id}" in conn.modules:
                conn.outbox.append(envelope("ack", data))

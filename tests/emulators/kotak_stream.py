"""The Kotak emulator's HSM market-data stream (wire format in webapp/brokers/kotak/hsm.py), on the
same server as the REST emulator, at its root path:

    ws://127.0.0.1:<port>/            (the real one: wss://mlhsm.kotaksecurities.com)

- The upgrade is never refused: the first binary frame authenticates. A connection request whose
  session token is a live session of the emulator with that session sid is answered "K" (with the
  ack interval, `ack_every`); any other is answered "N" and the socket is closed. `expire_sessions`
  therefore refuses the next connect; open sockets are not cut.
- Subscribe / unsubscribe requests name "sf|<segment>|<token>" scrips; they are answered "K" (or
  "N" before a successful connection request). Unknown scrips are taken but get no data.
- Every `tick_interval` seconds one data message per connection: a snapshot record the first time
  a topic is sent, update records after (values that did not change are sent as "unchanged"), the
  numbers being the emulator's own (the REST quote's LTP, close and best bid/ask, in paise with
  multiplier 1 and precision 2). With `ack_every` above 0 each message carries a number and the
  client's acks are recorded in `acks`.
- Fault hooks on the emulator: drop_stream(), silence_stream(seconds).
"""

from __future__ import annotations

import itertools
import time
import weakref
from decimal import Decimal
from typing import Any

from werkzeug.wrappers import Request, Response

from tests.emulators.stream_common import StreamConn, StreamHub
from webapp.brokers.kotak import hsm


def paise(value: Decimal) -> int:
    return int((value * 100).to_integral_value())


class KotakHsmHub(StreamHub):
    def __init__(self, emulator: Any, tick_interval: float = 1.0, heartbeat_interval: float = 1.0):
        super().__init__(tick_interval, heartbeat_interval)
        self.emulator = emulator
        self.ack_every = 0
        self.acks: list[int] = []  # message numbers the clients acknowledged
        self.refused_sessions = 0  # connection requests answered "N"
        self._topic_ids = itertools.count(1)
        # conn -> topic name -> (topic id, the values last sent)
        self._sent: weakref.WeakKeyDictionary[StreamConn, dict[str, tuple[int, list[int]]]] = (
            weakref.WeakKeyDictionary()
        )
        self._numbers = itertools.count(1)

    def authenticate(self, request: Request) -> tuple[str, Response | None]:
        return "", None

    def on_open(self, conn: StreamConn) -> None:
        self._sent[conn] = {}  # a new socket starts with snapshots

    def on_message(self, conn: StreamConn, message: str | bytes) -> None:
        if not isinstance(message, (bytes, bytearray)):
            return
        data = bytes(message)
        try:
            kind = hsm.frame_type(data)
            fields = hsm.read_fields(data)
        except hsm.FrameError:
            return
        if kind == hsm.CONNECTION:
            token, sid = (fields.get(i, b"").decode("utf-8", "replace") for i in (1, 2))
            with self.emulator.lock:
                session = self.emulator.sessions.get(token)
            if session is None or session["sid"] != sid:
                self.refused_sessions += 1
                conn.send(hsm.connection_answer(hsm.STATUS_NOT_OK))
                conn.ws.close()
                return
            conn.account = session["ucc"]
            conn.send(hsm.connection_answer(hsm.STATUS_OK, self.ack_every))
        elif kind in (hsm.SUBSCRIBE, hsm.UNSUBSCRIBE):
            if not conn.account or 1 not in fields:
                conn.send(hsm.status_answer(kind, hsm.STATUS_NOT_OK))
                return
            for name in hsm.parse_scrip_list(fields[1]):
                if kind == hsm.SUBSCRIBE:
                    conn.subscriptions[name] = name.split("|", 1)[0]
                else:
                    conn.subscriptions.pop(name, None)
            conn.send(hsm.status_answer(kind, hsm.STATUS_OK))
        elif kind == hsm.ACK and 1 in fields:
            self.acks.append(int.from_bytes(fields[1], "big", signed=True))

    def frames(self, conn: StreamConn) -> list[str | bytes]:
        if not conn.account or not conn.subscriptions:
            return []
        sent = self._sent.setdefault(conn, {})
        records = []
        now = int(time.time())
        with self.emulator.lock:
            for name in sorted(conn.subscriptions):
                kind, _, rest = name.partition("|")
                segment, _, token = rest.partition("|")
                scrip = self.emulator.book.scrips.get((segment, int(token))) if token.isdigit() else None
                if kind != hsm.SCRIP_TOPIC or scrip is None:
                    continue
                values = self.values(scrip, now)
                if name not in sent:
                    topic_id = next(self._topic_ids)
                    strings = {
                        hsm.NAME: hsm.SCRIP_TOPIC,
                        hsm.SYMBOL: str(scrip.token),
                        hsm.EXCHANGE: segment,
                        hsm.TRADING_SYMBOL: scrip.trading_symbol,
                    }
                    records.append(hsm.snapshot_record(topic_id, name, values, strings))
                else:
                    topic_id, last = sent[name]
                    changed = [v if v != old else hsm.UNCHANGED for v, old in zip(values, last, strict=True)]
                    records.append(hsm.update_record(topic_id, changed))
                sent[name] = (topic_id, values)
        if not records:
            return []
        number = next(self._numbers) if self.ack_every > 0 else None
        return [hsm.data_message(records, number)]

    @staticmethod
    def values(scrip: Any, now: int) -> list[int]:
        """A scrip topic's 25 values (positions as hsm.py names them), prices in paise."""
        values = [0] * 25
        values[0] = values[1] = values[2] = values[hsm.LTT] = now
        values[hsm.VOLUME] = scrip.volume
        values[hsm.LTP] = values[hsm.AVG_PRICE] = paise(scrip.ltp)
        values[hsm.LTQ] = 1
        values[hsm.TOTAL_BUY] = values[hsm.TOTAL_SELL] = 100
        values[hsm.BID_PRICE] = paise(scrip.ltp - scrip.tick)
        values[hsm.ASK_PRICE] = paise(scrip.ltp + scrip.tick)
        values[hsm.BID_QTY] = values[hsm.ASK_QTY] = 100
        values[hsm.LOW] = paise(min(scrip.ltp, scrip.close))
        values[hsm.HIGH] = paise(max(scrip.ltp, scrip.close))
        values[hsm.LOWER_CIRCUIT], values[hsm.UPPER_CIRCUIT] = paise(scrip.lower), paise(scrip.upper)
        values[18], values[19] = paise(scrip.upper), paise(scrip.lower)  # 52-week high / low
        values[hsm.OPEN] = values[hsm.CLOSE] = paise(scrip.close)
        values[hsm.MULTIPLIER], values[hsm.PRECISION] = 1, 2
        return values


class KotakStreamMixin:
    """The HSM stream view and fault hooks for KotakEmulator."""

    stream: KotakHsmHub

    def hsm_stream(self, request: Request) -> Response:
        return self.stream.serve(request)

    def drop_stream(self) -> None:
        self.stream.drop_all()

    def silence_stream(self, seconds: float) -> None:
        self.stream.silence(seconds)

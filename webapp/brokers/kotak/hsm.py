"""Kotak Neo's HSM market-data wire format: the binary frames of wss://mlhsm.kotaksecurities.com,
as Kotak's client library builds and reads them (neo_api_client/HSWebSocketLib.py, package 2.0.0).

Every frame, both ways, is big-endian: a 2-byte length of what follows, a 1-byte frame type, then
the type's fields. Requests carry fields as (1-byte id, 2-byte length, value):

    connection (1)    fields 1 = session token, 2 = session sid, 3 = source ("JS_API")
    subscribe (4)     field 1 = scrip list, field 2 = channel (1 byte); unsubscribe (5) the same
                      scrip list = 2-byte count, then per scrip a 1-byte length and
                      "<topic type>|<segment>|<token>", topic type "sf" for a scrip's quote feed
    ack (3)           field 1 = the 4-byte number of the last data message

Answers to connection and (un)subscribe carry a status field "K" (ok) or "N" (not ok); the
connection answer's second field is the ack interval: when it is above 0, every data message
carries a 4-byte message number and the client acks every that-many messages.

A data message (6) is a 2-byte record count, then per record a 2-byte record length, a 1-byte
record type, "S" (83, snapshot) or "U" (85, update), and a 4-byte topic id. A snapshot then names
its topic (1-byte length, "sf|nse_cm|11536"), sends a 1-byte count of 4-byte signed values (field
index = position) and a 1-byte count of strings (1-byte field id, 1-byte length, text). An update
sends only the count and values; -2147483648 means "unchanged". Prices are integers: divide by
multiplier (field 23) times 10 ** precision (field 24).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from webapp.brokers.base import DepthLevel, Quote
from webapp.timeutil import UTC

CONNECTION, THROTTLING, ACK, SUBSCRIBE, UNSUBSCRIBE, DATA = 1, 2, 3, 4, 5, 6
SNAPSHOT_RECORD, UPDATE_RECORD = 83, 85  # "S", "U"
STATUS_OK, STATUS_NOT_OK = "K", "N"
SCRIP_TOPIC = "sf"
SOURCE = "JS_API"  # what Kotak's client names itself
UNCHANGED = -2147483648
MAX_SCRIPS = 100  # per request (the client library's limit)

# Field positions of a scrip ("sf") topic.
LTT, VOLUME, LTP, LTQ, TOTAL_BUY, TOTAL_SELL = 3, 4, 5, 6, 7, 8
BID_PRICE, ASK_PRICE, BID_QTY, ASK_QTY, AVG_PRICE = 9, 10, 11, 12, 13
LOW, HIGH, LOWER_CIRCUIT, UPPER_CIRCUIT, OPEN, CLOSE = 14, 15, 16, 17, 20, 21
MULTIPLIER, PRECISION = 23, 24
NAME, SYMBOL, EXCHANGE, TRADING_SYMBOL = 51, 52, 53, 54  # string field ids
PRICE_FIELDS = (LTP, BID_PRICE, ASK_PRICE, AVG_PRICE, LOW, HIGH, LOWER_CIRCUIT, UPPER_CIRCUIT, OPEN, CLOSE)


class FrameError(ValueError):
    """A frame that does not parse."""


# --------------------------------------------------------------------------- requests


def _field(field_id: int, value: bytes) -> bytes:
    return struct.pack(">BH", field_id, len(value)) + value


def _frame(kind: int, fields: list[bytes]) -> bytes:
    body = struct.pack(">BB", kind, len(fields)) + b"".join(fields)
    return struct.pack(">H", len(body)) + body


def connection_request(token: str, sid: str, source: str = SOURCE) -> bytes:
    return _frame(CONNECTION, [_field(1, token.encode()), _field(2, sid.encode()), _field(3, source.encode())])


def scrip_list(names: list[str]) -> bytes:
    out = struct.pack(">H", len(names))
    for name in names:
        raw = name.encode()
        out += struct.pack(">B", len(raw)) + raw
    return out


def subscription_request(kind: int, names: list[str], channel: int = 1) -> bytes:
    if not names or len(names) > MAX_SCRIPS:
        raise ValueError(f"1 to {MAX_SCRIPS} scrips a request")
    return _frame(kind, [_field(1, scrip_list(names)), _field(2, bytes([channel]))])


def ack_request(message_number: int) -> bytes:
    return _frame(ACK, [_field(1, struct.pack(">i", message_number))])


def topic_name(segment: str, token: int | str, topic: str = SCRIP_TOPIC) -> str:
    return f"{topic}|{segment}|{token}"


# --------------------------------------------------------------------------- reading frames


class Reader:
    def __init__(self, data: bytes, pos: int = 0):
        self.data, self.pos = data, pos

    def take(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise FrameError("frame ends early")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def byte(self) -> int:
        return self.take(1)[0]

    def short(self) -> int:
        return struct.unpack(">H", self.take(2))[0]

    def int32(self) -> int:
        return struct.unpack(">i", self.take(4))[0]


def frame_type(data: bytes) -> int:
    if len(data) < 3:
        raise FrameError("frame too short")
    return data[2]


def read_fields(data: bytes) -> dict[int, bytes]:
    """The (id -> value) fields of a request or of a status answer."""
    reader = Reader(data, 3)
    fields = {}
    for _ in range(reader.byte()):
        field_id = reader.byte()
        fields[field_id] = reader.take(reader.short())
    return fields


def parse_scrip_list(value: bytes) -> list[str]:
    reader = Reader(value)
    return [reader.take(reader.byte()).decode("ascii", "replace") for _ in range(reader.short())]


def status_of(data: bytes) -> str:
    """ "K" or "N" from a connection or (un)subscribe answer ("N" when it carries none)."""
    fields = read_fields(data)
    return fields.get(1, STATUS_NOT_OK.encode()).decode("ascii", "replace")


def ack_interval(data: bytes) -> int:
    value = read_fields(data).get(2, b"")
    return int.from_bytes(value, "big") if value else 0


@dataclass
class Topic:
    """One subscribed feed's state: HSM sends a snapshot once, then only the values that changed."""

    name: str
    values: dict[int, int] = field(default_factory=dict)
    strings: dict[int, str] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.name.split("|", 1)[0]

    @property
    def segment(self) -> str:
        parts = self.name.split("|")
        return parts[1] if len(parts) > 2 else self.strings.get(EXCHANGE, "")

    @property
    def token(self) -> str:
        return self.name.rsplit("|", 1)[-1]

    def apply(self, values: list[int]) -> None:
        for index, value in enumerate(values):
            if value != UNCHANGED:
                self.values[index] = value

    def price(self, index: int) -> Decimal | None:
        raw = self.values.get(index)
        if raw is None:
            return None
        divisor = Decimal(self.values.get(MULTIPLIER) or 1) * (Decimal(10) ** self.values.get(PRECISION, 2))
        return Decimal(raw) / divisor

    def quote(self, exchange: str, tradingsymbol: str, now: datetime) -> Quote | None:
        last = self.price(LTP)
        if last is None:
            return None

        def level(price_at: int, qty_at: int) -> tuple[DepthLevel, ...]:
            price = self.price(price_at)
            return (DepthLevel(price, self.values.get(qty_at, 0)),) if price else ()

        stamp = self.values.get(LTT)
        return Quote(
            exchange=exchange,
            tradingsymbol=tradingsymbol,
            last_price=last,
            volume=self.values.get(VOLUME, 0),
            open=self.price(OPEN),
            high=self.price(HIGH),
            low=self.price(LOW),
            close=self.price(CLOSE),
            lower_circuit=self.price(LOWER_CIRCUIT) or None,
            upper_circuit=self.price(UPPER_CIRCUIT) or None,
            bids=level(BID_PRICE, BID_QTY),
            asks=level(ASK_PRICE, ASK_QTY),
            timestamp=datetime.fromtimestamp(stamp, UTC) if stamp and stamp > 0 else now,
        )


def parse_data(data: bytes, topics: dict[int, Topic], with_number: bool) -> tuple[int | None, list[Topic]]:
    """(message number or None, the topics this data message changed), updating `topics`."""
    reader = Reader(data, 3)
    number = reader.int32() if with_number else None
    changed = []
    for _ in range(reader.short()):
        reader.short()  # the record's length
        kind = reader.byte()
        topic_id = reader.int32()
        if kind == SNAPSHOT_RECORD:
            name = reader.take(reader.byte()).decode("ascii", "replace")
            topic = topics[topic_id] = Topic(name)
            topic.apply([reader.int32() for _ in range(reader.byte())])
            for _ in range(reader.byte()):
                string_id = reader.byte()
                topic.strings[string_id] = reader.take(reader.byte()).decode("utf-8", "replace")
        elif kind == UPDATE_RECORD:
            values = [reader.int32() for _ in range(reader.byte())]
            topic = topics.get(topic_id)
            if topic is None:  # an update for a topic never snapshotted: nothing to apply it to
                continue
            topic.apply(values)
        else:
            raise FrameError(f"unknown record type {kind}")
        changed.append(topic)
    return number, changed


# --------------------------------------------------------------------------- building answers (emulators, tests)


def status_answer(kind: int, status: str, extra: list[bytes] | None = None) -> bytes:
    return _frame(kind, [_field(1, status.encode()), *(extra or [])])


def connection_answer(status: str, ack_every: int = 0) -> bytes:
    return status_answer(CONNECTION, status, [_field(2, struct.pack(">i", ack_every))])


def snapshot_record(topic_id: int, name: str, values: list[int], strings: dict[int, str]) -> bytes:
    raw_name = name.encode()
    body = struct.pack(">Bi", SNAPSHOT_RECORD, topic_id) + struct.pack(">B", len(raw_name)) + raw_name
    body += struct.pack(">B", len(values)) + b"".join(struct.pack(">i", v) for v in values)
    body += struct.pack(">B", len(strings))
    for string_id, text in strings.items():
        raw = text.encode()
        body += struct.pack(">BB", string_id, len(raw)) + raw
    return struct.pack(">H", len(body)) + body


def update_record(topic_id: int, values: list[int]) -> bytes:
    body = struct.pack(">BiB", UPDATE_RECORD, topic_id, len(values)) + b"".join(struct.pack(">i", v) for v in values)
    return struct.pack(">H", len(body)) + body


def data_message(records: list[bytes], number: int | None = None) -> bytes:
    body = struct.pack(">B", DATA) + (struct.pack(">i", number) if number is not None else b"")
    body += struct.pack(">H", len(records)) + b"".join(records)
    return struct.pack(">H", len(body)) + body

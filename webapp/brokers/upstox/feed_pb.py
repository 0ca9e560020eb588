"""Upstox's market data feed v3 messages (MarketDataFeedV3.proto), built at import time.

Upstox publishes the feed's schema as a .proto file (upstox-python-sdk 2.30.0,
upstox_client/feeder/proto/MarketDataFeedV3.proto; the v3 feed doc links it). The message
definitions below are written from that documented schema as a table and turned into message
classes at import with google.protobuf's descriptor_pb2 + message_factory, in a private descriptor
pool: no generated _pb2 is committed, no protoc is needed, and the SDK's own generated module
(which registers the same names in the default pool) can be imported next to this one.

Only the wire matters to the decoder (field numbers and types); names follow the .proto so the
messages read the same as Upstox's documentation. Prices are doubles on the wire: `price()` turns
one into an exact Decimal by rounding its shortest repr to the paisa, never by float arithmetic.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

PACKAGE = "com.upstox.marketdatafeederv3udapi.rpc.proto"
FILE_NAME = "fanout/upstox/MarketDataFeedV3.proto"

_F = descriptor_pb2.FieldDescriptorProto
SCALARS = {
    "double": _F.TYPE_DOUBLE,
    "int64": _F.TYPE_INT64,
    "string": _F.TYPE_STRING,
    "bool": _F.TYPE_BOOL,
}

# enum name -> ((value name, number), ...)
ENUMS: dict[str, tuple[tuple[str, int], ...]] = {
    "Type": (("initial_feed", 0), ("live_feed", 1), ("market_info", 2)),
    "RequestMode": (("ltpc", 0), ("full_d5", 1), ("option_greeks", 2), ("full_d30", 3)),
    "MarketStatus": (
        ("PRE_OPEN_START", 0),
        ("PRE_OPEN_END", 1),
        ("NORMAL_OPEN", 2),
        ("NORMAL_CLOSE", 3),
        ("CLOSING_START", 4),
        ("CLOSING_END", 5),
    ),
}

# message name -> fields (name, number, type[, "repeated" | "map<string>" | oneof name]).
# A type is a scalar above, an enum or message of this file, or a ".full.Name".
MESSAGES: dict[str, tuple[tuple[Any, ...], ...]] = {
    "LTPC": (
        ("ltp", 1, "double"),
        ("ltt", 2, "int64"),  # last trade time, epoch milliseconds
        ("ltq", 3, "int64"),
        ("cp", 4, "double"),  # previous close
        ("iep", 5, ".google.protobuf.DoubleValue"),
    ),
    "MarketLevel": (("bidAskQuote", 1, "Quote", "repeated"),),
    "MarketOHLC": (("ohlc", 1, "OHLC", "repeated"),),
    "Quote": (("bidQ", 1, "int64"), ("bidP", 2, "double"), ("askQ", 3, "int64"), ("askP", 4, "double")),
    "OptionGreeks": (
        ("delta", 1, "double"),
        ("theta", 2, "double"),
        ("gamma", 3, "double"),
        ("vega", 4, "double"),
        ("rho", 5, "double"),
    ),
    "OHLC": (
        ("interval", 1, "string"),  # "1d", "I1", "I30"
        ("open", 2, "double"),
        ("high", 3, "double"),
        ("low", 4, "double"),
        ("close", 5, "double"),
        ("vol", 6, "int64"),
        ("ts", 7, "int64"),
    ),
    "MarketFullFeed": (
        ("ltpc", 1, "LTPC"),
        ("marketLevel", 2, "MarketLevel"),
        ("optionGreeks", 3, "OptionGreeks"),
        ("marketOHLC", 4, "MarketOHLC"),
        ("atp", 5, "double"),
        ("vtt", 6, "int64"),  # volume traded today
        ("oi", 7, "double"),
        ("iv", 8, "double"),
        ("tbq", 9, "double"),
        ("tsq", 10, "double"),
        ("iep", 11, "double"),
        ("rp", 12, "double"),
        ("ieq", 13, "int64"),
        ("iiqTotal", 14, "int64"),
        ("iiqM", 15, "int64"),
        ("casEligible", 16, "bool"),
    ),
    "IndexFullFeed": (("ltpc", 1, "LTPC"), ("marketOHLC", 2, "MarketOHLC")),
    "FullFeed": (("marketFF", 1, "MarketFullFeed", "FullFeedUnion"), ("indexFF", 2, "IndexFullFeed", "FullFeedUnion")),
    "FirstLevelWithGreeks": (
        ("ltpc", 1, "LTPC"),
        ("firstDepth", 2, "Quote"),
        ("optionGreeks", 3, "OptionGreeks"),
        ("vtt", 4, "int64"),
        ("oi", 5, "double"),
        ("iv", 6, "double"),
    ),
    "Feed": (
        ("ltpc", 1, "LTPC", "FeedUnion"),
        ("fullFeed", 2, "FullFeed", "FeedUnion"),
        ("firstLevelWithGreeks", 3, "FirstLevelWithGreeks", "FeedUnion"),
        ("requestMode", 4, "RequestMode"),
    ),
    "StatusInfo": (("status", 1, "string"), ("updatedTime", 2, "int64")),
    "MarketInfo": (
        ("segmentStatus", 1, "MarketStatus", "map<string>"),
        ("casMarketStatus", 2, "StatusInfo", "map<string>"),
        ("preOpenSessionStatus", 3, "StatusInfo", "map<string>"),
    ),
    "FeedResponse": (
        ("type", 1, "Type"),
        ("feeds", 2, "Feed", "map<string>"),  # key: the instrument key, "NSE_EQ|INE002A01018"
        ("currentTs", 3, "int64"),  # epoch milliseconds
        ("marketInfo", 4, "MarketInfo"),
    ),
}


def _set_type(field: descriptor_pb2.FieldDescriptorProto, kind: str) -> None:
    if kind in SCALARS:
        field.type = SCALARS[kind]
    elif kind in ENUMS:
        field.type, field.type_name = _F.TYPE_ENUM, f".{PACKAGE}.{kind}"
    elif kind.startswith("."):
        field.type, field.type_name = _F.TYPE_MESSAGE, kind
    else:
        field.type, field.type_name = _F.TYPE_MESSAGE, f".{PACKAGE}.{kind}"


def _entry_name(field_name: str) -> str:
    return field_name[0].upper() + field_name[1:] + "Entry"  # protoc's name for a map's entry type


def file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    """The schema above as a FileDescriptorProto (proto3)."""
    proto = descriptor_pb2.FileDescriptorProto(
        name=FILE_NAME, package=PACKAGE, syntax="proto3", dependency=["google/protobuf/wrappers.proto"]
    )
    for name, values in ENUMS.items():
        enum = proto.enum_type.add(name=name)
        for value_name, number in values:
            enum.value.add(name=value_name, number=number)
    for name, fields in MESSAGES.items():
        message = proto.message_type.add(name=name)
        oneofs: dict[str, int] = {}
        for field_name, number, kind, *extra in fields:
            field = message.field.add(name=field_name, number=number, json_name=field_name)
            field.label = _F.LABEL_OPTIONAL
            shape = extra[0] if extra else None
            if shape == "repeated":
                field.label = _F.LABEL_REPEATED
                _set_type(field, kind)
            elif shape == "map<string>":
                entry = message.nested_type.add(name=_entry_name(field_name))
                entry.options.map_entry = True
                entry.field.add(name="key", number=1, label=_F.LABEL_OPTIONAL, type=_F.TYPE_STRING, json_name="key")
                value = entry.field.add(name="value", number=2, label=_F.LABEL_OPTIONAL, json_name="value")
                _set_type(value, kind)
                field.label, field.type = _F.LABEL_REPEATED, _F.TYPE_MESSAGE
                field.type_name = f".{PACKAGE}.{name}.{entry.name}"
            else:
                _set_type(field, kind)
                if shape is not None:
                    if shape not in oneofs:
                        oneofs[shape] = len(message.oneof_decl)
                        message.oneof_decl.add(name=shape)
                    field.oneof_index = oneofs[shape]
    return proto


def _build() -> dict[str, type]:
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    pool.Add(file_descriptor())
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}")) for name in MESSAGES}


_CLASSES = _build()
FeedResponse = _CLASSES["FeedResponse"]
Feed = _CLASSES["Feed"]
LTPC = _CLASSES["LTPC"]
MarketFullFeed = _CLASSES["MarketFullFeed"]
IndexFullFeed = _CLASSES["IndexFullFeed"]
OHLC = _CLASSES["OHLC"]
Quote = _CLASSES["Quote"]

TYPE_INITIAL_FEED, TYPE_LIVE_FEED, TYPE_MARKET_INFO = 0, 1, 2
MARKET_STATUS = {number: name for name, number in ENUMS["MarketStatus"]}

PAISA = Decimal("0.01")


def price(value: float, places: Decimal = PAISA) -> Decimal | None:
    """A wire double as an exact Decimal rounded to `places` (the paisa by default): the shortest
    repr of the double, quantized, so 1510.4 (really 1510.40000000000009094...) is Decimal("1510.40").
    None for 0 (proto3's 'absent'), NaN and infinities."""
    if not value:
        return None
    try:
        result = Decimal(repr(float(value))).quantize(places, rounding=ROUND_HALF_EVEN)
    except (InvalidOperation, ValueError, OverflowError):
        return None
    return result if result.is_finite() else None


def parse(data: bytes) -> Any:
    """One server frame as a FeedResponse; google.protobuf.message.DecodeError when it is not one."""
    response = FeedResponse()
    response.ParseFromString(data)
    return response

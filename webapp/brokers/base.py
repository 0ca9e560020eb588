"""The broker port: normalized types, typed errors and the adapter base class.

Every adapter (paper, kite, motilal, sharekhan, ...) implements `Broker` and speaks only these
types to the rest of the desk. Prices and money are Decimal; quantities are int; times are aware
datetimes in UTC. Nothing in here imports Flask, so web views and RQ jobs can both use adapters.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any, ClassVar

from webapp.timeutil import IST, UTC

# --------------------------------------------------------------------------- enums


class Side(str, enum.Enum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class Product(str, enum.Enum):
    CNC = "CNC"  # delivery
    MIS = "MIS"  # intraday
    MTF = "MTF"  # margin trading facility (funded delivery)
    NRML = "NRML"  # F&O carry forward


class OrderType(str, enum.Enum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    SL = "SL"
    SLM = "SL-M"


class Validity(str, enum.Enum):
    DAY = "DAY"
    IOC = "IOC"


class BrokerOrderStatus(str, enum.Enum):
    """An order's state as the broker reports it, normalized across brokers."""

    PENDING = "PENDING"  # received, validating, in process: not yet open at the exchange
    OPEN = "OPEN"
    TRIGGER_PENDING = "TRIGGER_PENDING"
    PARTIAL = "PARTIAL"  # open with some quantity filled
    COMPLETE = "COMPLETE"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"

    @property
    def is_final(self) -> bool:
        return self in (BrokerOrderStatus.COMPLETE, BrokerOrderStatus.CANCELLED, BrokerOrderStatus.REJECTED)


# --------------------------------------------------------------------------- errors


class BrokerError(Exception):
    """Base of every error an adapter raises. `message` is fit to show a trader."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class AuthExpired(BrokerError):
    """The broker session is missing, expired or revoked: the client must log in again."""


class Rejected(BrokerError):
    """The broker definitively refused the request; nothing was placed or changed."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class RateLimited(BrokerError):
    """The broker answered 429: the request was not accepted; wait and try again."""

    def __init__(self, message: str = "Too many requests", retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(BrokerError):
    """The outcome is unknown (timeout, dropped connection, 5xx, malformed answer).

    For a place this means the order may or may not exist at the broker: never retry blindly,
    look it up by tag first.
    """


class InvalidInput(BrokerError):
    """The request is malformed for this broker (caught before or by the broker)."""


# --------------------------------------------------------------------------- value types


@dataclass(frozen=True)
class BrokerSession:
    access_token: str
    expires_at: datetime | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Account:
    """What an adapter needs to act for one client account."""

    client_code: str  # the broker's id for the account (Kite user id, Motilal client code, ...)
    credentials: Mapping[str, str] = field(default_factory=dict)  # decrypted; never log
    session: BrokerSession | None = None
    client_id: int | None = None  # the desk's Client.id, for logs only


@dataclass(frozen=True)
class OrderRequest:
    exchange: str
    tradingsymbol: str
    exchange_token: int  # the exchange's scrip code (NSE token): Motilal symboltoken, ShareKhan scripCode
    side: Side
    quantity: int
    product: Product
    order_type: OrderType
    price: Decimal | None = None
    trigger_price: Decimal | None = None
    validity: Validity = Validity.DAY
    tag: str | None = None
    market_protection: Decimal | None = None  # percent; None lets the adapter pick its default
    algo_id: str | None = None
    instrument_token: int | None = None  # Kite's instrument token, where known
    isin: str | None = None  # the instrument's ISIN (Upstox keys equities by it), where known


@dataclass(frozen=True)
class Order:
    order_id: str
    status: BrokerOrderStatus
    exchange: str
    tradingsymbol: str
    side: Side
    product: Product
    order_type: OrderType
    quantity: int
    filled_quantity: int = 0
    price: Decimal | None = None
    trigger_price: Decimal | None = None
    average_price: Decimal | None = None
    tag: str | None = None
    status_message: str | None = None
    exchange_order_id: str | None = None
    placed_at: datetime | None = None
    updated_at: datetime | None = None
    raw_status: str | None = None  # the broker's own word, for display

    @property
    def pending_quantity(self) -> int:
        return max(self.quantity - self.filled_quantity, 0)


@dataclass(frozen=True)
class Trade:
    trade_id: str
    order_id: str
    exchange: str
    tradingsymbol: str
    side: Side
    product: Product
    quantity: int
    price: Decimal
    filled_at: datetime | None = None


@dataclass(frozen=True)
class Position:
    exchange: str
    tradingsymbol: str
    product: Product
    quantity: int  # net: positive long, negative short
    average_price: Decimal
    last_price: Decimal | None = None
    realised_pnl: Decimal = Decimal("0")
    unrealised_pnl: Decimal = Decimal("0")
    buy_quantity: int = 0
    sell_quantity: int = 0


@dataclass(frozen=True)
class Holding:
    exchange: str
    tradingsymbol: str
    quantity: int
    average_price: Decimal
    isin: str | None = None
    last_price: Decimal | None = None
    t1_quantity: int = 0


@dataclass(frozen=True)
class Funds:
    available_cash: Decimal
    margin_used: Decimal = Decimal("0")
    collateral: Decimal = Decimal("0")
    opening_balance: Decimal | None = None

    @property
    def available_margin(self) -> Decimal:
        return self.available_cash + self.collateral - self.margin_used


@dataclass(frozen=True)
class DepthLevel:
    price: Decimal
    quantity: int
    orders: int = 0


@dataclass(frozen=True)
class Quote:
    exchange: str
    tradingsymbol: str
    last_price: Decimal
    volume: int = 0
    open: Decimal | None = None
    high: Decimal | None = None
    low: Decimal | None = None
    close: Decimal | None = None
    lower_circuit: Decimal | None = None
    upper_circuit: Decimal | None = None
    bids: tuple[DepthLevel, ...] = ()
    asks: tuple[DepthLevel, ...] = ()
    timestamp: datetime | None = None


@dataclass(frozen=True)
class InstrumentRef:
    exchange: str
    tradingsymbol: str
    exchange_token: int
    instrument_token: int | None = None
    isin: str | None = None  # where known (Upstox keys equities by it)

    @property
    def key(self) -> str:
        return f"{self.exchange}:{self.tradingsymbol}"


@dataclass(frozen=True)
class HistoricalBar:
    """One past candle as a broker's historical API gives it: `start` is the bar's first minute (aware
    UTC), `interval` minutes long; prices exact."""

    start: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int


@dataclass(frozen=True)
class InstrumentRow:
    exchange: str
    tradingsymbol: str
    name: str
    exchange_token: int
    tick_size: Decimal
    lot_size: int = 1
    instrument_token: int | None = None
    instrument_type: str = "EQ"
    segment: str | None = None


@dataclass(frozen=True)
class CredentialField:
    """A field the client form renders for this broker. `secret` fields are encrypted and masked."""

    name: str
    label: str
    secret: bool = False
    required: bool = True
    help: str = ""


@dataclass(frozen=True)
class ConfigOption:
    """One adapter option read from the desk's settings: `options[name] = config[config_key]`.

    A setting that is absent from the config and has no default is left out, so the adapter's own
    default applies."""

    name: str
    config_key: str
    default: Any = None
    required: bool = False  # True: a missing setting is a KeyError, as a missing URL should be


TIMEOUT_OPTION = ConfigOption("timeout", "BROKER_TIMEOUT_SECONDS", 7)  # every remote broker's read timeout


@dataclass(frozen=True)
class Capabilities:
    """What the desk may ask of a broker beyond the port's must-haves."""

    quotes: bool = False  # a REST quote API that answers quotes(): repricing's fallback asks it
    streaming: bool = False  # a tick stream the feed can run on (see Broker.open_stream)
    postbacks: bool = False  # order updates pushed to the desk by the broker
    historical_candles: bool = False  # past OHLC bars on request


@dataclass(frozen=True)
class RateLimits:
    orders_per_second: int
    orders_per_minute: int | None = None
    orders_per_day: int | None = None
    reads_per_second: int | None = None


# --------------------------------------------------------------------------- the port


class Broker(ABC):
    """One broker account. Subclasses set the class attributes and implement the methods."""

    name: ClassVar[str]
    label: ClassVar[str]
    credential_fields: ClassVar[tuple[CredentialField, ...]] = ()
    rate_limits: ClassVar[RateLimits]
    tag_max_length: ClassVar[int | None] = 10  # None: the broker has no order tag
    # "redirect": browser goes to login_url() and comes back with params;
    # "form": the desk asks login_fields() and posts them; "none": no login (paper)
    login_kind: ClassVar[str] = "none"
    login_fields: ClassVar[tuple[CredentialField, ...]] = ()
    # "redirect": the callback parameter that carries the broker's one-time login token
    login_callback_token: ClassVar[str] = "request_token"
    # broker tokens die every morning: hour and minute IST at which today's session expires
    session_expiry_ist: ClassVar[time] = time(6, 0)
    # the desk settings this broker owns (its endpoints), with their defaults: the desk's Config reads
    # each from the environment variable of the same name (webapp.brokers.broker_settings)
    settings: ClassVar[Mapping[str, str]] = {}
    # the adapter's options from the desk's settings (see options_from)
    config_options: ClassVar[tuple[ConfigOption, ...]] = ()
    capabilities: ClassVar[Capabilities] = Capabilities()
    # repricing asks brokers with a quote API in this order (lowest first): the feed client's broker
    # first, then the most generous quote limits
    quote_preference: ClassVar[int] = 100
    # the feed's stream addresses instruments by "instrument_token" (Kite) or "exchange_token" (the
    # exchange's scrip code, ShareKhan); only read when capabilities.streaming
    stream_key: ClassVar[str] = "instrument_token"

    def __init__(self, account: Account, options: Mapping[str, Any] | None = None):
        self.account = account
        self.options = dict(options or {})

    @classmethod
    def enabled(cls) -> bool:
        """False when an optional dependency is missing (the registry then skips it)."""
        return True

    @classmethod
    def options_from(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        """The adapter's options from the desk's settings (Flask config or a plain mapping)."""
        options: dict[str, Any] = {}
        for option in cls.config_options:
            if option.required:
                options[option.name] = config[option.config_key]
            elif option.config_key in config or option.default is not None:
                options[option.name] = config.get(option.config_key, option.default)
        return options

    @classmethod
    def needs_login(cls) -> bool:
        """False for a broker with no session to open (paper): its clients are always connected."""
        return cls.login_kind != "none"

    @classmethod
    def end_day(cls, options: Mapping[str, Any], now: datetime) -> None:
        """The broker's own end of `now`'s IST day, for a broker the desk runs itself (a simulated
        exchange): open orders expire, delivery buys become holdings. Idempotent per day. A real
        broker rolls its own books overnight: nothing to do."""
        return None

    @classmethod
    def stream_token(cls, instrument: InstrumentRef) -> int | str | None:
        """The token this broker's stream addresses `instrument` by (its `stream_key`), or None when
        the stream cannot carry it. A broker that keys its stream otherwise (Upstox: "NSE_EQ|<ISIN>")
        overrides this; the feed maps its ticks back through the same tokens."""
        return instrument.instrument_token if cls.stream_key == "instrument_token" else instrument.exchange_token

    @classmethod
    def open_stream(cls, account: Account, config: Mapping[str, Any]) -> Any:
        """A tick stream (webapp.marketdata.streams.TickStream) over `account`'s session, for a
        broker whose capabilities say `streaming`."""
        raise InvalidInput(f"{cls.label} has no tick stream")

    def check_order(self, request: OrderRequest) -> None:
        """The one shape check every adapter runs first in place(), before a rate-limit token or a
        byte is spent: a malformed request is InvalidInput (the desk's mistake, never the
        broker's refusal, which is Rejected); the engine rejects the child with this message."""
        if request.quantity <= 0:
            raise InvalidInput("Quantity must be a positive whole number")
        kind = request.order_type.value
        if request.order_type in (OrderType.LIMIT, OrderType.SL) and (request.price is None or request.price <= 0):
            raise InvalidInput(f"A {kind} order needs a price")
        if request.order_type in (OrderType.SL, OrderType.SLM) and (
            request.trigger_price is None or request.trigger_price <= 0
        ):
            raise InvalidInput(f"A {kind} order needs a trigger price")
        limit = self.tag_max_length
        if (
            request.tag
            and limit is not None
            and not (len(request.tag) <= limit and request.tag.isascii() and request.tag.isalnum())
        ):
            raise InvalidInput(f"{self.label} order tags are 1 to {limit} letters and digits")

    # ---- orders
    @abstractmethod
    def place(self, request: OrderRequest) -> str:
        """Place one order and return the broker's order id."""
        ...

    @abstractmethod
    def modify(
        self,
        order_id: str,
        *,
        quantity: int | None = None,
        price: Decimal | None = None,
        trigger_price: Decimal | None = None,
        order_type: OrderType | None = None,
        validity: Validity | None = None,
    ) -> str: ...

    @abstractmethod
    def cancel(self, order_id: str) -> str: ...

    @abstractmethod
    def order_book(self) -> list[Order]: ...

    def orders_by_tag(self, tag: str) -> list[Order]:
        """Orders carrying this tag today. Adapters with a faster lookup override it."""
        return [o for o in self.order_book() if o.tag == tag]

    def find_order(self, request: OrderRequest, placed_after: datetime) -> list[Order]:
        """Orders at the broker that could be `request`, to resolve an UNKNOWN child.

        Brokers with an order tag find it by tag; a broker without one (ShareKhan) overrides this
        to match on instrument, side, quantity and time. An empty list after a successful read
        means provably absent; any error means "can't tell".
        """
        return self.orders_by_tag(request.tag) if request.tag else []

    def close(self) -> None:  # noqa: B027  (an optional hook: adapters without connections keep it)
        """Release the adapter's connections (HTTP sessions)."""

    # ---- portfolio and account
    @abstractmethod
    def trades(self) -> list[Trade]: ...

    @abstractmethod
    def positions(self) -> list[Position]: ...

    @abstractmethod
    def holdings(self) -> list[Holding]: ...

    @abstractmethod
    def funds(self) -> Funds: ...

    # ---- market data
    @abstractmethod
    def quotes(self, instruments: Sequence[InstrumentRef]) -> dict[str, Quote]:
        """Quotes keyed by `InstrumentRef.key` ("NSE:INFY")."""
        ...

    def historical_candles(
        self, instrument: InstrumentRef, interval: int, start: datetime, end: datetime
    ) -> list[HistoricalBar]:
        """Past bars of `interval` minutes whose start lies in [start, end] (aware datetimes), oldest
        first, for a broker whose capabilities say `historical_candles`. The adapter splits a long range
        into the requests its broker allows and paces them as the broker asks."""
        raise InvalidInput(f"{self.label} has no historical candles")

    @abstractmethod
    def margin_required(self, requests: Sequence[OrderRequest]) -> Decimal: ...

    @abstractmethod
    def instruments(self) -> list[InstrumentRow]: ...

    # ---- login flow
    def login_url(self, redirect_uri: str, state: str) -> str:
        raise InvalidInput(f"{self.label} has no browser login")

    def complete_login(self, params: Mapping[str, str]) -> BrokerSession:
        """Turn what came back from the login (redirect params or form values) into a session."""
        raise InvalidInput(f"{self.label} has no login step")

    @classmethod
    def session_expires_at(cls, logged_in_at: datetime) -> datetime:
        """When a session opened at `logged_in_at` dies: the next `session_expiry_ist` (UTC)."""
        local = logged_in_at.astimezone(IST)
        expiry = local.replace(
            hour=cls.session_expiry_ist.hour, minute=cls.session_expiry_ist.minute, second=0, microsecond=0
        )
        if expiry <= local:
            expiry += timedelta(days=1)
        return expiry.astimezone(UTC)

"""The paper broker: the port over the simulated exchange (exchange.py), like any remote broker.

Options (all optional):
    engine               SQLAlchemy engine of the book (default: the app's db.engine)
    redis / redis_url    where the feed's quotes are (default: the app's Redis inside an app context;
                         with none, prices come from the instrument master)
    opening_cash         cash of an account created on first use (default ₹10,00,000)
    always_open          True: ignore NSE hours (demo mode)
    holidays             IST dates the market is shut
    mis_leverage         MIS exposure per rupee of margin (default 5)
    mtf_funded_pct       share of an MTF buy the broker funds (default 75)
    square_off_time      MIS auto square-off, IST "HH:MM" or a time (default 15:20)
    market_protection_pct  how far from the last price a MARKET order may trade (default 5)
    latency_ms, jitter_ms, latency_seed   a modelled round trip slept before every call
    clock                a callable returning the aware UTC now (tests)
    sleep                the sleep function the latency uses (tests)
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy.exc import OperationalError

from webapp.brokers.base import (
    Account,
    Broker,
    Capabilities,
    ConfigOption,
    Funds,
    Holding,
    InstrumentRef,
    InstrumentRow,
    Order,
    OrderRequest,
    OrderType,
    Position,
    Quote,
    RateLimits,
    Rejected,
    Trade,
    Unavailable,
    Validity,
)
from webapp.brokers.paper.exchange import PaperExchange

log = logging.getLogger(__name__)

T = TypeVar("T")


def _default_engine():
    from webapp.extensions import db

    return db.engine  # needs an app context, as every job and request has


def _default_redis():
    from flask import has_app_context

    if not has_app_context():
        return None
    from webapp.extensions import get_redis

    return get_redis()


class PaperBroker(Broker):
    name = "paper"
    label = "Paper (simulated)"
    credential_fields = ()
    rate_limits = RateLimits(orders_per_second=50, orders_per_minute=3000, reads_per_second=50)
    tag_max_length = 20
    login_kind = "none"  # no session: a paper client is always connected
    config_options = (
        ConfigOption("redis_url", "REDIS_URL", required=True),
        ConfigOption("always_open", "PAPER_ALWAYS_OPEN", False),
        ConfigOption("latency_ms", "PAPER_LATENCY_MS", 0),
        ConfigOption("jitter_ms", "PAPER_JITTER_MS", 0),
    )
    # the simulated exchange prices every instrument; the feed's paper mode is its simulator, not a stream
    capabilities = Capabilities(quotes=True)
    quote_preference = 90  # asked last: its prices are the simulator's

    @classmethod
    def end_day(cls, options: Mapping[str, Any], now: datetime) -> None:
        """The paper exchange's day roll (events.day_roll) for `now`'s IST date, once per account."""
        options = dict(options)
        if "redis" not in options and not options.get("redis_url"):
            options["redis"] = _default_redis()
        PaperExchange.from_options(options.get("engine") or _default_engine(), options).day_roll(now)

    def __init__(self, account: Account, options: Mapping[str, Any] | None = None):
        super().__init__(account, options)
        options = dict(self.options)
        if "redis" not in options and not options.get("redis_url"):
            options["redis"] = _default_redis()
        self.exchange = PaperExchange.from_options(options.get("engine") or _default_engine(), options)
        self._latency_ms = float(options.get("latency_ms", 0))
        self._jitter_ms = float(options.get("jitter_ms", 0))
        self._jitter = random.Random(options.get("latency_seed", 0))
        self._sleep: Callable[[float], None] = options.get("sleep", time.sleep)

    @property
    def client_code(self) -> str:
        return self.account.client_code

    def _round_trip(self) -> None:
        """Model a real broker's network round trip, for benchmarks (seeded, so runs compare)."""
        delay_ms = self._latency_ms + (self._jitter.uniform(0, self._jitter_ms) if self._jitter_ms else 0.0)
        if delay_ms > 0:
            self._sleep(delay_ms / 1000.0)

    def _call(self, op: str, action: Callable[[], T]) -> T:
        self._round_trip()
        try:
            return action()
        except Rejected as exc:
            log.info("broker=paper op=%s client=%s status=REJECTED reason=%r", op, self.client_code, exc.reason)
            raise
        except OperationalError as exc:  # the book's database is locked or gone: outcome unknown
            log.warning("broker=paper op=%s client=%s error=database", op, self.client_code)
            raise Unavailable("Paper exchange database unavailable") from exc

    # ------------------------------------------------------------------ orders

    def place(self, request: OrderRequest) -> str:
        self.check_order(request)  # malformed is InvalidInput here; the exchange's RMS refusals are Rejected
        return self._call("place", lambda: self.exchange.place(self.client_code, request))

    def modify(
        self,
        order_id: str,
        *,
        quantity: int | None = None,
        price: Decimal | None = None,
        trigger_price: Decimal | None = None,
        order_type: OrderType | None = None,
        validity: Validity | None = None,
    ) -> str:
        return self._call(
            "modify",
            lambda: self.exchange.modify(
                self.client_code,
                order_id,
                quantity=quantity,
                price=price,
                trigger_price=trigger_price,
                order_type=order_type,
                validity=validity,
            ),
        )

    def cancel(self, order_id: str) -> str:
        return self._call("cancel", lambda: self.exchange.cancel(self.client_code, order_id))

    def order_book(self) -> list[Order]:
        return self._call("orders", lambda: self.exchange.order_book(self.client_code))

    def orders_by_tag(self, tag: str) -> list[Order]:
        return self._call("orders", lambda: self.exchange.orders_by_tag(self.client_code, tag))

    # ------------------------------------------------------------------ portfolio and account

    def trades(self) -> list[Trade]:
        return self._call("trades", lambda: self.exchange.trades(self.client_code))

    def positions(self) -> list[Position]:
        return self._call("positions", lambda: self.exchange.positions(self.client_code))

    def holdings(self) -> list[Holding]:
        return self._call("holdings", lambda: self.exchange.holdings(self.client_code))

    def funds(self) -> Funds:
        return self._call("funds", lambda: self.exchange.funds(self.client_code))

    # ------------------------------------------------------------------ market data

    def quotes(self, instruments: Sequence[InstrumentRef]) -> dict[str, Quote]:
        return self._call("quotes", lambda: self.exchange.quotes(instruments))

    def margin_required(self, requests: Sequence[OrderRequest]) -> Decimal:
        return self._call("margins", lambda: self.exchange.margin_required(self.client_code, requests))

    def instruments(self) -> list[InstrumentRow]:
        return self._call("instruments", lambda: self.exchange.instruments())

"""Fixtures for the Upstox contract and SDK tests: one emulator server per test module, and per test
a fresh emulated account, a clean fault plan and an adapter pointed at the server. Everything
opened here is closed here.

The mixed-desk and bench helpers use `API_URL_SETTING` and `desk_account` (the contract in the
brief): setting app.config[API_URL_SETTING] to the emulator's URL is all the desk needs, since the
adapter sends orders and fetches instruments from the API host unless told otherwise.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.emulators.common import EmulatorServer, FaultPlan
from tests.emulators.upstox import UpstoxEmulator
from tests.emulators.upstox_book import SAMPLE
from webapp.brokers.base import (
    Account,
    BrokerSession,
    InstrumentRef,
    OrderRequest,
    OrderType,
    Product,
    Side,
    Validity,
)
from webapp.timeutil import utcnow

API_URL_SETTING = "UPSTOX_API_URL"
HANG_SECONDS = 1.0  # how long an emulated "timeout after accept" holds its answer
SHORT_TIMEOUT = 0.4  # the adapter timeout in timeout tests: well under HANG_SECONDS

with SAMPLE.open(newline="") as _fh:
    SAMPLE_ROWS = {row["tradingsymbol"]: row for row in csv.DictReader(_fh)}


def desk_account(creds: dict) -> tuple[str, dict[str, str], BrokerSession]:
    """From UpstoxEmulator.add_account's dict: the desk Client's code, the credentials the client
    form stores (credential_fields) and a live session (8 h ahead)."""
    session = BrokerSession(
        access_token=creds["access_token"],
        expires_at=utcnow() + timedelta(hours=8),
        extra={"user_id": creds["user_id"]},
    )
    return creds["user_id"], {"api_key": creds["client_id"], "api_secret": creds["client_secret"]}, session


def ref(symbol: str = "INFY") -> InstrumentRef:
    row = SAMPLE_ROWS[symbol]
    return InstrumentRef(
        "NSE", symbol, int(row["exchange_token"]), instrument_token=int(row["instrument_token"]), isin=row["isin"]
    )


def order(
    symbol: str = "INFY",
    *,
    side: Side = Side.BUY,
    quantity: int = 1,
    product: Product = Product.CNC,
    order_type: OrderType = OrderType.MARKET,
    price: str | None = None,
    trigger: str | None = None,
    tag: str | None = None,
    validity: Validity = Validity.DAY,
    **extra: Any,
) -> OrderRequest:
    row = SAMPLE_ROWS[symbol]
    fields: dict[str, Any] = {
        "instrument_token": int(row["instrument_token"]),
        "isin": row["isin"],
        **extra,
    }
    return OrderRequest(
        exchange="NSE",
        tradingsymbol=symbol,
        exchange_token=int(row["exchange_token"]),
        side=side,
        quantity=quantity,
        product=product,
        order_type=order_type,
        price=Decimal(price) if price is not None else None,
        trigger_price=Decimal(trigger) if trigger is not None else None,
        validity=validity,
        tag=tag,
        **fields,
    )


def limit(symbol: str = "INFY", price: str = "1500.00", **kwargs: Any) -> OrderRequest:
    return order(symbol, order_type=OrderType.LIMIT, price=price, **kwargs)


@dataclass
class UpstoxEnv:
    """One test's view of the emulator: its account's credentials and adapters for it."""

    emulator: UpstoxEmulator
    url: str
    creds: dict[str, Any]
    _opened: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.broker = self.new_broker()

    @property
    def user_id(self) -> str:
        return self.creds["user_id"]

    def new_broker(self, access_token: str | None = "", creds: dict[str, Any] | None = None, **options: Any):
        from webapp.brokers.upstox import UpstoxBroker

        creds = creds or self.creds
        code, credentials, session = desk_account(creds)
        if access_token != "":
            session = BrokerSession(access_token) if access_token else None
        broker = UpstoxBroker(Account(code, credentials, session), {"base_url": self.url, "timeout": 2.0, **options})
        self._opened.append(broker)
        return broker

    def close(self) -> None:
        for item in self._opened:
            item.close()


@pytest.fixture(scope="module")
def upstox_server() -> Iterator[tuple[UpstoxEmulator, EmulatorServer]]:
    emulator = UpstoxEmulator()
    with EmulatorServer(emulator) as server:
        yield emulator, server


@pytest.fixture
def upstox(upstox_server: tuple[UpstoxEmulator, EmulatorServer]) -> Iterator[UpstoxEnv]:
    emulator, server = upstox_server
    emulator.faults = FaultPlan(hang_seconds=HANG_SECONDS)
    emulator.clear_scripts()
    for symbol, row in SAMPLE_ROWS.items():
        if row["segment"] == "NSE":  # every cash row (the emulator makes up the missing ISINs)
            emulator.set_price(symbol, row["last_price"])
    env = UpstoxEnv(emulator, server.url, emulator.add_account())
    yield env
    env.close()

"""Fixtures for the Kite contract tests: one emulator server per test module, and per test a fresh
emulated account, a clean fault plan and an adapter pointed at the server. Everything opened here
is closed here, so no ResourceWarning escapes under -W error.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from kiteconnect import KiteConnect

from tests.emulators.common import EmulatorServer, FaultPlan
from tests.emulators.kite import KiteEmulator
from tests.emulators.kite_book import IST, SEED_INSTRUMENTS
from webapp.brokers.base import Account, BrokerSession, OrderRequest, OrderType, Product, Side, Validity
from webapp.brokers.kite import KiteBroker

HANG_SECONDS = 1.0  # how long an emulated "timeout after accept" holds its answer
SHORT_TIMEOUT = 0.3  # the adapter timeout in timeout tests: well under HANG_SECONDS
TOKENS = {symbol: token for symbol, _, token, *_ in SEED_INSTRUMENTS}


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
    **extra: Any,
) -> OrderRequest:
    return OrderRequest(
        exchange="NSE",
        tradingsymbol=symbol,
        exchange_token=TOKENS.get(symbol, 0),
        side=side,
        quantity=quantity,
        product=product,
        order_type=order_type,
        price=Decimal(price) if price is not None else None,
        trigger_price=Decimal(trigger) if trigger is not None else None,
        validity=extra.pop("validity", Validity.DAY),
        tag=tag,
        **extra,
    )


def limit(symbol: str = "INFY", price: str = "1500.00", **kwargs: Any) -> OrderRequest:
    return order(symbol, order_type=OrderType.LIMIT, price=price, **kwargs)


@dataclass
class KiteEnv:
    """One test's view of the emulator: its account's credentials and adapters for it."""

    emulator: KiteEmulator
    url: str
    creds: dict[str, Any]
    broker: KiteBroker = field(init=False)
    _opened: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.broker = self.new_broker()

    @property
    def user_id(self) -> str:
        return self.creds["user_id"]

    def new_broker(
        self,
        access_token: str | None = "",
        client_code: str | None = None,
        api_secret: str | None = None,
        **options: Any,
    ) -> KiteBroker:
        """An adapter for this account; access_token "" means the account's token, None no session."""
        token = self.creds["access_token"] if access_token == "" else access_token
        account = Account(
            client_code=self.user_id if client_code is None else client_code,
            credentials={"api_key": self.creds["api_key"], "api_secret": api_secret or self.creds["api_secret"]},
            session=BrokerSession(token) if token else None,
        )
        broker = KiteBroker(account, {"base_url": self.url, "login_url": self.url, "timeout": 2.0, **options})
        self._opened.append(broker)
        return broker

    def sdk(self, creds: dict[str, Any] | None = None) -> KiteConnect:
        """The official kiteconnect SDK pointed at the emulator, logged in as this (or another) account."""
        creds = creds or self.creds
        client = KiteConnect(creds["api_key"], access_token=creds["access_token"], root=self.url, disable_ssl=True)
        self._opened.append(client.reqsession)
        return client

    def http(self) -> requests.Session:
        session = requests.Session()
        self._opened.append(session)
        return session

    def kite_headers(self, token: str | None = None) -> dict[str, str]:
        token = token or self.creds["access_token"]
        return {"X-Kite-Version": "3", "Authorization": f"token {self.creds['api_key']}:{token}"}

    def browser_login(
        self, login_url: str, *, password: str | None = None, totp: str | None = None
    ) -> requests.Response:
        """What the trader's browser does on Kite's login page: load the form, post it back."""
        http = self.http()
        page = http.get(login_url)
        assert page.status_code == 200 and 'name="user_id"' in page.text
        fields = dict(parse_qsl(urlsplit(login_url).query))
        form = {
            "api_key": fields["api_key"],
            "redirect_params": fields.get("redirect_params", ""),
            "user_id": self.user_id,
            "password": password or self.creds["password"],
        }
        if totp is not None:
            form["totp"] = totp
        return http.post(self.url + "/connect/login", data=form, allow_redirects=False)

    def close(self) -> None:
        for item in self._opened:
            item.close()


@pytest.fixture(scope="module")
def kite_server() -> Iterator[tuple[KiteEmulator, EmulatorServer]]:
    emulator = KiteEmulator()
    with EmulatorServer(emulator) as server:
        yield emulator, server


@pytest.fixture
def kite(kite_server: tuple[KiteEmulator, EmulatorServer]) -> Iterator[KiteEnv]:
    emulator, server = kite_server
    emulator.faults = FaultPlan(hang_seconds=HANG_SECONDS)
    emulator.clear_scripts()
    emulator.book.clock = lambda: datetime.now(IST)
    emulator.book.auto_fill = True
    for symbol, _, _, price, *_ in SEED_INSTRUMENTS:
        emulator.set_price(symbol, price)
    env = KiteEnv(emulator, server.url, emulator.add_account())
    yield env
    env.close()

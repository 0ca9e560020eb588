"""Helpers for tests that drive the ShareKhan adapter against its emulator over real HTTP.

One emulator server serves the whole test module (stopping a server costs half a second); each
test gets a fresh fault plan and its own accounts, so tests do not see each other's orders or
rate-limit windows. `ShareKhanDesk.reset()` closes the adapters a test made.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests

from tests.emulators.common import EmulatorServer, FaultPlan
from tests.emulators.sharekhan import ShareKhanEmulator
from webapp.brokers.base import Account, BrokerSession, OrderRequest, OrderType, Product, Side, Validity
from webapp.brokers.sharekhan import ShareKhan

INFY = {"exchange": "NSE", "tradingsymbol": "INFY", "exchange_token": 1594}
SBIN = {"exchange": "NSE", "tradingsymbol": "SBIN", "exchange_token": 3045}
REDIRECT_URL = "http://127.0.0.1:5000/brokers/sharekhan/callback"


def order_request(
    instrument: dict[str, Any] = INFY,
    *,
    side: Side = Side.BUY,
    quantity: int = 1,
    product: Product = Product.CNC,
    order_type: OrderType = OrderType.MARKET,
    price: str | None = None,
    trigger: str | None = None,
    validity: Validity = Validity.DAY,
) -> OrderRequest:
    return OrderRequest(
        **instrument,
        side=side,
        quantity=quantity,
        product=product,
        order_type=order_type,
        price=Decimal(price) if price else None,
        trigger_price=Decimal(trigger) if trigger else None,
        validity=validity,
    )


def limit(price: str, **kwargs: Any) -> OrderRequest:
    return order_request(order_type=OrderType.LIMIT, price=price, **kwargs)


def service_headers(creds: dict[str, Any], token: str | None = None) -> dict[str, str]:
    """The headers of brokers.md §3.2, for raw requests that bypass the adapter."""
    headers = {"api-key": creds["api_key"], "Content-type": "application/json"}
    if token is not None:
        headers["access-token"] = token
    return headers


@dataclass
class ShareKhanDesk:
    emulator: ShareKhanEmulator
    server: EmulatorServer
    adapters: list[ShareKhan] = field(default_factory=list)
    http: requests.Session = field(default_factory=requests.Session)

    @property
    def url(self) -> str:
        return self.server.url

    def reset(self) -> None:
        for adapter in self.adapters:
            adapter.close()
        self.adapters.clear()
        self.emulator.faults = FaultPlan(hang_seconds=1.0)
        self.emulator.auto_fill = True
        with self.emulator.lock:
            for scrip in self.emulator.scrips.values():
                scrip.ltp = scrip.close

    def account(self, **fields: Any) -> dict[str, Any]:
        return self.emulator.add_account(redirect_url=REDIRECT_URL, **fields)

    def adapter(
        self,
        creds: dict[str, Any],
        *,
        logged_in: bool = True,
        client_code: str | None = None,
        credentials: dict[str, str] | None = None,
        **options: Any,
    ) -> ShareKhan:
        keys = {"api_key": creds["api_key"], "secret_key": creds["secret_key"]}
        if creds.get("vendor_key"):
            keys["vendor_key"] = creds["vendor_key"]
        session = None
        if logged_in and creds.get("access_token"):
            session = BrokerSession(creds["access_token"], extra={"login_id": creds["login_id"]})
        account = Account(
            creds["customer_id"] if client_code is None else client_code, keys | (credentials or {}), session
        )
        adapter = ShareKhan(account, {"base_url": self.url, "login_url": self.url, "timeout": 5, **options})
        self.adapters.append(adapter)
        return adapter

    def browser_login(self, adapter: ShareKhan, creds: dict[str, Any], state: str = "40213") -> dict[str, str]:
        """What a browser does: open login_url, submit the form, follow nothing; the redirect params."""
        page = self.http.get(adapter.login_url("http://desk.invalid/cb", state), timeout=5)
        assert page.status_code == 200, page.text
        form = dict(re.findall(r'name="(\w+)" value="([^"]*)"', page.text))
        form |= {"customer_id": creds["customer_id"], "password": creds["password"]}
        answer = self.http.post(f"{self.url}/skapi/auth/login.html", data=form, allow_redirects=False, timeout=5)
        assert answer.status_code == 302, answer.text
        location = answer.headers["Location"]
        assert location.startswith(REDIRECT_URL + "?")
        return dict(parse_qsl(urlsplit(location).query))

    def get(self, path: str, headers: dict[str, str]) -> requests.Response:
        return self.http.get(self.url + path, headers=headers, timeout=5)

    def post(self, path: str, body: Any, headers: dict[str, str]) -> requests.Response:
        return self.http.post(self.url + path, json=body, headers=headers, timeout=5)

    def close(self) -> None:
        self.reset()
        self.http.close()
        self.server.stop()


def start_desk() -> ShareKhanDesk:
    emulator = ShareKhanEmulator(FaultPlan(hang_seconds=1.0))
    return ShareKhanDesk(emulator, EmulatorServer(emulator).start())

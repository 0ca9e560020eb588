"""Helpers for tests that drive the Motilal adapter against its emulator over real HTTP.

`MotilalDesk` owns one emulator on loopback and every adapter made through it, and closes them
all (sessions and server) so no ResourceWarning escapes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pyotp
import requests

from tests.emulators.common import EmulatorServer, FaultPlan
from tests.emulators.motilal import MotilalEmulator
from webapp.brokers.base import Account, BrokerSession, OrderRequest, OrderType, Product, Side, Validity
from webapp.brokers.motilal import MotilalBroker

INFY = {"exchange": "NSE", "tradingsymbol": "INFY", "exchange_token": 1594}
SBIN = {"exchange": "NSE", "tradingsymbol": "SBIN", "exchange_token": 3045}


def totp_now(creds: dict[str, Any]) -> str:
    return pyotp.TOTP(creds["totp_secret"]).now()


def login_params(creds: dict[str, Any], **overrides: str) -> dict[str, str]:
    return {"password": creds["password"], "two_fa": creds["two_fa"], "totp": totp_now(creds), **overrides}


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
    tag: str | None = None,
    algo_id: str | None = None,
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
        tag=tag,
        algo_id=algo_id,
    )


def device_headers(api_key: str | None, token: str | None = "") -> dict[str, str]:
    """The header set of brokers.md §2.4, for raw requests that bypass the adapter."""
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": "MOSL/V.1.1.0",
        "SourceId": "WEB",
        "ClientLocalIp": "127.0.0.1",
        "ClientPublicIp": "127.0.0.1",
        "MacAddress": "00:00:00:00:00:00",
        "vendorinfo": "",
        "browsername": "Chrome",
        "browserversion": "120.0",
    }
    if api_key is not None:
        headers["ApiKey"] = api_key
    if token is not None:
        headers["Authorization"] = token
    return headers


def password_hash(creds: dict[str, Any]) -> str:
    return hashlib.sha256((creds["password"] + creds["api_key"]).encode()).hexdigest()


@dataclass
class MotilalDesk:
    emulator: MotilalEmulator
    server: EmulatorServer
    brokers: list[MotilalBroker] = field(default_factory=list)
    http: requests.Session = field(default_factory=requests.Session)

    @property
    def url(self) -> str:
        return self.server.url

    def account(self, **fields: Any) -> dict[str, Any]:
        return self.emulator.add_account(**fields)

    def broker(
        self,
        creds: dict[str, Any],
        *,
        client_code: str | None = None,
        session: BrokerSession | None = None,
        **options: Any,
    ) -> MotilalBroker:
        credentials = {"api_key": creds["api_key"], "user_id": creds["user_id"]}
        if creds.get("vendor_code"):
            credentials["vendor_code"] = creds["vendor_code"]
        account = Account(client_code or creds["client_code"], credentials, session)
        broker = MotilalBroker(account, {"base_url": self.url, "read_interval": 0, **options})
        self.brokers.append(broker)
        return broker

    def login(self, creds: dict[str, Any], **options: Any) -> MotilalBroker:
        """An adapter that has logged in through /authdirectapi and uses the fresh token."""
        broker = self.broker(creds, **options)
        broker.complete_login(login_params(creds))
        return broker

    def post(self, path: str, body: Any, headers: dict[str, str]) -> requests.Response:
        return self.http.post(self.url + path, json=body, headers=headers, timeout=5)

    def raw_token(self, creds: dict[str, Any]) -> str:
        response = self.post(
            "/rest/login/v4/authdirectapi",
            {
                "userid": creds["user_id"],
                "password": password_hash(creds),
                "2FA": creds["two_fa"],
                "totp": totp_now(creds),
            },
            device_headers(creds["api_key"]),
        )
        return response.json()["AuthToken"]

    def reset(self, *, hang_seconds: float = 1.0) -> None:
        """Close this test's adapters and give the emulator a clean slate and fault plan."""
        for broker in self.brokers:
            broker.close()
        self.brokers.clear()
        self.emulator.reset(FaultPlan(hang_seconds=hang_seconds))

    def close(self) -> None:
        self.reset()
        self.http.close()
        self.server.stop()


def start_desk(*, hang_seconds: float = 1.0, **emulator_options: Any) -> MotilalDesk:
    emulator = MotilalEmulator(FaultPlan(hang_seconds=hang_seconds), **emulator_options)
    return MotilalDesk(emulator, EmulatorServer(emulator).start())

"""Helpers for tests that drive the Angel One adapter against its emulator over real HTTP.

`AngelDesk` owns one emulator on loopback and every adapter made through it, and closes them all.
`desk_account` and `API_URL_SETTING` are the contract the mixed-desk tests and the bench code against.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pyotp
import requests

from tests.emulators.angel import AngelEmulator
from tests.emulators.common import EmulatorServer, FaultPlan
from webapp.brokers.base import Account, BrokerSession, OrderRequest, OrderType, Product, Side, Validity
from webapp.timeutil import utcnow

API_URL_SETTING = "ANGEL_API_URL"

INFY = {"exchange": "NSE", "tradingsymbol": "INFY", "exchange_token": 1594}
SBIN = {"exchange": "NSE", "tradingsymbol": "SBIN", "exchange_token": 3045}


def desk_account(creds: dict) -> tuple[str, dict[str, str], BrokerSession]:
    """From the emulator's add_account answer: the desk Client's client code, the credentials the
    client form stores (credential_fields) and a live session (about 8 hours ahead)."""
    session = BrokerSession(
        access_token=creds["jwt_token"],
        expires_at=utcnow() + timedelta(hours=8),
        extra={"feed_token": creds["feed_token"], "refresh_token": creds["refresh_token"]},
    )
    return creds["client_code"], {"api_key": creds["api_key"]}, session


def totp_now(creds: dict[str, Any]) -> str:
    return pyotp.TOTP(creds["totp_secret"]).now()


def login_params(creds: dict[str, Any], **overrides: str) -> dict[str, str]:
    return {"mpin": creds["mpin"], "totp": totp_now(creds), **overrides}


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
    )


def headers(api_key: str, jwt: str | None = None) -> dict[str, str]:
    """The SmartAPI header set, for raw requests that bypass the adapter."""
    out = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "X-UserType": "USER",
        "X-SourceID": "WEB",
        "X-ClientLocalIP": "127.0.0.1",
        "X-ClientPublicIP": "127.0.0.1",
        "X-MACAddress": "00:00:00:00:00:00",
        "X-PrivateKey": api_key,
    }
    if jwt is not None:
        out["Authorization"] = f"Bearer {jwt}"
    return out


@dataclass
class AngelDesk:
    emulator: AngelEmulator
    server: EmulatorServer
    brokers: list[Any] = field(default_factory=list)
    http: requests.Session = field(default_factory=requests.Session)

    @property
    def url(self) -> str:
        return self.server.url

    def account(self, **fields: Any) -> dict[str, Any]:
        return self.emulator.add_account(**fields)

    def broker(self, creds: dict[str, Any], *, session: BrokerSession | None | bool = True, **options: Any) -> Any:
        """An adapter for `creds`' account: with its live session (default), a given one, or none."""
        from webapp.brokers.angel.adapter import AngelBroker

        code, credentials, live = desk_account(creds)
        chosen = live if session is True else (session or None)
        # read_interval 0: no pacing of reads in this process (the tests' emulators relax Angel's limits)
        broker = AngelBroker(Account(code, credentials, chosen), {"base_url": self.url, "read_interval": 0, **options})
        self.brokers.append(broker)
        return broker

    def login(self, creds: dict[str, Any], **options: Any) -> Any:
        broker = self.broker(creds, session=None, **options)
        broker.complete_login(login_params(creds))
        return broker

    def get(self, path: str, creds: dict[str, Any]) -> requests.Response:
        return self.http.get(self.url + path, headers=headers(creds["api_key"], creds["jwt_token"]), timeout=5)

    def post(self, path: str, body: Any, creds: dict[str, Any], jwt: str | None = None) -> requests.Response:
        token = creds["jwt_token"] if jwt is None else jwt
        return self.http.post(self.url + path, json=body, headers=headers(creds["api_key"], token), timeout=5)

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


def start_desk(*, hang_seconds: float = 1.0, **emulator_options: Any) -> AngelDesk:
    emulator = AngelEmulator(FaultPlan(hang_seconds=hang_seconds), **emulator_options)
    return AngelDesk(emulator, EmulatorServer(emulator).start())

"""Helpers for tests that drive the Kotak Neo adapter against its emulator over real HTTP.

`KotakDesk` owns one emulator on loopback and every adapter made through it, and closes them all.
`desk_account` turns the emulator's add_account answer into what the desk stores for a client
(mixed-desk tests and the benchmark code against it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pyotp

from tests.emulators.common import EmulatorServer, FaultPlan
from tests.emulators.kotak import KotakEmulator
from webapp.brokers.base import Account, BrokerSession, OrderRequest, OrderType, Product, Side, Validity
from webapp.timeutil import utcnow

API_URL_SETTING = "KOTAK_API_URL"

INFY = {"exchange": "NSE", "tradingsymbol": "INFY", "exchange_token": 1594}
SBIN = {"exchange": "NSE", "tradingsymbol": "SBIN", "exchange_token": 3045}
TCS = {"exchange": "NSE", "tradingsymbol": "TCS", "exchange_token": 11536}


def credentials_of(creds: dict[str, Any]) -> dict[str, str]:
    """What the desk stores for a Kotak client (the client form's credential_fields)."""
    return {"consumer_key": creds["consumer_key"], "mobile_number": creds["mobile_number"]}


def session_of(creds: dict[str, Any], hours: float = 8) -> BrokerSession:
    """The live session add_account already issued, as the adapter keeps it."""
    return BrokerSession(
        access_token=creds["session_token"],
        expires_at=utcnow() + timedelta(hours=hours),
        extra={
            "sid": creds["sid"],
            "base_url": creds["base_url"],
            "hs_server_id": creds.get("hs_server_id", ""),
            "data_center": creds.get("data_center", ""),
        },
    )


def desk_account(creds: dict[str, Any]) -> tuple[str, dict[str, str], BrokerSession]:
    """(client code, stored credentials, live session) for a desk Client at the Kotak emulator."""
    return creds["client_code"], credentials_of(creds), session_of(creds)


def totp_now(creds: dict[str, Any]) -> str:
    return pyotp.TOTP(creds["totp_secret"]).now()


def login_params(creds: dict[str, Any], **overrides: str) -> dict[str, str]:
    return {"totp": totp_now(creds), "mpin": creds["mpin"], **overrides}


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
    market_protection: str | None = None,
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
        market_protection=Decimal(market_protection) if market_protection else None,
    )


@dataclass
class KotakDesk:
    emulator: KotakEmulator
    server: EmulatorServer
    brokers: list[Any] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    def account(self, **fields: Any) -> dict[str, Any]:
        return self.emulator.add_account(**fields)

    def broker(
        self,
        creds: dict[str, Any],
        *,
        session: BrokerSession | None = None,
        logged_in: bool = True,
        **options: Any,
    ):
        """An adapter for `creds`' account: with the emulator's live session unless `session` is
        given or `logged_in` is False."""
        from webapp.brokers.kotak.adapter import KotakBroker

        if session is None and logged_in:
            session = session_of(creds)
        account = Account(creds["client_code"], credentials_of(creds), session)
        broker = KotakBroker(account, {"base_url": self.url, **options})
        self.brokers.append(broker)
        return broker

    def login(self, creds: dict[str, Any], **options: Any):
        """An adapter that logged in through tradeApiLogin + tradeApiValidate."""
        broker = self.broker(creds, logged_in=False, **options)
        broker.complete_login(login_params(creds))
        return broker

    def reset(self, *, hang_seconds: float = 1.0) -> None:
        """Close this test's adapters and give the emulator a clean slate and fault plan."""
        for broker in self.brokers:
            broker.close()
        self.brokers.clear()
        self.emulator.reset(FaultPlan(hang_seconds=hang_seconds))

    def close(self) -> None:
        self.reset()
        self.server.stop()


def start_desk(*, hang_seconds: float = 1.0, **emulator_options: Any) -> KotakDesk:
    emulator = KotakEmulator(FaultPlan(hang_seconds=hang_seconds), **emulator_options)
    server = EmulatorServer(emulator).start()
    emulator.public_url = server.url
    return KotakDesk(emulator, server)

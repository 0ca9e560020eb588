"""Helpers for tests (and the mixed-desk benchmarks) that drive the Dhan adapter against its emulator.

Contract for other suites: `API_URL_SETTING` names the one setting the desk needs pointed at the
emulator, and `desk_account(creds)` turns the emulator's add_account answer into what the desk
stores for a client: its client code, its credentials and a live session.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from webapp.brokers.base import BrokerSession, OrderRequest, OrderType, Product, Side, Validity
from webapp.timeutil import utcnow

API_URL_SETTING = "DHAN_API_URL"
AUTH_URL_SETTING = "DHAN_AUTH_URL"

INFY = {"exchange": "NSE", "tradingsymbol": "INFY", "exchange_token": 1594}
SBIN = {"exchange": "NSE", "tradingsymbol": "SBIN", "exchange_token": 3045}


def desk_account(creds: dict[str, Any]) -> tuple[str, dict[str, str], BrokerSession]:
    """(client code, stored credentials, a live session) for a Dhan emulator account."""
    session = BrokerSession(
        access_token=creds["access_token"],
        expires_at=utcnow() + timedelta(hours=8),
        extra={"client_id": creds["client_id"]},
    )
    return creds["client_id"], {}, session


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

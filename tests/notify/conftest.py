"""Notifications' test helpers: a desk with an admin, a trader granted one client, a viewer granted
another, and an inactive user; orders in given states."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pytest

from webapp.extensions import db, get_redis
from webapp.models import Order
from webapp.notify.collect import collect


@dataclass
class Desk:
    admin: object
    trader: object
    viewer: object
    idle: object
    mine: object  # the trader's client
    other: object  # the viewer's client
    instrument: object


@pytest.fixture
def desk(factory):
    mine, other = factory.client(name="Asha Rao"), factory.client(name="Vikram Shah")
    return Desk(
        admin=factory.user("boss", role="admin"),
        trader=factory.user("tina", role="trader", clients=[mine]),
        viewer=factory.user("vic", role="viewer", clients=[other]),
        idle=factory.user("gone", role="trader", clients=[mine], active=False),
        mine=mine,
        other=other,
        instrument=factory.instrument(),
    )


def order_in(factory, desk, client, status: str, quantity: int = 10, **fields) -> int:
    batch = factory.batch(desk.admin, [client], desk.instrument, quantity=quantity, status=status, **fields)
    with factory.app.app_context():
        return db.session.execute(db.select(Order.id).where(Order.batch_id == batch.id)).scalar_one()


def fill(app, order_id: int, filled: int, status: str = "PARTIAL") -> None:
    with app.app_context():
        order = db.session.get(Order, order_id)
        order.filled_quantity, order.status, order.average_price = filled, status, Decimal("1548.20")
        db.session.commit()


def run_collect(app, channels=frozenset()) -> list[int]:
    with app.app_context():
        try:
            return collect(get_redis(), frozenset(channels))
        finally:
            db.session.remove()

"""Fixtures for the deployment pages: the order tests' paper desk (tests/orders/conftest.py), three
instruments, and a way to write a deployment straight to the database."""

from __future__ import annotations

from datetime import time
from decimal import Decimal

import pytest

from tests.orders.conftest import Desk
from webapp.extensions import db
from webapp.models import Deployment, DeploymentClient, DeploymentInstrument


@pytest.fixture
def desk(app, factory):
    return Desk(app, factory)


@pytest.fixture
def instruments(desk, factory):
    return [
        desk.instrument,
        factory.instrument("TCS", 11536, price="3102.50"),
        factory.instrument("RELIANCE", 2885, price="1510.40"),
    ]


def make_deployment(app, clients, instruments, **fields) -> int:
    """A deployment row as `create` would write it (PAUSED unless told), without the form."""
    values = dict(
        name="EMA 5m",
        strategy="ema_crossover",
        params={"fast": 3, "slow": 8},
        interval=5,
        product="MIS",
        mode="paper",
        sizing="fixed",
        sizing_value=Decimal("10"),
        window_start=time(9, 15),
        last_entry=time(15, 0),
        days="0,1,2,3,4",
        state="PAUSED",
    )
    values.update(fields)
    with app.app_context():
        deployment = Deployment(**values)
        deployment.instruments = [DeploymentInstrument(instrument_id=i.id) for i in instruments]
        deployment.clients = [DeploymentClient(client_id=c.id) for c in clients]
        db.session.add(deployment)
        db.session.commit()
        return deployment.id


def form_data(instruments, clients, /, **overrides) -> dict:
    data = {
        "name": "EMA crossover 5m",
        "strategy": "ema_crossover",
        "param_fast": "3",
        "param_slow": "8",
        "instrument_ids": [str(i.id) for i in instruments],
        "interval": "5",
        "product": "MIS",
        "mode": "paper",
        "sizing": "fixed",
        "sizing_value": "10",
        "window_start": "09:15",
        "last_entry": "15:00",
        "squareoff_at": "15:10",
        "days": ["0", "1", "2", "3", "4"],
        "clients": [str(c.id) for c in clients],
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}

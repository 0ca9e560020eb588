"""Stop rules from a position row: chips, the form (arm, edit, a message next to the field and
nothing saved on bad input), cancel; who may set them."""

from decimal import Decimal

import pytest
import sqlalchemy as sa

from tests.automation.test_stops import buy
from tests.orders.conftest import Desk
from webapp.extensions import db
from webapp.models import StopRule
from webapp.models.automation import ARMED, CANCELLED


@pytest.fixture
def desk(app, factory):
    return Desk(app, factory)


@pytest.fixture
def held(app, desk, factory):
    alpha = desk.paper_client("Alpha")
    buy(app, desk, factory, alpha, 10)
    return alpha


def rules(app):
    with app.app_context():
        return db.session.execute(sa.select(StopRule).order_by(StopRule.id)).scalars().all()


def form(desk, **values):
    return {"instrument_id": desk.instrument.id, "product": "MIS", **values}


@pytest.mark.parametrize("role", ["trader", "limited", "admin"])
def test_a_person_arms_a_stop_and_sees_the_chip(app, client, auth, factory, desk, held, role):
    factory.user("u", role=role, clients=[held])
    auth.login("u")
    response = client.post(f"/stops/clients/{held.id}/save", data=form(desk, stop="1540.00", trail="5.00"))
    assert response.status_code == 303
    [rule] = rules(app)
    assert (rule.state, rule.stop_price, rule.trail_distance, rule.direction) == (
        ARMED,
        Decimal("1540.00"),
        Decimal("5.00"),
        1,
    )
    page = client.get(f"/clients/{held.id}").data.decode()
    assert "SL ₹1,540.00" in page or "SL 1,540.00" in page
    assert "TRAIL" in page


@pytest.mark.parametrize(
    ("values", "field_message"),
    [
        ({"stop": "1550.00"}, "below the price"),
        ({"target": "1500.00"}, "above the price"),
        ({"trail": "0"}, "above zero"),
        ({"stop": "1540.05"}, "tick size"),
        ({"stop": "NaN"}, "digits 0-9"),
        ({"stop": "1540.00", "quantity": "-3"}, "whole quantity"),
        ({}, "Set a stop"),
    ],
)
def test_bad_levels_get_a_message_and_save_nothing(app, client, auth, factory, desk, held, values, field_message):
    factory.user("tara", role="trader", clients=[held])
    auth.login("tara")
    response = client.post(f"/stops/clients/{held.id}/save", data=form(desk, **values))
    assert response.status_code == 422
    assert field_message in response.data.decode() and 'class="error"' in response.data.decode()
    assert rules(app) == []


def test_edit_then_cancel(app, client, auth, factory, desk, held):
    factory.user("tara", role="trader", clients=[held])
    auth.login("tara")
    client.post(f"/stops/clients/{held.id}/save", data=form(desk, stop="1540.00"))
    client.post(f"/stops/clients/{held.id}/save", data=form(desk, stop="1530.00", target="1600.00"))
    [rule] = rules(app)
    assert (rule.stop_price, rule.target_price) == (Decimal("1530.00"), Decimal("1600.00"))
    assert client.post(f"/stops/clients/{held.id}/cancel", data={"rule_id": rule.id}).status_code == 303
    assert [r.state for r in rules(app)] == [CANCELLED]


def test_viewer_sees_but_cannot_set(app, client, auth, factory, desk, held):
    factory.user("vic", role="viewer", clients=[held])
    auth.login("vic")
    assert client.get(f"/stops/clients/{held.id}").status_code == 200
    assert client.post(f"/stops/clients/{held.id}/save", data=form(desk, stop="1540.00")).status_code == 403
    assert rules(app) == []


def test_another_traders_client_is_not_found(app, client, auth, factory, desk, held):
    factory.user("tara", role="trader", clients=[])
    auth.login("tara")
    assert client.post(f"/stops/clients/{held.id}/save", data=form(desk, stop="1540.00")).status_code in (403, 404)
    assert rules(app) == []

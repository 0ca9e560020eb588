"""The pages around the breakers: the desk's risk settings (admins; bad input → a message next to the
field, nothing saved; audited), the client's max drawdown, the kill reason wherever the switch is
shown, and the risk alerts list scoped to the user's clients."""

from __future__ import annotations

from datetime import time
from decimal import Decimal

import pytest
import sqlalchemy as sa
from markupsafe import escape

from tests.test_admin_clients import client_data
from webapp.automation.alerts import raise_alert
from webapp.extensions import db
from webapp.models import AuditEvent, Client, DeskState

D = Decimal


def desk_row(app) -> DeskState | None:
    with app.app_context():
        row = db.session.get(DeskState, 1)
        if row is not None:
            db.session.expunge(row)
        return row


def test_an_admin_sets_the_desk_limit_and_square_off_time(app, client, auth, factory):
    factory.user("root", role="admin")
    auth.login("root")
    page = client.get("/risk/settings").data.decode()
    assert 'value="15:15"' in page
    response = client.post("/risk/settings", data={"max_daily_loss": "250000.50", "squareoff_time": "15:05"})
    assert response.status_code == 302
    row = desk_row(app)
    assert (row.max_daily_loss, row.squareoff_time) == (D("250000.5000"), time(15, 5))
    with app.app_context():
        event = db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "desk.risk_settings")).scalar_one()
        assert event.actor == "root" and "250000.5" in event.detail and "15:05" in event.detail
    client.post("/risk/settings", data={"max_daily_loss": "", "squareoff_time": ""})  # blank: no limit, 15:15
    row = desk_row(app)
    assert (row.max_daily_loss, row.squareoff_time) == (None, None)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("max_daily_loss", "-5", "zero or more"),
        ("max_daily_loss", "0", "above zero"),
        ("max_daily_loss", "1e5", "digits 0-9"),
        ("max_daily_loss", "12.345678", "decimal places"),
        ("squareoff_time", "25:00", "HH:MM"),
        ("squareoff_time", "3pm", "HH:MM"),
        ("squareoff_time", "15:45", "before the 15:30 IST close"),
        ("squareoff_time", "08:30", "after 09:15"),
        ("squareoff_time", "１５:１５", "HH:MM"),
    ],
)
def test_bad_input_is_a_message_by_the_field_and_nothing_saved(app, client, auth, factory, field, value, message):
    factory.user("root", role="admin")
    auth.login("root")
    data = {"max_daily_loss": "1000", "squareoff_time": "15:10", field: value}
    response = client.post("/risk/settings", data=data)
    assert response.status_code == 200
    page = response.data.decode()
    assert message.lower() in page.lower(), page
    assert desk_row(app) is None  # nothing saved, not even the other field


@pytest.mark.parametrize("role", ["trader", "limited", "viewer"])
def test_only_admins_change_the_desk_settings(client, auth, factory, role):
    factory.user("u", role=role)
    auth.login("u")
    assert client.get("/risk/settings").status_code == 403
    assert client.post("/risk/settings", data={"max_daily_loss": "1"}).status_code == 403


def test_the_client_form_sets_the_max_drawdown(app, client, auth, factory):
    factory.user("root", role="admin")
    auth.login("root")
    assert client.post("/admin/clients/new", data=client_data(max_drawdown="7500")).status_code == 302
    with app.app_context():
        assert db.session.execute(sa.select(Client.max_drawdown)).scalar_one() == D("7500.0000")
    bad = client.post("/admin/clients/new", data=client_data(client_code="ZZ1", max_drawdown="-1"))
    assert "zero or more" in bad.data.decode().lower()
    with app.app_context():
        assert db.session.execute(sa.select(sa.func.count()).select_from(Client)).scalar_one() == 1


def test_the_kill_reason_and_risk_alerts_are_shown_to_those_who_may_see_them(app, client, auth, factory):
    mine, other = factory.client("Mine"), factory.client("Other")
    reason = "Daily loss breaker: the day's MTM −₹600.00 reached the limit of ₹500.00 at 11:00 IST"
    with app.app_context():
        for c in (mine, other):
            row = db.session.get(Client, c.id)
            row.kill_switch, row.kill_reason = True, f"{c.name}: {reason}"
            raise_alert("breaker.daily_loss", f"{c.name} tripped", level="red", client_id=c.id)
        raise_alert("dayend.rolled", "Day end for the desk", level="info")
        db.session.commit()
    factory.user("tara", role="trader", clients=[mine])
    auth.login("tara")
    shown = str(escape(f"Mine: {reason}"))
    assert shown in client.get(f"/clients/{mine.id}").data.decode()
    desk = client.get("/").data.decode()
    assert shown in desk and "Mine tripped" in desk
    assert "Other" not in desk and "Day end for the desk" not in desk
    listing = client.get("/risk/alerts").data.decode()
    assert "Mine tripped" in listing and "Other tripped" not in listing and "Day end" not in listing
    partial = client.get("/risk/alerts", headers={"HX-Request": "true"}).data.decode()
    assert partial.lstrip().startswith('<section class="panel alerts" id="risk-alerts">')
    auth.logout()
    factory.user("root", role="admin")
    auth.login("root")
    listing = client.get("/risk/alerts").data.decode()
    assert all(text in listing for text in ("Mine tripped", "Other tripped", "Day end for the desk"))
    assert listing.index("Day end for the desk") < listing.index("Mine tripped")  # newest first


def test_a_risk_alert_reaches_the_desk_sockets_that_may_see_it(app, client, auth, factory):
    from webapp.feed import fragments
    from webapp.feed.hub import Subscriber

    mine, other = factory.client("Mine"), factory.client("Other")
    with app.app_context():
        alert = raise_alert("breaker.drawdown", "Other tripped", level="red", client_id=other.id)
        db.session.commit()
        event = {"event": "risk.alert", "alert": alert.id, "client": other.id, "kind": alert.kind}
        admin = Subscriber(1, 1, "admin", frozenset(), "desk", None)
        granted = Subscriber(2, 2, "trader", frozenset({other.id}), "desk", None)
        ungranted = Subscriber(3, 3, "trader", frozenset({mine.id}), "desk", None)
        on_a_client_page = Subscriber(4, 4, "admin", frozenset(), "client", other.id)
        delivered = fragments.for_event(event, [admin, granted, ungranted, on_a_client_page])
    assert {sub.id for sub, _ in delivered} == {1, 2}
    for _, html in delivered:
        assert 'id="risk-alerts" hx-swap-oob="true"' in html and "Other tripped" in html
    factory.user("root", role="admin")
    auth.login("root")
    assert 'id="risk-alerts"' in client.get("/").data.decode()  # the target is on the desk page

"""Deployments from the people's side: create (every bad input is a message next to its field and
saves nothing), start / pause / stop with their audit events and event, roles, client scope, the
automation switch, the catalogue and the live fragments."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest
import sqlalchemy as sa

from tests.conftest import count
from tests.deployments.conftest import form_data, make_deployment
from webapp.extensions import db
from webapp.models import AuditEvent, Deployment, DeploymentClient, DeploymentInstrument, DeskState


@pytest.fixture
def six(desk):
    return [desk.paper_client(f"Client {n}") for n in "ABCDEF"]


@pytest.fixture
def trader(factory, six):
    return factory.user("tara", role="trader", clients=six)


def actions(app) -> list[str]:
    with app.app_context():
        return list(db.session.execute(sa.select(AuditEvent.action).order_by(AuditEvent.seq)).scalars())


def error_of(body: str, field: str) -> str:
    found = re.search(rf'id="{re.escape(field)}-error">([^<]*)<', body)
    assert found, f"no message next to {field}"
    return found.group(1)


def test_a_trader_creates_a_paused_deployment(app, client, auth, trader, six, instruments):
    auth.login("tara")
    response = client.post("/deployments/new", data=form_data(instruments, six))
    assert response.status_code == 302
    with app.app_context():
        deployment = db.session.execute(sa.select(Deployment)).scalar_one()
        assert response.headers["Location"].endswith(f"/deployments/{deployment.id}")
        assert deployment.state == "PAUSED" and deployment.mode == "paper" and deployment.interval == 5
        assert deployment.params["fast"] == 3 and deployment.params["slow"] == 8  # validated by the class
        assert deployment.params["stop_pct"] == 0.0  # the defaults of the rest are stored too
        assert deployment.sizing_value == Decimal("10") and deployment.created_by_id == trader.id
        assert count(DeploymentInstrument) == 3 and count(DeploymentClient) == 6
    assert "deployment.created" in actions(app)
    page = client.get(response.headers["Location"]).data.decode()
    assert 'id="deployment-state">PAUSED' in page and "Client A" in page and "TCS" in page


@pytest.mark.parametrize(
    "overrides, field, message",
    [
        ({"param_fast": "0"}, "param_fast", "must be at least 1"),
        ({"param_fast": "-5"}, "param_fast", "must be at least 1"),
        ({"param_slow": "0"}, "param_slow", "must be at least 2"),
        ({"param_fast": "8", "param_slow": "8"}, "param_fast", "must be below the slow period"),
        ({"param_fast": "20", "param_slow": "8"}, "param_fast", "must be below the slow period"),
        ({"param_fast": "x"}, "param_fast", "must be a whole number"),
        ({"param_stop_pct": "-1"}, "param_stop_pct", "must be at least 0"),
        ({"window_start": "08:30"}, "window_start", "Must be inside market hours"),
        ({"last_entry": "16:00"}, "last_entry", "Must be inside market hours"),
        ({"window_start": "14:00", "last_entry": "10:00"}, "last_entry", "Must be after the start"),
        ({"squareoff_at": "14:00"}, "squareoff_at", "Must be at or after the last entry"),
        ({"squareoff_at": "15:45"}, "squareoff_at", "Must be inside market hours"),
        ({"instrument_ids": ["999999"]}, "instruments", "Unknown instrument"),
        ({"instrument_ids": []}, "instruments", "Choose at least one instrument"),
        ({"instrument_ids": ["abc"]}, "instruments", "Choose instruments from the search"),
        ({"sizing_value": "0"}, "sizing_value", "above zero"),
        ({"sizing": "capital_pct", "sizing_value": "150"}, "sizing_value", "at most 100"),
        ({"clients": []}, "clients", "Choose at least one client"),
        ({"days": []}, "days", "Choose at least one trading day"),
        ({"days": ["5"]}, "days", "Monday to Friday"),
        ({"strategy": "nope"}, "strategy", "Choose a strategy"),
        ({"interval": "7"}, "interval", "Choose a candle interval"),
        ({"sizing": "risk_pct", "sizing_value": "1"}, "sizing", "needs a stop"),
        ({"name": ""}, "name", "Name the deployment"),
    ],
)
def test_bad_input_is_a_message_next_to_the_field_and_nothing_is_saved(
    app, client, auth, trader, six, instruments, overrides, field, message
):
    auth.login("tara")
    before = actions(app)
    response = client.post("/deployments/new", data=form_data(instruments, six, **overrides))
    body = response.data.decode()
    assert response.status_code == 200
    assert message in error_of(body, field)
    assert "Nothing was saved" in body
    with app.app_context():
        assert count(Deployment) == 0 and count(DeploymentClient) == 0 and count(DeploymentInstrument) == 0
    assert actions(app) == before


def test_sizing_that_gives_zero_shares_names_the_client(app, client, auth, trader, six, instruments):
    auth.login("tara")
    # 1% of ₹20,000 = ₹200 buys no INFY at ₹1,548.20 for client B; the others have ₹10,00,000 each
    data = form_data(instruments, six, sizing="capital_pct", sizing_value="1")
    data.update({f"capital_{c.id}": "1000000" for c in six})
    data[f"capital_{six[1].id}"] = "20000"
    body = client.post("/deployments/new", data=data).data.decode()
    message = error_of(body, f"client_{six[1].id}")
    assert message.startswith("INFY: sizing gives 0 shares at ₹1,548.20 for Client B")
    with app.app_context():
        assert count(Deployment) == 0


def test_a_client_may_not_trade_the_product(app, client, auth, desk, factory, instruments):
    only_cnc = desk.paper_client("Delivery only", allowed_products="CNC")
    factory.user("tara", role="trader", clients=[only_cnc])
    auth.login("tara")
    body = client.post("/deployments/new", data=form_data(instruments, [only_cnc])).data.decode()
    assert "Delivery only may not trade MIS" in error_of(body, f"client_{only_cnc.id}")


def test_a_client_not_granted_is_refused(app, client, auth, trader, six, desk, instruments):
    stranger = desk.paper_client("Stranger")
    auth.login("tara")
    body = client.post("/deployments/new", data=form_data(instruments, [six[0], stranger])).data.decode()
    assert "Not a valid choice" in error_of(body, "clients") or "Choose clients" in body
    with app.app_context():
        assert count(Deployment) == 0


@pytest.mark.parametrize("role", ["limited", "viewer"])
def test_limited_traders_and_viewers_cannot_create_or_change(app, client, auth, factory, six, instruments, role):
    factory.user("who", role=role, clients=six)
    deployment_id = make_deployment(app, six, instruments)
    auth.login("who")
    assert client.get("/deployments/new").status_code == 403
    assert client.post("/deployments/new", data=form_data(instruments, six)).status_code == 403
    for act in ("start", "pause", "stop"):
        assert client.post(f"/deployments/{deployment_id}/{act}").status_code == 403
    assert client.post("/automation", data={"off": "1"}).status_code == 403
    page = client.get(f"/deployments/{deployment_id}")
    assert page.status_code == 200 and "start-deployment" not in page.data.decode()  # they may look
    assert client.get("/deployments").status_code == 200
    with app.app_context():
        assert count(Deployment) == 1 and db.session.get(Deployment, deployment_id).state == "PAUSED"
    assert actions(app).count("access.denied") >= 5


def test_start_pause_stop_are_audited_and_announced(app, client, auth, trader, six, instruments, redis_client):
    deployment_id = make_deployment(app, six, instruments)
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("fanout:events")
    pubsub.get_message(timeout=1)
    auth.login("tara")

    def state():
        with app.app_context():
            return db.session.get(Deployment, deployment_id).state

    assert client.post(f"/deployments/{deployment_id}/start").status_code == 302
    assert state() == "ACTIVE"
    with app.app_context():  # a paper deployment trades each client's paper twin, made at the start
        rows = db.session.get(Deployment, deployment_id).clients
        assert all(dc.twin_id and dc.twin.twin_of_id == dc.client_id for dc in rows)
    assert client.post(f"/deployments/{deployment_id}/pause").status_code == 302
    assert state() == "PAUSED"
    assert client.post(f"/deployments/{deployment_id}/start").status_code == 302
    assert client.post(f"/deployments/{deployment_id}/stop").status_code == 302
    assert state() == "STOPPED"
    page = client.post(f"/deployments/{deployment_id}/start", follow_redirects=True).data.decode()
    assert state() == "STOPPED" and "stopping is final" in page  # STOPPED is final
    done = [a for a in actions(app) if a.startswith("deployment.")]
    assert done == ["deployment.started", "deployment.paused", "deployment.started", "deployment.stopped"]
    events = []
    while (message := pubsub.get_message(timeout=1)) is not None or len(events) < 4:
        if message is None:
            break
        event = json.loads(message["data"])
        if event["event"] == "deployment.updated":
            events.append(event["state"])
    pubsub.close()
    assert events == ["ACTIVE", "PAUSED", "ACTIVE", "STOPPED"]
    with app.app_context():
        detail = db.session.execute(
            sa.select(AuditEvent.detail).where(AuditEvent.action == "deployment.stopped")
        ).scalar_one()
        assert json.loads(detail)["from"] == "ACTIVE"


def test_start_is_refused_while_automation_is_off_or_the_desk_is_killed(app, client, auth, trader, six, instruments):
    deployment_id = make_deployment(app, six, instruments)
    with app.app_context():
        db.session.add(DeskState(id=1, automation_off=True))
        db.session.commit()
    auth.login("tara")
    page = client.post(f"/deployments/{deployment_id}/start", follow_redirects=True).data.decode()
    assert "Automation is off" in page
    with app.app_context():
        state = db.session.get(DeskState, 1)
        state.automation_off, state.kill_switch = False, True
        db.session.commit()
    page = client.post(f"/deployments/{deployment_id}/start", follow_redirects=True).data.decode()
    assert "kill switch is on" in page
    with app.app_context():
        assert db.session.get(Deployment, deployment_id).state == "PAUSED"


def test_a_trader_sees_only_deployments_whose_clients_are_all_theirs(app, client, auth, trader, six, desk, instruments):
    stranger = desk.paper_client("Stranger")
    mine = make_deployment(app, six[:2], instruments, name="Mine")
    mixed = make_deployment(app, [six[0], stranger], instruments, name="Mixed")
    auth.login("tara")
    listing = client.get("/deployments").data.decode()
    assert f'id="deployment-{mine}"' in listing and f'id="deployment-{mixed}"' not in listing
    assert client.get(f"/deployments/{mixed}").status_code == 404
    assert client.post(f"/deployments/{mixed}/start").status_code == 404
    assert client.get(f"/deployments/{mixed}/edit").status_code == 404
    with app.app_context():
        assert db.session.get(Deployment, mixed).state == "PAUSED"


def test_an_admin_sees_every_deployment(app, client, auth, factory, six, desk, instruments):
    stranger = desk.paper_client("Stranger")
    factory.user("ada", role="admin")
    mixed = make_deployment(app, [six[0], stranger], instruments, name="Mixed")
    auth.login("ada")
    assert client.get(f"/deployments/{mixed}").status_code == 200


def test_edit_while_paused_and_not_while_running(app, client, auth, trader, six, instruments):
    deployment_id = make_deployment(app, six, instruments)
    auth.login("tara")
    assert client.get(f"/deployments/{deployment_id}/edit").status_code == 200
    data = form_data(instruments[:1], six[:3], name="Renamed", param_fast="5", param_slow="13")
    data[f"size_{six[0].id}"] = "25"
    assert client.post(f"/deployments/{deployment_id}/edit", data=data).status_code == 302
    shown = client.get(f"/deployments/{deployment_id}/edit").data.decode()
    assert re.search(rf'name="size_{six[0].id}" value="25.00"', shown)  # the stored override, shown again
    with app.app_context():
        deployment = db.session.get(Deployment, deployment_id)
        assert deployment.name == "Renamed" and deployment.params["fast"] == 5
        assert len(deployment.instruments) == 1 and len(deployment.clients) == 3
    bad = client.post(f"/deployments/{deployment_id}/edit", data={**data, "param_fast": "13"})
    assert "must be below the slow period" in error_of(bad.data.decode(), "param_fast")
    client.post(f"/deployments/{deployment_id}/start")
    assert client.post(f"/deployments/{deployment_id}/edit", data=data).status_code == 302  # refused: running
    with app.app_context():
        assert db.session.get(Deployment, deployment_id).name == "Renamed"
    assert actions(app).count("deployment.edited") == 1


def test_the_automation_switch(app, client, auth, factory):
    factory.user("ada", role="admin")
    auth.login("ada")
    assert "automation-toggle" in client.get("/").data.decode()
    assert client.post("/automation", data={"off": "1"}).status_code == 302
    with app.app_context():
        assert db.session.get(DeskState, 1).automation_off is True
    assert 'id="automation-state">OFF' in client.get("/").data.decode()
    assert client.post("/automation", data={"off": "yes"}).status_code == 400
    assert client.post("/automation", data={"off": "0"}).status_code == 302
    with app.app_context():
        assert db.session.get(DeskState, 1).automation_off is False
    assert [a for a in actions(app) if a.startswith("automation.")] == ["automation.off", "automation.on"]


def test_the_catalogue_lists_every_strategy_with_its_parameters(client, auth, factory):
    from webapp.strategies import all_strategies

    factory.user("vic", role="viewer")
    auth.login("vic")
    page = client.get("/strategies").data.decode()
    for strategy in all_strategies():
        assert f'id="strategy-{strategy.name}"' in page
        for param in strategy.params:
            assert f'id="param-{strategy.name}-{param.name}"' in page
    assert "Deploy…" not in page  # a viewer may not deploy


def test_choosing_a_strategy_swaps_its_parameter_fields(client, auth, trader):
    auth.login("tara")
    page = client.get("/deployments/params?strategy=ema_crossover").data.decode()
    assert 'name="param_fast"' in page and 'value="9"' in page
    assert "Choose a strategy" in client.get("/deployments/params?strategy=nope").data.decode()


def test_live_fragments_go_to_sockets_that_see_every_client(app, trader, six, desk, instruments):
    from webapp.feed import fragments
    from webapp.feed.hub import Subscriber

    stranger = desk.paper_client("Stranger")
    mine = make_deployment(app, six[:2], instruments)
    mixed = make_deployment(app, [six[0], stranger], instruments)
    granted = frozenset(c.id for c in six)
    subs = [
        Subscriber(id=1, user_id=trader.id, role="trader", client_ids=granted, page="deployment", target=mine),
        Subscriber(id=2, user_id=trader.id, role="trader", client_ids=granted, page="deployment", target=mixed),
        Subscriber(id=3, user_id=trader.id, role="viewer", client_ids=granted, page="deployments", target=None),
    ]
    with app.test_request_context("/"):
        out = fragments.for_event({"event": "deployment.updated", "deployment": mine, "state": "ACTIVE"}, subs)
        by_sub = {sub.id: html for sub, html in out}
        assert set(by_sub) == {1, 3}
        assert f'id="deployment-live-{mine}" hx-swap-oob="true"' in by_sub[1] and "start-deployment" in by_sub[1]
        assert 'name="csrf_token"' not in by_sub[1]  # the page's htmx header carries the token
        assert f'id="deployment-{mine}"' in by_sub[3] and f'id="deployment-{mixed}"' not in by_sub[3]
        assert fragments.for_event({"event": "signal.created", "deployment": mixed, "signal": 1}, subs[1:2]) == []
        snap = fragments.snapshot(subs[0])
        assert f'id="deployment-live-{mine}"' in snap


def test_a_pause_by_the_runner_reaches_the_deployment_page(app, trader, six, instruments):
    """The runner announces its pause as a risk.alert naming the deployment; a client's alert is not one."""
    from webapp.feed import fragments
    from webapp.feed.hub import Subscriber

    deployment_id = make_deployment(app, six[:2], instruments, state="PAUSED", state_reason="strategy raised")
    sub = Subscriber(
        id=1,
        user_id=trader.id,
        role="trader",
        client_ids=frozenset(c.id for c in six),
        page="deployment",
        target=deployment_id,
    )
    with app.test_request_context("/"):
        alert = {"event": "risk.alert", "deployment": deployment_id, "kind": "deployment.paused"}
        out = fragments.for_event(alert, [sub])
        assert len(out) == 1 and "strategy raised" in out[0][1]
        assert fragments.for_event({"event": "risk.alert", "deployment": None, "client": six[0].id}, [sub]) == []


@pytest.fixture
def all_day_session():
    from webapp.marketdata import intervals

    intervals.use_session("all_day")
    yield
    intervals.use_session("nse")


def test_in_the_demos_all_day_session_a_night_window_and_the_weekend_are_accepted(
    app, client, auth, trader, six, instruments, all_day_session
):
    auth.login("tara")
    assert 'value="6"' in client.get("/deployments/new").data.decode()  # Sunday offered
    night = {"window_start": "21:00", "last_entry": "23:30", "squareoff_at": "23:45", "days": ["5", "6"]}
    response = client.post("/deployments/new", data=form_data(instruments, six, **night))
    assert response.status_code == 302
    with app.app_context():
        deployment = db.session.execute(sa.select(Deployment)).scalar_one()
        assert deployment.days == "5,6" and deployment.window_start.hour == 21
    bad = client.post("/deployments/new", data=form_data(instruments, six, window_start="23:00", last_entry="22:00"))
    assert "Must be after the start" in error_of(bad.data.decode(), "last_entry")

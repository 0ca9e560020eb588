"""A signal hook (issue 14 item 4): an alert becomes ONE signal of a deployment, acted on by the runner as
the strategy's own (automation switch, state, window, sizing per client, paper twins, one batch). The
real route, database and Redis; the job in-process; the paper exchange."""

from __future__ import annotations

import json
import re
from datetime import time, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from tests.conftest import count
from webapp.extensions import db, get_redis
from webapp.hooks import alerts
from webapp.models import (
    Batch,
    Client,
    Deployment,
    DeploymentClient,
    DeploymentInstrument,
    DeskState,
    Hook,
    HookAlert,
    Order,
    StrategySignal,
)
from webapp.models.api import HOOK_SIGNAL
from webapp.strategies import Action
from webapp.timeutil import as_utc
from webapp.trading import states

D = Decimal
STRATEGY_ALERT = {
    "ticker": "SBIN",
    "exchange": "NSE",
    "action": "buy",
    "market_position": "long",
    "contracts": "10",
    "price": "612.5",
}


def post(client, secret, body):
    return client.post(f"/hooks/{secret}", data=json.dumps(body), content_type="application/json")


def deploy(desk, instruments, clients=None, *, state="ACTIVE", sizes=None, **fields) -> int:
    """A paper deployment of the hook's owner over its two clients: fixed 7 shares, any day, any time
    (the alert's receipt is the real clock), the first client sized 3 by its own value unless told."""
    clients = clients if clients is not None else desk.clients
    sizes = sizes if sizes is not None else {clients[0].id: D("3")}
    with desk.app.app_context():
        deployment = Deployment(
            name=fields.pop("name", "Breakout desk"),
            strategy="ema_crossover",
            params={"fast": 3, "slow": 8},
            interval=fields.pop("interval", 15),
            product="MIS",
            mode=fields.pop("mode", "paper"),
            sizing="fixed",
            sizing_value=D("7"),
            window_start=time(0, 0),
            last_entry=time(23, 59, 59),
            days="0,1,2,3,4,5,6",
            state=state,
            created_by_id=desk.owner.id,
            **fields,
        )
        deployment.instruments = [DeploymentInstrument(instrument_id=i.id) for i in instruments]
        deployment.clients = [DeploymentClient(client_id=c.id, sizing_value=sizes.get(c.id)) for c in clients]
        db.session.add(deployment)
        db.session.commit()
        return deployment.id


def signal_hook(desk, deployment_id: int) -> tuple[int, str]:
    return desk.hook(kind=HOOK_SIGNAL, deployment_id=deployment_id, quantities={}, name="signals")


def signals() -> list[StrategySignal]:
    return list(db.session.execute(sa.select(StrategySignal).order_by(StrategySignal.id)).scalars())


def test_a_strategy_alert_makes_one_signal_and_one_batch_on_the_paper_twins(client, desk):
    deployment_id = deploy(desk, [desk.sbin])
    _, secret = signal_hook(desk, deployment_id)
    reply = post(client, secret, STRATEGY_ALERT)
    assert (reply.status_code, reply.json["status"]) == (200, "RECEIVED")
    alert_id = reply.json["alert_id"]
    assert desk.run_job(alert_id) == []  # the runner queued the batch's send itself
    assert desk.run_job(alert_id) == []  # the job run twice: nothing more
    with desk.app.app_context():
        (row,) = signals()
        alert = db.session.get(HookAlert, alert_id)
        assert (row.deployment_id, row.instrument_id, row.action, row.price) == (
            deployment_id,
            desk.sbin.id,
            "enter_long",
            D("612.50"),
        )
        assert as_utc(row.bar_time) == as_utc(alert.received_at)  # the alert's receipt, not a bar's start
        (batch,) = db.session.execute(sa.select(Batch)).scalars().all()
        assert (batch.deployment_id, batch.kind, batch.action, batch.instrument_id) == (
            deployment_id,
            "signal",
            "BUY",
            desk.sbin.id,
        )
        assert (row.batch_id, alert.status, alert.signal_id, alert.batch_id) == (
            batch.id,
            "PROCESSED",
            row.id,
            batch.id,
        )
        assert f"batch #{batch.id}: 2 BUY sent" in row.outcome and row.outcome in alert.reason
        deployment = db.session.get(Deployment, deployment_id)
        twin_of = {link.twin_id: link.client_id for link in deployment.clients}
        assert all(twin is not None for twin in twin_of)
        children = {o.client_id: (o.side, o.quantity) for o in batch.orders}
        # the twins trade, not the clients; the first sized by its own value, the second by the rule
        assert {twin_of[c]: q for c, q in children.items()} == {
            desk.clients[0].id: ("BUY", 3),
            desk.clients[1].id: ("BUY", 7),
        }
        assert all(db.session.get(Client, c).twin_of_id is not None for c in children)
        cursor = db.session.execute(sa.select(DeploymentInstrument.last_bar)).scalar_one()
        assert cursor is None  # the strategy's bar cursor did not move
        batch_id = batch.id
    desk.run_orders()  # the send the runner queued reaches the paper exchange
    statuses = {status for _, _, status in desk.children(batch_id).values()}
    assert statuses <= states.AT_BROKER | {states.COMPLETE}


def test_chartink_makes_one_signal_per_stock_of_the_deployment(client, desk):
    from tests.hooks.test_hooks import CHARTINK

    deployment_id = deploy(desk, [desk.sbin, desk.infy])
    _, secret = signal_hook(desk, deployment_id)
    alert_id = post(client, secret, CHARTINK).json["alert_id"]
    desk.run_job(alert_id)
    with desk.app.app_context():
        rows = signals()
        assert [(r.instrument_id, r.action, r.price) for r in rows] == [
            (desk.sbin.id, "enter_long", D("612.50")),
            (desk.infy.id, "enter_long", D("1548.20")),
        ]
        assert all(r.batch_id is not None for r in rows)
        alert = db.session.get(HookAlert, alert_id)
        assert (alert.status, alert.signal_id, alert.batch_id) == ("PROCESSED", rows[0].id, rows[0].batch_id)
        assert count(Batch) == 2


def test_an_instrument_the_deployment_does_not_trade_is_rejected(client, desk):
    deployment_id = deploy(desk, [desk.sbin])
    _, secret = signal_hook(desk, deployment_id)
    alert_id = post(client, secret, {**STRATEGY_ALERT, "ticker": "INFY"}).json["alert_id"]
    assert desk.run_job(alert_id) == []
    with desk.app.app_context():
        alert = db.session.get(HookAlert, alert_id)
        assert alert.status == "REJECTED"
        assert "not traded by deployment Breakout desk: NSE:INFY" in alert.reason
        assert (count(StrategySignal), count(Batch), alert.signal_id) == (0, 0, None)


@pytest.mark.parametrize("state", ["PAUSED", "STOPPED"])
def test_a_deployment_not_running_stores_the_refused_signal_and_makes_no_batch(client, desk, state):
    deployment_id = deploy(desk, [desk.sbin], state=state)
    _, secret = signal_hook(desk, deployment_id)
    alert_id = post(client, secret, STRATEGY_ALERT).json["alert_id"]
    desk.run_job(alert_id)
    with desk.app.app_context():
        (row,) = signals()
        assert (row.outcome, row.batch_id) == (f"refused: the deployment is {state.lower()}", None)
        alert = db.session.get(HookAlert, alert_id)
        assert (alert.status, alert.signal_id, alert.batch_id) == ("PROCESSED", row.id, None)
        assert (count(Batch), count(Order)) == (0, 0)


def test_automation_off_refuses_the_signal(client, desk):
    deployment_id = deploy(desk, [desk.sbin])
    _, secret = signal_hook(desk, deployment_id)
    with desk.app.app_context():
        db.session.add(DeskState(id=1, automation_off=True))
        db.session.commit()
    alert_id = post(client, secret, STRATEGY_ALERT).json["alert_id"]
    desk.run_job(alert_id)
    with desk.app.app_context():
        (row,) = signals()
        assert (row.outcome, row.batch_id) == ("refused: automation is off for the desk", None)
        assert count(Batch) == 0


def test_never_sent_late_a_stale_alert_expires_and_one_past_the_send_deadline_is_stored_expired(desk):
    deployment_id = deploy(desk, [desk.sbin])
    hook_id, _ = signal_hook(desk, deployment_id)
    with desk.app.app_context():
        hook = db.session.get(Hook, hook_id)
        stale = alerts.receive(hook, json.dumps(STRATEGY_ALERT), None).alert
        late = alerts.receive(hook, json.dumps({**STRATEGY_ALERT, "ticker": "SBIN", "contracts": "11"}), None).alert
        stale_id, late_id, received = stale.id, late.id, as_utc(late.received_at)
        assert alerts.process(stale_id, get_redis(), 30, now=received + timedelta(seconds=31)) == []
        assert db.session.get(HookAlert, stale_id).status == "EXPIRED"
        assert count(StrategySignal) == 0  # the hook's freshness window: nothing stored, nothing sent
        alerts.process(
            late_id, get_redis(), 30, now=received + timedelta(seconds=20), config={"SEND_DEADLINE_SECONDS": 10}
        )
        (row,) = signals()
        assert (row.outcome, row.batch_id) == ("expired: not sent late", None)
        assert count(Batch) == 0


def test_a_hook_whose_owner_can_no_longer_see_the_deployment_rejects_the_alert(client, desk):
    outsider = desk.paper_client("Not granted")
    deployment_id = deploy(desk, [desk.sbin], clients=[desk.clients[0], outsider], sizes={})
    _, secret = signal_hook(desk, deployment_id)
    alert_id = post(client, secret, STRATEGY_ALERT).json["alert_id"]
    desk.run_job(alert_id)
    with desk.app.app_context():
        alert = db.session.get(HookAlert, alert_id)
        assert alert.status == "REJECTED" and "not one its owner may manage" in alert.reason
        assert count(StrategySignal) == 0


@pytest.mark.parametrize(
    "fields, action",
    [
        ({"action": "buy", "market_position": "long"}, Action.ENTER_LONG),
        ({"action": "sell", "market_position": "short"}, Action.ENTER_SHORT),
        ({"action": "sell", "market_position": "flat"}, Action.EXIT_LONG),
        ({"action": "buy", "market_position": "flat"}, Action.EXIT_SHORT),
        ({"action": "buy"}, Action.ENTER_LONG),
        ({"action": "sell"}, Action.EXIT),
        ({"action": "enter_short"}, Action.ENTER_SHORT),
        ({"action": "EXIT_LONG"}, Action.EXIT_LONG),
        ({"action": "exit"}, Action.EXIT),
    ],
)
def test_an_alert_maps_to_the_signal_it_asks_for(fields, action):
    assert alerts.signal_action(alerts.parse(json.dumps({"ticker": "NSE:SBIN", **fields}))) == action


def test_the_default_strategy_message_and_partial_exits():
    text = "order sell @ 10 filled on NSE:SBIN. New strategy position is 0"
    assert alerts.signal_action(alerts.parse(text)) == Action.EXIT_LONG
    with pytest.raises(alerts.AlertError, match="partial exit"):
        alerts.signal_action(alerts.parse(json.dumps({"ticker": "SBIN", "action": "sell", "market_position": "long"})))
    with pytest.raises(alerts.AlertError, match="market_position"):
        alerts.parse(json.dumps({"ticker": "SBIN", "action": "buy", "market_position": "sideways"}))


def test_an_entry_and_an_exit_in_one_window_are_not_duplicates(client, desk):
    deployment_id = deploy(desk, [desk.sbin])
    _, secret = signal_hook(desk, deployment_id)
    first = post(client, secret, STRATEGY_ALERT).json
    second = post(client, secret, {**STRATEGY_ALERT, "action": "buy", "market_position": "flat"}).json
    again = post(client, secret, STRATEGY_ALERT).json
    assert [first["status"], second["status"], again["status"]] == ["RECEIVED", "RECEIVED", "DUPLICATE"]


def _form(deployment_id, **overrides) -> dict:
    data = {"name": "strategy alerts", "kind": "signal", "deployment": str(deployment_id), "dedupe_seconds": "30"}
    data.update(overrides)
    return data


def test_the_form_creates_a_signal_hook_and_the_page_shows_its_deployment(client, auth, desk):
    deployment_id = deploy(desk, [desk.sbin])
    auth.login("hookowner")
    assert "Breakout desk (active)" in client.get("/hooks/new").get_data(as_text=True)
    created = client.post("/hooks/new", data=_form(deployment_id))
    assert created.status_code == 201
    assert "{{strategy.market_position}}" in created.get_data(as_text=True)
    with desk.app.app_context():
        hook = db.session.execute(sa.select(Hook)).scalar_one()
        assert (hook.kind, hook.deployment_id, hook.quantities, hook.client_ids) == (
            "signal",
            deployment_id,
            {},
            [],
        )
        hook_id = hook.id
    page = client.get(f"/hooks/{hook_id}").get_data(as_text=True)
    assert "Deployment signal" in page and "Breakout desk" in page and "NSE:SBIN" in page
    assert "signal of Breakout desk" in client.get("/hooks").get_data(as_text=True)
    edit = client.get(f"/hooks/{hook_id}/edit").get_data(as_text=True)
    assert re.search(r'<input[^>]*checked[^>]*value="signal"', edit), edit


def test_the_form_refuses_a_deployment_the_user_may_not_manage(client, auth, desk):
    outsider = desk.paper_client("Not granted")
    theirs = deploy(desk, [desk.sbin], clients=[outsider], sizes={})
    auth.login("hookowner")
    for bad in (str(theirs), "", "99999", "abc", "１２"):
        reply = client.post("/hooks/new", data=_form(theirs, deployment=bad))
        assert reply.status_code == 400, bad
        assert "Choose a deployment you may manage." in reply.get_data(as_text=True)
    with desk.app.app_context():
        assert count(Hook) == 0

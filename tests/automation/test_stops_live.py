"""Live chips: arming, editing, cancelling and firing a stop rule publish `stops.changed` naming the
client (after the commit); the feed hub turns it into the client's positions (their chips) for the
client pages allowed to see that client, and nothing for anyone else."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import pytest

from tests.automation.test_stops import buy
from tests.orders.conftest import Desk
from webapp.automation import stops
from webapp.events import CHANNEL
from webapp.extensions import db, get_redis
from webapp.feed import fragments
from webapp.feed.hub import Subscriber
from webapp.models import StopRule

D = Decimal


@pytest.fixture
def desk(app, factory):
    return Desk(app, factory)


@pytest.fixture
def held(app, desk, factory):
    alpha, beta = desk.paper_client("Alpha"), desk.paper_client("Beta")
    buy(app, desk, factory, alpha, 10)
    return alpha, beta


class Events:
    """What the desk publishes on its event channel, from now on."""

    def __init__(self, app):
        with app.app_context():
            self.pubsub = get_redis().pubsub(ignore_subscribe_messages=True)
            self.pubsub.subscribe(CHANNEL)

    def next(self, kind: str, timeout: float = 5.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self.pubsub.get_message(timeout=0.2)  # None too for the subscribe reply
            if message is not None and (event := json.loads(message["data"])).get("event") == kind:
                return event
        raise AssertionError(f"no {kind} event in {timeout:g} s")

    def close(self):
        self.pubsub.close()


@pytest.fixture
def events(app):
    listener = Events(app)
    yield listener
    listener.close()


def subscriber(page: str, target, role="trader", client_ids=frozenset()) -> Subscriber:
    return Subscriber(id=1, user_id=1, role=role, client_ids=frozenset(client_ids), page=page, target=target)


def delivered(app, event, subs) -> list[tuple[Subscriber, str]]:
    with app.test_request_context("/"):
        try:
            return fragments.for_event(event, subs)
        finally:
            db.session.remove()


def test_arm_edit_cancel_and_fire_each_rerender_the_clients_chips(app, desk, held, events, factory):
    alpha, beta = held
    mine = subscriber("client", alpha.id, client_ids={alpha.id})
    theirs = subscriber("client", alpha.id, client_ids={beta.id})  # a trader not granted Alpha
    other_page = subscriber("client", beta.id, client_ids={alpha.id, beta.id})
    desk_page = subscriber("desk", None, client_ids={alpha.id}, role="trader")
    everyone = [mine, theirs, other_page, desk_page]
    root = factory.user("root", role="admin")
    with app.app_context():
        rule = stops.arm(
            client_id=alpha.id,
            instrument_id=desk.instrument.id,
            product="MIS",
            direction=1,
            stop=D("1540.00"),
            source="position",
            price=D("1548.20"),
        )
        db.session.commit()
        rule_id = rule.id
        stops.notify_changed(get_redis())
    armed = events.next(stops.CHANGED_EVENT)
    assert armed["clients"] == [alpha.id]
    out = delivered(app, armed, everyone)
    assert [s for s, _ in out] == [mine]
    html = out[0][1]
    assert f'id="positions-{alpha.id}"' in html and 'hx-swap-oob="true"' in html
    assert 'title="Stop-loss">SL' in html and "1,540.00" in html

    with app.app_context():
        from webapp.models import User

        stops.edit(
            db.session.get(StopRule, rule_id),
            db.session.get(User, root.id),
            stop=D("1530.00"),
            target=None,
            trail=None,
            quantity=None,
            price=D("1548.20"),
        )
        db.session.commit()
        stops.notify_changed(get_redis())
    edited = events.next(stops.CHANGED_EVENT)
    [(_, html)] = delivered(app, edited, [mine])
    assert "1,530.00" in html and "1,540.00" not in html

    with app.app_context():
        index = stops.StopIndex()
        index.refresh(get_redis(), force=True)
        [result] = index.check({desk.instrument.instrument_token: D("1529.00")}, get_redis())  # fires, in "the feed"
        assert result.rule_ids == [rule_id]
    fired = events.next(stops.CHANGED_EVENT)
    assert fired["clients"] == [alpha.id]
    alert = events.next("risk.alert")  # the alert is announced too (after the commit, in one round trip)
    assert (alert["kind"], alert["client"], alert["level"]) == ("stop.fired", alpha.id, "red")
    [(_, html)] = delivered(app, fired, [mine])
    assert 'title="Stop-loss"' not in html  # fired: no chip any more


def test_a_cancel_from_the_page_announces_it(app, client, auth, factory, desk, held, events):
    alpha, _ = held
    factory.user("u", role="trader", clients=[alpha])
    auth.login("u")
    form = {"instrument_id": desk.instrument.id, "product": "MIS", "trail": "5.00"}
    assert client.post(f"/stops/clients/{alpha.id}/save", data=form).status_code == 303
    assert events.next(stops.CHANGED_EVENT)["clients"] == [alpha.id]
    with app.app_context():
        rule_id = stops.armed_rule(alpha.id, desk.instrument.id, "MIS").id
    assert client.post(f"/stops/clients/{alpha.id}/cancel", data={"rule_id": rule_id}).status_code == 303
    cancelled = events.next(stops.CHANGED_EVENT)
    [(_, html)] = delivered(app, cancelled, [subscriber("client", alpha.id, client_ids={alpha.id})])
    assert "TRAIL" not in html


def test_the_fragment_targets_an_id_the_client_page_has(app, client, auth, factory, desk, held):
    alpha, _ = held
    factory.user("u", role="trader", clients=[alpha])
    auth.login("u")
    page = client.get(f"/clients/{alpha.id}").data.decode()
    event = {"event": stops.CHANGED_EVENT, "clients": [alpha.id]}
    [(_, html)] = delivered(app, event, [subscriber("client", alpha.id, client_ids={alpha.id})])
    assert f'<tbody id="positions-{alpha.id}"' in page
    assert f'<tbody id="positions-{alpha.id}" hx-swap-oob="true"' in html


def test_hostile_client_lists_render_nothing(app, held):
    alpha, _ = held
    sub = subscriber("client", alpha.id, role="admin")
    for clients in (None, [], ["x"], [10**12], "1"):
        assert delivered(app, {"event": stops.CHANGED_EVENT, "clients": clients}, [sub]) == []

"""Stop / target / trail on the ticket (issue 12 item 5): validated against the ticket's price (the
LTP for a market order) with the message next to the field and nothing saved; on placing, one rule
per child the batch sends (not the ones risk refused), in the batch's transaction, waiting for its
entry; announced after the commit; firing after the fill exits the child's quantity once."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from decimal import Decimal

import pytest
import sqlalchemy as sa
from rq import Queue

from webapp.automation import stops
from webapp.events import CHANNEL
from webapp.extensions import db, get_redis, get_rq_redis
from webapp.models import AuditEvent, Batch, Order, StopRule
from webapp.models.automation import ARMED, CANCELLED, FIRED
from webapp.models.paper import PaperOrder

D = Decimal
TICKET = "00000000-0000-4000-8000-0000000000a1"


@pytest.fixture
def trader(desk, factory, auth):
    clients = [desk.paper_client("Alpha"), desk.paper_client("Beta")]
    factory.user("tara", role="trader", clients=clients)
    auth.login("tara")
    return clients


def ticket(desk, clients, qty="10", **fields):
    data = {
        "ticket_id": TICKET,
        "instrument_id": desk.instrument.id,
        "action": "BUY",
        "product": "MIS",
        "order_type": "MARKET",
        "validity": "DAY",
    }
    data.update({f"qty_{c.id}": qty for c in clients})
    data.update(fields)
    return data


def rules(app) -> list[StopRule]:
    with app.app_context():
        found = db.session.execute(sa.select(StopRule).order_by(StopRule.client_id)).scalars().all()
        db.session.expunge_all()
        return found


def counts(app) -> tuple[int, int, int, int]:
    with app.app_context():
        count = lambda model: db.session.execute(sa.select(sa.func.count()).select_from(model)).scalar_one()  # noqa: E731
        return count(Batch), count(Order), count(StopRule), Queue("orders", connection=get_rq_redis()).count


def test_a_ticket_with_levels_arms_one_rule_per_child_and_announces_it(app, client, trader, desk):
    alpha, beta = trader
    with app.app_context():
        listener = get_redis().pubsub(ignore_subscribe_messages=True)
        listener.subscribe(CHANNEL)
        version = int(get_redis().get(stops.VERSION_KEY) or 0)
    data = ticket(desk, trader, stop="1540.00", target="1600.00", trail="5.00")
    data[f"qty_{beta.id}"] = "4"
    response = client.post("/orders/new", data=data)
    assert response.status_code == 302
    found = rules(app)
    assert [
        (r.client_id, r.direction, r.quantity, r.stop_price, r.target_price, r.trail_distance, r.state, r.source)
        for r in found
    ] == [
        (alpha.id, 1, 10, D("1540.00"), D("1600.00"), D("5.00"), ARMED, "ticket"),
        (beta.id, 1, 4, D("1540.00"), D("1600.00"), D("5.00"), ARMED, "ticket"),
    ]
    assert {r.trail_anchor for r in found} == {D("1548.20")}  # the trailing anchor starts at the LTP
    with app.app_context():
        [armed] = db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "stop.armed")).scalars().all()
        assert armed.actor == "tara" and armed.target.startswith("batch:")
        assert int(get_redis().get(stops.VERSION_KEY)) == version + 1
        events, deadline = [], time.monotonic() + 5
        while time.monotonic() < deadline and not any(e.get("event") == stops.CHANGED_EVENT for e in events):
            if (message := listener.get_message(timeout=0.2)) is not None:  # None also for the subscribe reply
                events.append(json.loads(message["data"]))
        listener.close()
    assert {"event": stops.CHANGED_EVENT, "clients": sorted([alpha.id, beta.id])} in events


def test_a_short_ticket_arms_short_rules_and_checks_levels_the_other_way(app, client, trader, desk):
    response = client.post("/orders/new", data=ticket(desk, trader, action="SELL", stop="1560.00", target="1500.00"))
    assert response.status_code == 302
    assert {(r.direction, r.stop_price, r.target_price) for r in rules(app)} == {(-1, D("1560.00"), D("1500.00"))}


def test_no_levels_no_rules(app, client, trader, desk):
    assert client.post("/orders/new", data=ticket(desk, trader)).status_code == 302
    assert rules(app) == []


def test_a_child_risk_refused_gets_no_rule(app, client, desk, factory, auth):
    alpha, blocked = desk.paper_client("Alpha"), desk.paper_client("Blocked", kill_switch=True)
    factory.user("tara", role="trader", clients=[alpha, blocked])
    auth.login("tara")
    assert client.post("/orders/new", data=ticket(desk, [alpha, blocked], stop="1540.00")).status_code == 302
    with app.app_context():
        statuses = dict(db.session.execute(sa.select(Order.client_id, Order.status)).all())
    assert statuses == {alpha.id: "NEW", blocked.id: "FAILED"}
    assert [r.client_id for r in rules(app)] == [alpha.id]


def test_a_new_ticket_replaces_the_positions_armed_rule(app, client, trader, desk):
    assert client.post("/orders/new", data=ticket(desk, trader, stop="1540.00")).status_code == 302
    second = ticket(desk, trader, stop="1530.00", ticket_id="00000000-0000-4000-8000-0000000000a2")
    assert client.post("/orders/new", data=second).status_code == 302
    found = rules(app)
    assert Counter((r.stop_price, r.state) for r in found) == Counter(
        {(D("1540.00"), CANCELLED): 2, (D("1530.00"), ARMED): 2}
    )


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"stop": "1550.00"}, "stop", "A long position&#39;s stop must be below the price ₹1,548.20."),
        ({"target": "1540.00"}, "target", "A long position&#39;s target must be above the price ₹1,548.20."),
        (
            {"action": "SELL", "stop": "1540.00"},
            "stop",
            "A short position&#39;s stop must be above the price ₹1,548.20.",
        ),
        ({"trail": "0"}, "trail", "Trailing distance must be above zero."),
        ({"trail": "1600.00"}, "trail", "The trailing distance must be below the price ₹1,548.20."),
        ({"stop": "1540.05"}, "stop", "Stop must be a multiple of the tick size ₹0.1."),
        ({"stop": "-5"}, "stop", ""),
        ({"stop": "abc"}, "stop", "Enter a number using the digits 0-9 and a decimal point only."),
        ({"target": "1e309"}, "target", "Enter a number using the digits 0-9 and a decimal point only."),
        ({"trail": "NaN"}, "trail", "Enter a number using the digits 0-9 and a decimal point only."),
        # a limit order: the levels are checked against its price, not the LTP
        (
            {"order_type": "LIMIT", "price": "1500.00", "stop": "1520.00"},
            "stop",
            "A long position&#39;s stop must be below the price ₹1,500.00.",
        ),
    ],
)
def test_bad_levels_get_a_message_next_to_the_field_and_save_nothing(app, client, trader, desk, fields, field, message):
    response = client.post("/orders/new", data=ticket(desk, trader, **fields))
    page = response.data.decode()
    assert response.status_code == 200
    shown = page.split(f'id="{field}-error">', 1)
    assert len(shown) == 2, page[:3000]
    assert message in shown[1].split("</small>", 1)[0]
    assert counts(app) == (0, 0, 0, 0)


def test_the_preview_shows_a_level_on_the_wrong_side(client, trader, desk):
    page = client.post("/orders/preview", data=ticket(desk, trader, stop="1550.00")).data.decode()
    # beside its field, out of band (templates/orders/_preview.html), and said once
    assert re.search(r'id="stop-error" hx-swap-oob="true">[^<]*stop must be below the price ₹1,548.20', page)
    assert page.count("stop must be below") == 1
    page = client.post("/orders/preview", data=ticket(desk, trader, stop="1540.00")).data.decode()
    assert 'id="stop-error" hx-swap-oob="true"></small>' in page and "stop must be below" not in page


def test_the_rule_waits_for_its_entry_then_fires_the_childs_quantity_once(app, client, trader, desk):
    alpha, beta = trader
    data = ticket(desk, trader, stop="1540.00")
    data[f"qty_{beta.id}"] = "4"
    assert client.post("/orders/new", data=data).status_code == 302
    token = desk.instrument.instrument_token
    index = stops.StopIndex()
    with app.app_context():
        redis = get_redis()
        index.refresh(redis, force=True)  # the feed's reload: the entries are still open, nothing cancelled
        assert index.count == 2
        assert [f.rule_ids for f in index.check({token: D("1535.00")}, redis)] == [[]]  # entry not filled yet
    assert {r.state for r in rules(app)} == {ARMED}
    desk.run_worker()  # the entry is sent, filled at the paper exchange and synced
    with app.app_context():
        index.refresh(redis, force=True)
        assert index.count == 2  # held now: still armed
        for _ in range(3):  # the crossing tick repeats
            index.check({token: D("1535.00")}, redis)
    assert {r.state for r in rules(app)} == {FIRED}
    with app.app_context():
        exits = db.session.execute(
            sa.select(Order.client_id, Order.side, Order.quantity)
            .join(Batch, Batch.id == Order.batch_id)
            .where(Batch.kind == "stop")
        ).all()
    assert sorted(exits) == sorted([(alpha.id, "SELL", 10), (beta.id, "SELL", 4)])
    desk.run_worker()
    with app.app_context():
        sells = Counter(db.session.execute(sa.select(PaperOrder.tag).where(PaperOrder.side == "SELL")).scalars())
    assert len(sells) == 2 and set(sells.values()) == {1}


def test_the_chip_shows_on_the_filled_position(app, client, trader, desk):
    alpha, _ = trader
    assert client.post("/orders/new", data=ticket(desk, trader, stop="1540.00", target="1600.00")).status_code == 302
    desk.run_worker()
    page = client.get(f"/clients/{alpha.id}").data.decode()
    row = page.split('id="positions-', 1)[1].split("</tbody>", 1)[0]
    assert re.search(r'title="Stop-loss">SL ₹?1,540\.00<', row) and re.search(r'title="Target">TGT ₹?1,600\.00<', row)


def test_a_ticket_against_the_position_leaves_the_positions_rule_armed(app, client, trader, desk):
    """Long with a stop; a SELL ticket with its own stop: the long keeps its stop until the sale is
    done, and then the rule that no longer matches the position (the SELL's: still long) is cancelled."""
    alpha, _ = trader
    assert client.post("/orders/new", data=ticket(desk, [alpha], stop="1540.00")).status_code == 302
    desk.run_worker()  # long 10
    again = "00000000-0000-4000-8000-0000000000a3"
    sell = ticket(desk, [alpha], qty="4", action="SELL", stop="1560.00", ticket_id=again)
    assert client.post("/orders/new", data=sell).status_code == 302
    assert sorted((r.direction, r.state) for r in rules(app)) == [(-1, ARMED), (1, ARMED)]
    desk.run_worker()  # long 6
    with app.app_context():
        stops.cancel_flat(get_redis())  # the feed's reload
    assert sorted((r.direction, r.state) for r in rules(app)) == [(-1, CANCELLED), (1, ARMED)]

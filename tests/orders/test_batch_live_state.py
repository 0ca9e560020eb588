"""The batch page's header and counts follow its children (issue 15): over the socket, with every
child's row, the counts, "updating…" and the price are sent again; a cancelled order says who
cancelled it, not the broker's words for "on request"."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from webapp.extensions import db
from webapp.feed import fragments
from webapp.feed.hub import Subscriber
from webapp.models import Batch, Order
from webapp.trading import engine, exits, states, sync
from webapp.trading.order_actions import cancelled_reason


def child_ids(app, batch_id: int) -> list[Order]:
    with app.app_context():
        return list(db.session.execute(sa.select(Order).where(Order.batch_id == batch_id).order_by(Order.id)).scalars())


def batch_socket(batch_id: int, role: str = "admin", client_ids: frozenset[int] = frozenset()) -> Subscriber:
    return Subscriber(id=1, user_id=1, role=role, client_ids=client_ids, page="batch", target=batch_id)


def pushed(app, order: Order, sub: Subscriber) -> str:
    event = {"event": "order.updated", "order_id": order.id, "client_id": order.client_id, "batch_id": order.batch_id}
    with app.test_request_context():
        return "".join(html for _, html in fragments.for_event(event, [sub]))


def summary_of(html: str, batch_id: int) -> str:
    start = html.index(f'id="batch-{batch_id}-summary"')
    return html[start : html.index("</p>", start)]


def test_the_last_child_final_sends_final_counts_without_updating(app, desk, factory):
    clients = [desk.paper_client(name) for name in ("A", "B", "C")]
    batch = factory.batch(factory.user("root", role="admin"), clients, desk.instrument)
    first = child_ids(app, batch.id)[0]
    assert "updating…" in summary_of(pushed(app, first, batch_socket(batch.id)), batch.id)  # 3 NEW: in flight
    with app.app_context():
        engine.send_batch(batch.id, desk.context())
        for client in clients:
            sync.sync_client(client.id, desk.context())
    last = child_ids(app, batch.id)[-1]
    counts = summary_of(pushed(app, last, batch_socket(batch.id)), batch.id)
    assert "COMPLETE 3" in counts and "NEW" not in counts and "updating…" not in counts


def test_counts_are_of_the_children_the_socket_may_see(app, desk, factory):
    mine, other = desk.paper_client("Mine"), desk.paper_client("Other")
    batch = factory.batch(factory.user("root", role="admin"), [mine, other], desk.instrument)
    order = next(o for o in child_ids(app, batch.id) if o.client_id == mine.id)
    html = pushed(app, order, batch_socket(batch.id, role="trader", client_ids=frozenset({mine.id})))
    assert "NEW 1" in summary_of(html, batch.id)


def test_a_modify_moves_the_header_price_on_the_page_and_over_the_socket(app, client, auth, desk, factory):
    paper = desk.paper_client("P")
    factory.user("tara", role="trader", clients=[paper])
    batch = factory.batch(
        factory.user("root", role="admin"), [paper], desk.instrument, order_type="LIMIT", price=Decimal("1400.00")
    )
    with app.app_context():
        found = db.session.get(Batch, batch.id)
        found.order_type, found.price = "LIMIT", Decimal("1400.00")
        db.session.commit()
        engine.send_batch(batch.id, desk.context())
        sync.sync_client(paper.id, desk.context())
    auth.login("tara")
    assert "LIMIT @ 1,400.00" in client.get(f"/orders/batches/{batch.id}").get_data(as_text=True)
    assert client.post(f"/orders/batches/{batch.id}/modify", data={"price": "1410.00"}).status_code == 302
    desk.run_worker()
    page = client.get(f"/orders/batches/{batch.id}").get_data(as_text=True)
    head = page[page.index(f'id="batch-{batch.id}-head"') :]
    assert head.index("@ 1,410.00") < head.index("</span>") and "modified from 1,400.00" in head
    live = pushed(app, child_ids(app, batch.id)[0], batch_socket(batch.id))
    assert f'id="batch-{batch.id}-head" hx-swap-oob="true"' in live and "@ 1,410.00" in live
    polled = client.get(f"/orders/batches/{batch.id}/children", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert f'id="batch-{batch.id}-head" hx-swap-oob="true"' in polled  # the socket down: the poll brings it


@pytest.fixture
def resting(app, desk, factory):
    """A paper client with an open LIMIT buy far below the market."""
    paper = desk.paper_client("R")
    batch = factory.batch(
        factory.user("root", role="admin"), [paper], desk.instrument, order_type="LIMIT", price=Decimal("1400.00")
    )
    with app.app_context():
        engine.send_batch(batch.id, desk.context())
        sync.sync_client(paper.id, desk.context())
    (order,) = child_ids(app, batch.id)
    assert order.status == states.OPEN
    return paper, batch


def test_a_traders_cancel_names_the_trader(app, client, auth, desk, factory, resting):
    paper, batch = resting
    factory.user("tara", role="trader", clients=[paper])
    auth.login("tara")
    assert client.post(f"/orders/batches/{batch.id}/cancel").status_code == 302
    desk.run_worker()
    (order,) = child_ids(app, batch.id)
    assert (order.status, order.reason) == (states.CANCELLED, "Cancelled by tara")


@pytest.mark.parametrize(
    ("person", "said"), [(True, "Cancelled by the kill switch"), (False, "Cancelled by a loss breaker")]
)
def test_a_kill_switch_cancel_names_the_kill_switch(app, desk, factory, resting, person, said):
    paper, batch = resting
    root = factory.user("boss", role="admin")
    with app.app_context():
        user = db.session.get(type(root), root.id) if person else None
        exits.flatten(user, [db.session.get(type(paper), paper.id)], None)
        db.session.commit()
    desk.run_worker()
    (order,) = child_ids(app, batch.id)
    assert (order.status, order.reason) == (states.CANCELLED, said)


def test_the_brokers_own_cancel_keeps_its_message():
    assert cancelled_reason("Order cancelled: IOC not filled") is None
    assert cancelled_reason("Cancel requested by the day-end square-off") == "Cancelled by the day-end square-off"


def test_the_day_end_square_off_names_itself(app, desk, resting):
    from webapp.automation.dayend import _cancel_open_mis

    paper, batch = resting
    with app.app_context():
        assert len(_cancel_open_mis([paper.id])) == 1
    desk.run_worker()
    (order,) = child_ids(app, batch.id)
    assert (order.status, order.reason) == (states.CANCELLED, "Cancelled by the day-end square-off")

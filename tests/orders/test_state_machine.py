"""The child order state machine (webapp/trading/states.py): random sequences of events driven
through the real writers against the real database — a one-child write (the engine's answers,
cancel / modify / convert), a bulk write (the batch's answers, sync), the claim and the unsent
deadline — never leave a child outside the states reachable from NEW, never move a final child,
and a refused transition leaves the row exactly as it was, logged."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webapp.extensions import db
from webapp.models import Order
from webapp.trading import engine, states, sync, unsent
from webapp.trading.children import write_child, write_children

ROW = (Order.status, Order.reason, Order.attempts, Order.filled_quantity, Order.broker_order_id, Order.updated_at)

events = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.sampled_from(states.ALL)),  # one child, through write_child
        st.tuples(st.just("write_many"), st.sampled_from(states.ALL)),  # the bulk UPDATE
        st.tuples(st.just("claim"), st.just("")),  # NEW → SUBMITTING
        st.tuples(st.just("expire"), st.just("")),  # unsent: NEW → FAILED
    ),
    max_size=12,
)


def reachable_from_new() -> set[str]:
    seen, todo = {states.NEW}, [states.NEW]
    while todo:
        for to in states.TRANSITIONS[todo.pop()] - seen:
            seen.add(to)
            todo.append(to)
    return seen


def row(order_id: int):
    found = db.session.execute(sa.select(*ROW).where(Order.id == order_id)).one()
    db.session.commit()
    return tuple(found)


def apply(event: tuple[str, str], order_id: int, ctx) -> None:
    kind, to = event
    if kind == "write":
        write_child(db.session.get(Order, order_id), to, ctx, reason=f"to {to}")
    elif kind == "write_many":
        write_children(to, [{"id": order_id, "reason": f"to {to} (bulk)"}])
        db.session.commit()
    elif kind == "claim":
        engine._claim([order_id], ctx)
    else:
        unsent.fail_unsent(unsent.NOT_SENT_IN_TIME, order_ids=[order_id])


@pytest.fixture
def child(app, desk, factory):
    batch = factory.batch(factory.user("root", role="admin"), [desk.paper_client("P1")], desk.instrument)
    with app.app_context():
        return db.session.execute(sa.select(Order.id).where(Order.batch_id == batch.id)).scalar_one()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=events)
def test_random_events_keep_a_child_inside_the_state_machine(app, desk, child, caplog, sequence):
    caplog.set_level(logging.WARNING, logger="webapp.trading.states")
    reachable = reachable_from_new()
    with app.app_context():
        db.session.execute(sa.update(Order).where(Order.id == child).values(status=states.NEW, reason="", attempts=0))
        db.session.commit()
        ctx = desk.context()
        for event in sequence:
            before = row(child)
            caplog.clear()
            apply(event, child, ctx)
            after = row(child)
            kind, to = event
            wanted = states.SUBMITTING if kind == "claim" else states.FAILED if kind == "expire" else to
            assert after[0] in reachable
            if before[0] in states.FINAL:
                assert after[0] == before[0]  # final stays final (its own state may be written again: a fill count)
            if kind in ("write", "write_many"):
                if states.allowed(before[0], to):
                    assert after[0] == to
                else:
                    assert after == before  # refused: the row unchanged...
                    assert f"order={child} transition=refused from={before[0]} to={to}" in caplog.text  # ...and logged
            elif before[0] == states.NEW:
                assert after[0] == wanted
            else:
                assert after == before  # the claim and the deadline take NEW children only


# every transition the desk's code makes today (engine, sync, unsent, cancel / modify / convert)
MADE_TODAY = [
    (states.NEW, states.SUBMITTING),
    (states.NEW, states.FAILED),
    (states.NEW, states.NEW),
    *[(states.SUBMITTING, to) for to in (states.PLACED, states.REJECTED, states.FAILED, states.NEW, states.UNKNOWN)],
    *[(s, to) for s in (states.SUBMITTING, states.UNKNOWN) for to in states.FROM_BROKER.values()],
    (states.UNKNOWN, states.UNKNOWN),
    (states.UNKNOWN, states.NEW),
    (states.UNKNOWN, states.FAILED),
    *[
        (s, to)
        for s in states.AT_BROKER
        for to in (states.OPEN, states.PARTIAL, states.COMPLETE, states.CANCELLED, states.REJECTED)
    ],
    *[(s, s) for s in states.AT_BROKER],  # a new reason (cancel sent, price changed) or fill count
]


@pytest.mark.parametrize("current,new", MADE_TODAY)
def test_every_transition_the_desk_makes_is_legal(current, new):
    assert states.allowed(current, new)


@pytest.mark.parametrize("final", sorted(states.FINAL))
def test_a_final_child_moves_nowhere(final):
    assert not any(states.allowed(final, to) for to in states.ALL if to != final)
    assert not states.allowed(final, states.OPEN)  # a stale broker read showing a COMPLETE child OPEN


def test_a_stale_broker_read_does_not_reopen_a_complete_child(app, desk, factory, caplog):
    """The paper broker shows a resting child OPEN; the desk already has it COMPLETE (a later read
    saw it fill): the sync refuses COMPLETE → OPEN, logs it, and leaves the row as it was."""
    client = desk.paper_client("P")
    resting = factory.batch(factory.user("u"), [client], desk.instrument, order_type="LIMIT", price=Decimal("1394.00"))
    with app.app_context():
        engine.send_batch(resting.id, desk.context())  # a buy far below the market rests
        sync.sync_client(client.id, desk.context())
        order_id, status = db.session.execute(
            sa.select(Order.id, Order.status).where(Order.batch_id == resting.id)
        ).one()
        assert status == states.OPEN
        db.session.execute(
            sa.update(Order)
            .where(Order.id == order_id)
            .values(status=states.COMPLETE, filled_quantity=1, reason="filled")
        )
        db.session.commit()
        before = row(order_id)
        caplog.set_level(logging.WARNING, logger="webapp.trading.states")
        assert sync.sync_client(client.id, desk.context())
        assert row(order_id) == before
    assert f"order={order_id} transition=refused from=COMPLETE to=OPEN" in caplog.text

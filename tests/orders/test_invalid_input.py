"""What the engine does with the one OrderRequest check's InvalidInput: the child is REJECTED with
the check's message, never sent and never retried (the same as a broker's Rejected: in both cases
nothing was placed, and sending the same request again cannot help)."""

import sqlalchemy as sa

from tests.brokers.test_registry import ToyBroker
from webapp import brokers
from webapp.extensions import db
from webapp.models import Order
from webapp.trading import engine, states


class ShortTagToy(ToyBroker):
    tag_max_length = 5  # shorter than the desk's 10-character tags: every request is malformed here


def test_a_request_the_adapter_finds_malformed_rejects_the_child_unsent(app, desk, factory, monkeypatch):
    monkeypatch.setitem(brokers._registry, "toy", ShortTagToy)
    ShortTagToy.placed = []
    app.config.update(TOY_URL="http://toy.invalid")
    trader = factory.user("tara", role="trader")
    client = factory.client("Toy client", broker="toy", code="TOY01")
    batch = factory.batch(trader, [client], desk.instrument, quantity=3)
    with app.app_context():
        assert engine.send_batch(batch.id, desk.context()) == {states.REJECTED: 1}
        child = db.session.execute(sa.select(Order).where(Order.batch_id == batch.id)).scalar_one()
        assert (child.status, child.reason) == (
            states.REJECTED,
            "Toy Securities order tags are 1 to 5 letters and digits",
        )
    assert ShortTagToy.placed == []

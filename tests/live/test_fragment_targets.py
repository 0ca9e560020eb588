"""Every fragment the socket sends to a page targets an element that page has: each page that
subscribes to /ws/feed is rendered, its ids collected; then every kind of fragment
webapp/feed/fragments.py makes (the snapshot, an order's update, a P&L update, a tick) is generated
for an entity on that page, and each `hx-swap-oob` target must be one of those ids. (A target the
page lacks is silently dropped by htmx: the client page's recent orders once never moved.)"""

from __future__ import annotations

from decimal import Decimal
from html.parser import HTMLParser

import pytest
import sqlalchemy as sa

from webapp.brokers.base import Quote
from webapp.extensions import db, get_redis
from webapp.feed import fragments
from webapp.feed.hub import Subscriber
from webapp.marketdata.store import TICKS_CHANNEL, write_quotes
from webapp.models import Order
from webapp.trading import engine, sync


class _Ids(HTMLParser):
    """The ids of a document, and the oob targets of a fragment (`true` → its own id,
    `strategy:#id` → that id). <template> content is parsed like any other markup here."""

    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()
        self.targets: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        oob = attrs.get("hx-swap-oob")
        if oob is not None:
            self.targets.append(attrs["id"] if oob == "true" or ":" not in oob else oob.split(":", 1)[1].lstrip("#"))

    handle_startendtag = handle_starttag


def parse(html: str) -> _Ids:
    parser = _Ids()
    parser.feed(html)
    return parser


@pytest.fixture
def booked(app, desk, factory):
    """A paper client with a filled order (so a position) and an open one, a batch page's worth."""
    client = desk.paper_client("Asha")
    root = factory.user("root", role="admin")
    filled = factory.batch(root, [client], desk.instrument, quantity=4)
    resting = factory.batch(root, [client], desk.instrument, quantity=2, order_type="LIMIT", price=Decimal("1400.00"))
    with app.app_context():
        for batch in (filled, resting):
            engine.send_batch(batch.id, desk.context())
        sync.sync_client(client.id, desk.context())
    return client, resting


def pages(client, batch, instrument):
    """(url, the subscriber the page's ws-connect opens) for every page with a live socket."""
    token = instrument.instrument_token
    common = dict(id=1, user_id=1, role="admin", client_ids=frozenset())
    return [
        (f"/?clients={client.id}", Subscriber(page="desk", target=None, shown=frozenset({client.id}), **common)),
        (f"/clients/{client.id}", Subscriber(page="client", target=client.id, **common)),
        (f"/orders/batches/{batch.id}", Subscriber(page="batch", target=batch.id, **common)),
        (
            f"/instruments/{instrument.id}",
            Subscriber(page="instrument", target=instrument.id, tokens={token}, **common),
        ),
        ("/instruments/watchlist", Subscriber(page="watchlist", target=None, tokens={token}, **common)),
    ]


def test_every_fragment_targets_an_id_its_page_has(app, client, auth, desk, booked):
    customer, batch = booked
    auth.login("root")
    assert client.post(f"/instruments/{desk.instrument.id}/watch").status_code == 302  # the watchlist shows it
    subscribed = pages(customer, batch, desk.instrument)
    page_ids = {}
    for url, _ in subscribed:
        response = client.get(url)
        assert response.status_code == 200, url
        page_ids[url] = parse(response.get_data(as_text=True)).ids
    with app.test_request_context():
        order = db.session.execute(sa.select(Order).where(Order.batch_id == batch.id)).scalar_one()
        events = [
            {"event": "order.updated", "order_id": order.id, "client_id": customer.id, "batch_id": batch.id},
            {"event": "pnl.updated", "clients": [customer.id]},
            {"event": "position.updated", "client_id": customer.id},
        ]
        tick = _published_tick(desk.instrument.instrument_token)
        checked = 0
        for url, sub in subscribed:
            sent = [fragments.snapshot(sub)]
            sent += [html for event in events for _, html in fragments.for_event(event, [sub])]
            sent += [html for _, html in fragments.for_ticks(tick, [sub])]
            for html in sent:
                for target in parse(html).targets:
                    assert target in page_ids[url], f"{url} gets a fragment for #{target}, which it does not have"
                    checked += 1
    assert checked > 10  # the loop above met real fragments, not an empty list


def _published_tick(token: int):
    """A tick message as the hub receives it from Redis (the feed's own encoding)."""
    redis = get_redis()
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(TICKS_CHANNEL)
    pubsub.get_message(timeout=1)
    write_quotes(redis, {token: Quote("NSE", "INFY", Decimal("1551.00"))})
    message = pubsub.get_message(timeout=5)
    pubsub.close()
    assert message is not None
    return message["data"]


def test_the_client_page_and_the_batch_page_show_an_order_under_one_id(app, client, auth, booked):
    customer, batch = booked
    auth.login("root")
    with app.app_context():
        order_id = db.session.execute(sa.select(Order.id).where(Order.batch_id == batch.id)).scalar_one()
    for url in (f"/clients/{customer.id}", f"/orders/batches/{batch.id}", "/orders/"):
        assert f"order-{order_id}" in parse(client.get(url).get_data(as_text=True)).ids, url

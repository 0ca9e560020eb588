"""GET /api/v1/stream/orders over a real server (server-sent events; the Flask test client does not
stream) with the real Redis and the hub: a granted client's children are sent, a non-granted one's
never (even when an event names a granted client); batch mode sends the current state first and
ends on acknowledgement; max_seconds ends it; a revoked key or a deactivated user ends it; at most
four streams per key; the refusals are JSON."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import requests
import sqlalchemy as sa

from tests.live.test_ws import server  # noqa: F401  (a real threaded server on a free port)
from tests.orders.conftest import desk  # noqa: F401  (an instrument and paper clients)
from webapp import apikeys as keys
from webapp.api.stream import MAX_STREAMS_PER_KEY
from webapp.events import publish
from webapp.extensions import db, get_redis
from webapp.feed import hub as hub_module
from webapp.feed.hub import API_PAGE, Subscriber, for_streams
from webapp.models import ApiKey, Client, Order, User
from webapp.trading import engine, states

PATH = "/api/v1/stream/orders"


class Sse:
    """A server-sent events client over `requests` (stream=True), as docs/api.md suggests."""

    def __init__(self, host: str, key: str | None, **params):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.response = requests.get(
            f"http://{host}{PATH}", params=params, headers=headers, stream=True, timeout=(5, 30)
        )
        self.lines = self.response.iter_lines(chunk_size=None, decode_unicode=True)

    def next(self) -> dict | None:
        """The next event ({"id", "event", "data"}) or comment ({"comment"}); None when the stream ended."""
        event: dict = {}
        for line in self.lines:
            if line == "":
                if event:
                    return event
                continue
            if line.startswith(":"):
                return {"comment": line[1:].strip()}
            name, _, value = line.partition(": ")
            event[name] = json.loads(value) if name == "data" else value
        return event or None

    def events(self, until, limit: int = 500) -> list[dict]:
        """Events (comments skipped) up to and including the first for which until(event) holds."""
        seen = []
        for _ in range(limit):
            event = self.next()
            if event is None:
                raise AssertionError(f"the stream ended first; got {seen!r}")
            if "comment" in event:
                continue
            seen.append(event)
            if until(event):
                return seen
        raise AssertionError(f"not reached in {limit} events: {seen!r}")

    def rest(self) -> list[dict]:
        """Every event until the stream ends."""
        seen = []
        while (event := self.next()) is not None:
            if "comment" not in event:
                seen.append(event)
        return seen

    def opened(self) -> Sse:
        assert self.response.status_code == 200, self.response.text
        assert self.response.headers["Content-Type"].startswith("text/event-stream")
        assert self.next() == {"comment": "connected"}  # registered with the hub, which is subscribed
        return self

    def close(self) -> None:
        self.response.close()


@pytest.fixture
def streams():
    opened: list[Sse] = []

    def open_(host, key, **params) -> Sse:
        opened.append(Sse(host, key, **params))
        return opened[-1]

    yield open_
    for stream in opened:
        stream.close()


def children(app, batch_id: int) -> dict[int, int]:
    """client id → child id of the batch."""
    with app.app_context():
        rows = db.session.execute(sa.select(Order.client_id, Order.id).where(Order.batch_id == batch_id)).all()
        return dict(rows)


def send(app, desk, batch_id: int) -> None:
    with app.app_context():
        engine.send_batch(batch_id, desk.context())


def acknowledged(child_id: int):
    return lambda e: (
        e["event"] == "order" and e["data"]["child_id"] == child_id and e["data"]["status"] not in states.IN_FLIGHT
    )


@pytest.fixture
def two(desk, factory):
    """tara (a trader) holds Mine; Theirs is someone else's; root (an admin) makes the batches."""
    mine, theirs = desk.paper_client("Mine"), desk.paper_client("Theirs")
    tara = factory.user("tara", clients=[mine])
    root = factory.user("root", role="admin")
    return mine, theirs, tara, root


def test_a_granted_clients_updates_arrive_and_never_a_non_granted_ones(
    app, server, desk, factory, make_key, two, streams
):
    mine, theirs, tara, root = two
    stream = streams(server, make_key(tara), max_seconds=60).opened()
    both = factory.batch(root, [mine, theirs], desk.instrument)
    send(app, desk, both.id)
    first = stream.events(acknowledged(children(app, both.id)[mine.id]))
    only_theirs = factory.batch(root, [theirs], desk.instrument)
    send(app, desk, only_theirs.id)
    then_mine = factory.batch(root, [mine], desk.instrument)
    send(app, desk, then_mine.id)  # published after theirs on the one channel: theirs would have come first
    second = stream.events(acknowledged(children(app, then_mine.id)[mine.id]))
    sent = first + second
    assert {e["data"]["client_id"] for e in sent} == {mine.id}
    assert {e["data"]["batch_id"] for e in sent} == {both.id, then_mine.id}
    ids = [int(e["id"]) for e in sent]
    assert ids == sorted(set(ids))  # each event its own id, in order
    placed = sent[-1]["data"]
    assert placed["broker_order_id"] and placed["status"] in states.AT_BROKER | states.FINAL
    assert placed["at"].endswith("Z") and set(placed) == {
        "child_id",
        "batch_id",
        "client_id",
        "status",
        "filled_quantity",
        "average_price",
        "broker_order_id",
        "reason",
        "at",
    }


def test_the_data_is_the_database_row_not_the_event(app, server, desk, factory, make_key, two, streams):
    """A thin (or wrong) event only says which row to read: the row's state is sent, and a row of a
    client the key may not see is never sent, even when the event names a granted client."""
    mine, theirs, tara, root = two
    batch = factory.batch(root, [theirs, mine], desk.instrument)  # theirs first: read before mine, if read
    ids = children(app, batch.id)
    stream = streams(server, make_key(tara), max_seconds=60).opened()
    with app.app_context():
        for order_id in (ids[theirs.id], ids[mine.id]):
            publish(get_redis(), "order.updated", order_id=order_id, batch_id=batch.id, client_id=mine.id, status="X")
    sent = stream.events(lambda e: e["event"] == "order" and e["data"]["child_id"] == ids[mine.id])
    assert len(sent) == 1
    assert sent[0]["data"]["status"] == "NEW"  # what the database holds, not the event's word
    assert sent[0]["data"]["average_price"] is None


def test_the_hub_gives_a_stream_only_its_batch_and_its_clients_events():
    """The hub's own filter (the stream checks each row again when it reads it)."""
    every = Subscriber(id=1, user_id=1, role="trader", client_ids=frozenset({5}), page=API_PAGE, target=None, key_id=1)
    one_batch = Subscriber(id=2, user_id=1, role="trader", client_ids=frozenset({5}), page=API_PAGE, target=9, key_id=1)
    admin = Subscriber(id=3, user_id=2, role="admin", client_ids=frozenset(), page=API_PAGE, target=None, key_id=2)

    def to(**event) -> set[int]:
        return {s.id for s, _ in for_streams({"event": "order.updated", **event}, [every, one_batch, admin])}

    assert to(order_id=1, batch_id=9, client_id=5) == {1, 2, 3}
    assert to(order_id=1, batch_id=8, client_id=5) == {1, 3}
    assert to(order_id=1, batch_id=9, client_id=6) == {3}  # not granted: only the admin's
    assert to(order_id=1, batch_id=9, client_id=None) == set()
    assert to(order_id="1", batch_id=9, client_id=5) == set()  # malformed
    assert for_streams({"event": "pnl.updated", "clients": [5]}, [every, admin]) == []


def test_batch_mode_sends_the_current_state_first_and_ends_once_acknowledged(
    app, server, desk, factory, make_key, two, streams
):
    mine, theirs, tara, root = two
    batch = factory.batch(root, [mine, theirs], desk.instrument, quantity=3)
    ids = children(app, batch.id)
    stream = streams(server, make_key(tara), batch_id=batch.id, max_seconds=60).opened()
    current = stream.events(lambda e: True)[0]
    assert current["event"] == "order"
    assert current["data"]["child_id"] == ids[mine.id] and current["data"]["status"] == "NEW"
    send(app, desk, batch.id)
    rest = stream.rest()
    assert rest[-1]["event"] == "end" and rest[-1]["data"] == {"reason": "acknowledged"}
    updates = [e["data"] for e in rest[:-1]]
    assert updates and {u["child_id"] for u in updates} == {ids[mine.id]}
    assert updates[-1]["status"] not in states.IN_FLIGHT
    assert stream.next() is None  # the server ended it


def test_batch_mode_after_the_send_misses_nothing(app, server, desk, factory, make_key, two, streams):
    mine, theirs, tara, root = two
    batch = factory.batch(root, [mine, theirs], desk.instrument)
    send(app, desk, batch.id)
    with app.app_context():  # a filled child: its average price is a decimal string
        child = db.session.get(Order, children(app, batch.id)[mine.id])
        child.status, child.filled_quantity, child.average_price = states.COMPLETE, 1, Decimal("1548.2500")
        db.session.commit()
    events = streams(server, make_key(tara), batch_id=batch.id).opened().rest()
    assert [e["event"] for e in events] == ["order", "end"]
    assert events[0]["data"]["status"] == "COMPLETE" and events[0]["data"]["average_price"] == "1548.2500"
    assert events[0]["data"]["client_id"] == mine.id


def test_max_seconds_ends_the_stream(app, server, factory, make_key, streams):
    stream = streams(server, make_key(factory.user("tara")), max_seconds=1).opened()
    assert stream.rest() == [{"id": "1", "event": "end", "data": {"reason": "max_seconds"}}]


def test_a_viewer_key_may_stream(app, server, desk, factory, make_key, streams):
    mine = desk.paper_client("Mine")
    vic = factory.user("vic", role="viewer", clients=[mine])
    batch = factory.batch(factory.user("root", role="admin"), [mine], desk.instrument)
    stream = streams(server, make_key(vic), batch_id=batch.id, max_seconds=60).opened()
    assert stream.events(lambda e: True)[0]["data"]["status"] == "NEW"


def test_a_revoked_key_ends_at_the_hubs_recheck(app, server, factory, make_key, streams):
    tara = factory.user("tara")
    key = make_key(tara)
    stream = streams(server, key, max_seconds=20).opened()  # a failure ends at max_seconds
    with app.app_context():
        row = db.session.execute(sa.select(ApiKey)).scalar_one()
        keys.revoke_key(row, by=db.session.get(User, tara.id))
        db.session.commit()
    app.extensions["fanout_hub"].recheck()  # what the hub does every RECHECK_SECONDS
    assert stream.rest()[-1]["data"] == {"reason": "key revoked or expired"}
    assert (
        requests.get(f"http://{server}{PATH}", headers={"Authorization": f"Bearer {key}"}, timeout=5).status_code == 401
    )


def test_a_deactivated_user_ends_at_once(app, server, factory, make_key, streams, monkeypatch):
    from webapp.auth.sessions import end_sessions

    monkeypatch.setattr(hub_module, "RECHECK_SECONDS", 3600.0)  # the event ends it, not the periodic re-check
    tara = factory.user("tara")
    stream = streams(server, make_key(tara), max_seconds=20).opened()  # a failure ends at max_seconds
    assert app.extensions["fanout_hub"].subscribed.wait(5)
    with app.app_context():
        user = db.session.get(User, tara.id)
        user.active = False
        end_sessions(user)  # as the admin page does: the event goes out on commit
        db.session.commit()
    assert stream.rest()[-1]["data"] == {"reason": "deactivated"}


def test_a_key_holds_at_most_four_streams(app, server, desk, factory, make_key, two, streams):
    mine, _, tara, root = two
    batch = factory.batch(root, [mine], desk.instrument)
    key = make_key(tara, name="one")
    held = [streams(server, key, batch_id=batch.id, max_seconds=120).opened() for _ in range(MAX_STREAMS_PER_KEY)]
    refused = streams(server, key)
    assert refused.response.status_code == 429
    assert refused.response.json()["error"]["code"] == "too_many_streams"
    assert int(refused.response.headers["Retry-After"]) > 0
    streams(server, make_key(tara, name="two"), max_seconds=1).opened()  # per key: another key may
    send(app, desk, batch.id)
    for stream in held:  # each ends once the child is acknowledged, and gives its place back
        assert stream.rest()[-1]["data"] == {"reason": "acknowledged"}
    streams(server, key, max_seconds=1).opened()


def test_refusals_are_json(app, client, desk, factory, make_key, api_as):
    mine, theirs = desk.paper_client("Mine"), desk.paper_client("Theirs")
    tara = factory.user("tara", clients=[mine])
    reply = client.get(PATH)
    assert reply.status_code == 401 and reply.get_json()["error"]["code"] == "unauthorized"
    api = api_as(tara)
    for query, field in (
        ("max_seconds=0", "max_seconds"),
        ("max_seconds=3601", "max_seconds"),
        ("max_seconds=soon", "max_seconds"),
        ("batch_id=0", "batch_id"),
        ("batch_id=1e9999", "batch_id"),
        ("follow=all", "follow"),
    ):
        reply = api.get(f"{PATH}?{query}")
        assert reply.status_code == 422, query
        assert field in reply.get_json()["error"]["fields"], query
    theirs_batch = factory.batch(factory.user("root", role="admin"), [theirs], desk.instrument)
    for batch_id in (theirs_batch.id, theirs_batch.id + 1000):  # not theirs to see, or none at all: the same 404
        reply = api.get(f"{PATH}?batch_id={batch_id}")
        assert reply.status_code == 404 and reply.get_json()["error"]["code"] == "not_found"
    trade_only = api_as(tara, scopes=["trade"])
    reply = trade_only.get(PATH)
    assert reply.status_code == 403 and reply.get_json()["error"]["code"] == "scope"
    head = api.client.head(PATH, headers={"Authorization": f"Bearer {api.key}"})
    assert head.status_code == 200 and head.data == b""
    head.close()  # as a server does once it has answered
    with app.app_context():
        assert not list(get_redis().scan_iter("fanout:api-streams:*"))  # neither these nor the HEAD kept a place


def test_documented_as_an_event_stream(client):
    operation = client.get("/api/v1/openapi.json").get_json()["paths"][PATH]["get"]
    assert operation["summary"].startswith("Follow your clients' order updates")
    assert "text/event-stream" in operation["responses"]["200"]["content"]
    assert {"401", "404", "422", "429"} <= set(operation["responses"])
    assert {p["name"] for p in operation["parameters"]} == {"batch_id", "max_seconds"}
    assert "event: order" in operation["description"] and "keepalive" in operation["description"]


def test_a_removed_grant_stops_that_clients_updates_at_once(
    app, server, desk, factory, make_key, two, streams, monkeypatch
):
    from webapp.auth.sessions import ACCESS_CHANGED, end_sessions

    monkeypatch.setattr(hub_module, "RECHECK_SECONDS", 3600.0)  # the event re-reads the grants
    mine, theirs, tara, root = two
    other = desk.paper_client("Other")
    with app.app_context():
        user = db.session.get(User, tara.id)
        user.clients = [db.session.get(Client, c.id) for c in (mine, other)]
        db.session.commit()
    stream = streams(server, make_key(tara), max_seconds=60).opened()
    assert app.extensions["fanout_hub"].subscribed.wait(5)
    with app.app_context():
        user = db.session.get(User, tara.id)
        user.clients = [db.session.get(Client, other.id)]
        end_sessions(user, ACCESS_CHANGED)  # as the admin page does when grants change
        db.session.commit()
    first = factory.batch(root, [mine], desk.instrument)
    send(app, desk, first.id)
    then = factory.batch(root, [other], desk.instrument)
    send(app, desk, then.id)  # after mine's on the one channel
    sent = stream.events(acknowledged(children(app, then.id)[other.id]))
    assert {e["data"]["client_id"] for e in sent} == {other.id}

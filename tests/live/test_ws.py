"""/ws/feed over a real socket: refused without a login or from another site; a snapshot on
connect; events become fragments only for the clients each user may see."""

import threading
import time
from decimal import Decimal

import pytest
import requests
import simple_websocket
from werkzeug.serving import make_server

from webapp.brokers.base import Quote
from webapp.events import publish
from webapp.extensions import get_redis
from webapp.marketdata.store import write_quotes
from webapp.trading import engine, sync
from webapp.trading.pnl import mark_to_market


@pytest.fixture
def server(app):
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()
    hub = app.extensions.get("fanout_hub")
    if hub is not None:
        hub.stop()


UA = {"User-Agent": "fanout-test"}  # Flask-Login's strong session protection binds the session to it


def session_cookie(host: str, username: str) -> str:
    with requests.Session() as http:
        http.headers.update(UA)
        response = http.post(
            f"http://{host}/login", data={"username": username, "password": "Correct-horse-42"}, allow_redirects=False
        )
        assert response.status_code == 302
        return "; ".join(f"{c.name}={c.value}" for c in http.cookies)


def connect(host: str, cookie: str | None, page: str = "desk", origin: str | None = None, **params):
    query = "&".join([f"page={page}"] + [f"{k}={v}" for k, v in params.items()])
    headers = {"Origin": origin or f"http://{host}", **UA}
    if cookie:
        headers["Cookie"] = cookie
    return simple_websocket.Client.connect(f"ws://{host}/ws/feed?{query}", headers=headers)


def receive_until(ws, needle: str, seconds: float = 5.0) -> str:
    deadline = time.monotonic() + seconds
    seen = []
    while time.monotonic() < deadline:
        message = ws.receive(timeout=0.2)
        if message:
            seen.append(message)
            if needle in message:
                return message
    raise AssertionError(f"{needle!r} not received; got {seen!r}")


def handshake(host: str, cookie: str | None, origin: str) -> int:
    """The HTTP status of an upgrade request (a refused socket never upgrades)."""
    headers = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Origin": origin,
        **UA,
    }
    if cookie:
        headers["Cookie"] = cookie
    return requests.get(
        f"http://{host}/ws/feed?page=desk", headers=headers, allow_redirects=False, timeout=5
    ).status_code


def publish_until(ws, publish_once, needle: str, tries: int = 15) -> str:
    """The hub subscribes to Redis on its own thread just after the socket opens; an event sent
    before that is lost (pub/sub has no replay: the snapshot covers it). Send again until seen."""
    for _ in range(tries):
        publish_once()
        try:
            return receive_until(ws, needle, seconds=0.4)
        except AssertionError:
            continue
    raise AssertionError(f"{needle!r} never arrived")


def test_refused_without_login_or_from_another_site(server, factory):
    assert handshake(server, None, f"http://{server}") == 302
    factory.user("tara")
    cookie = session_cookie(server, "tara")
    assert handshake(server, cookie, "http://evil.example") == 403
    assert handshake(server, cookie, f"https://{server}") == 403  # this host, but another scheme: another site
    ws = connect(server, cookie)  # the same user from the desk's own page is let in
    try:
        receive_until(ws, 'id="feed-state"')
    finally:
        ws.close()


def test_snapshot_then_live_fragments_only_for_granted_clients(app, server, desk, factory):
    mine, theirs = desk.paper_client("Mine"), desk.paper_client("Theirs")
    root = factory.user("root", role="admin")
    for client in (mine, theirs):
        batch = factory.batch(root, [client], desk.instrument, quantity=4)
        with app.app_context():
            engine.send_batch(batch.id, desk.context())
            sync.sync_client(client.id, desk.context())
    factory.user("tara", clients=[mine])
    ws = connect(server, session_cookie(server, "tara"))
    try:
        first = receive_until(ws, 'id="desk-totals"')
        assert f'id="client-{mine.id}"' in first and f'id="client-{theirs.id}"' not in first
        with app.app_context():
            write_quotes(get_redis(), {desk.instrument.instrument_token: Quote("NSE", "INFY", Decimal("1650.00"))})
            changed = mark_to_market(get_redis())

            def announce():
                publish(get_redis(), "pnl.updated", clients=sorted({m.client_id for m in changed}))

            update = publish_until(ws, announce, f'id="client-{mine.id}" hx-swap-oob="true"')
        assert f'id="client-{theirs.id}"' not in update
    finally:
        ws.close()


def test_ticks_reach_pages_that_show_the_instrument(app, server, desk, factory):
    factory.user("tara")
    token = desk.instrument.instrument_token
    ws = connect(server, session_cookie(server, "tara"), page="instrument", id=desk.instrument.id, tokens=token)
    try:
        receive_until(ws, 'id="feed-state"')
        with app.app_context():
            tick = lambda: write_quotes(get_redis(), {token: Quote("NSE", "INFY", Decimal("1555.50"))})  # noqa: E731
            assert "1,555.50" in publish_until(ws, tick, f'id="ltp-{token}"')
    finally:
        ws.close()


def test_order_updates_reach_the_batch_page(app, server, desk, factory):
    paper = desk.paper_client("P")
    factory.user("tara", clients=[paper])
    batch = factory.batch(factory.user("root", role="admin"), [paper], desk.instrument)
    ws = connect(server, session_cookie(server, "tara"), page="batch", id=batch.id)
    try:
        assert "NEW" in receive_until(ws, 'id="order-')
        with app.app_context():
            engine.send_batch(batch.id, desk.context())
        assert "PLACED" in receive_until(ws, "PLACED")
    finally:
        ws.close()


def test_a_desk_socket_keeps_its_pages_rows_live_and_the_totals_for_every_client(app, server, factory):
    on_page, elsewhere, theirs = factory.client("On page"), factory.client("Elsewhere"), factory.client("Theirs")
    factory.user("tara", clients=[on_page, elsewhere])
    ws = connect(server, session_cookie(server, "tara"), clients=f"{on_page.id},{theirs.id}")
    try:
        first = receive_until(ws, 'id="desk-totals"')
        assert f'id="client-{on_page.id}"' in first
        assert f'id="client-{elsewhere.id}"' not in first and f'id="client-{theirs.id}"' not in first
        with app.app_context():

            def off_page():
                publish(get_redis(), "pnl.updated", clients=[elsewhere.id])

            update = publish_until(ws, off_page, 'id="desk-totals" hx-swap-oob="true"')
            assert "<tr" not in update  # its row is on another page: only the totals move

            def both():
                publish(get_redis(), "pnl.updated", clients=[on_page.id, theirs.id])

            update = publish_until(ws, both, f'id="client-{on_page.id}" hx-swap-oob="true"')
            assert f'id="client-{theirs.id}"' not in update
    finally:
        ws.close()


def test_a_desk_socket_with_a_bad_client_list_is_refused(server, factory):
    factory.user("tara")
    headers = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Origin": f"http://{server}",
        **UA,
        "Cookie": session_cookie(server, "tara"),
    }
    response = requests.get(
        f"http://{server}/ws/feed?page=desk&clients=1,abc", headers=headers, allow_redirects=False, timeout=5
    )
    assert response.status_code == 400

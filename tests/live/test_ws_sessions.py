"""Open /ws/feed sockets when their user's sessions end or access changes (issue 10, item 6), over a
real socket against a real server (tests/live/test_ws.py): closed on deactivation, logout and a
change of grants (before any fragment of a revoked client); the periodic re-check catches what an
event missed."""

import pytest
import simple_websocket

from tests.live.test_ws import connect, publish_until, receive_until, server, session_cookie  # noqa: F401
from tests.test_sessions import browser_of, log_in
from webapp.events import publish
from webapp.extensions import db, get_redis
from webapp.models import User

SESSION_ENDED = 1008  # the close code the feed sends when the hub closes a socket (policy)


def wait_closed(ws, seconds: float = 10.0) -> int:
    """Read until the server closes the socket; its close code."""
    with pytest.raises(simple_websocket.ConnectionClosed) as closed:
        for _ in range(int(seconds / 0.2)):
            ws.receive(timeout=0.2)
    return closed.value.reason


def close(ws) -> None:
    if ws.connected:
        ws.close()


@pytest.fixture
def admin(app, factory):
    factory.user("root", role="admin")
    browser = browser_of(app)
    log_in(browser, "root")
    return browser


def test_deactivation_closes_the_users_open_socket(app, server, factory, admin):
    tara = factory.user("tara")
    ws = connect(server, session_cookie(server, "tara"))
    try:
        receive_until(ws, 'id="feed-state"')
        assert admin.post(f"/admin/users/{tara.id}/active", data={"active": "0"}).status_code == 302
        assert wait_closed(ws) == SESSION_ENDED
    finally:
        close(ws)


def test_logout_elsewhere_closes_the_socket_but_not_another_users(app, server, factory):
    alpha = factory.client("Alpha")
    factory.user("tara", clients=[alpha])
    factory.user("uma", clients=[alpha])
    tara_ws = connect(server, session_cookie(server, "tara"))
    uma_ws = connect(server, session_cookie(server, "uma"))
    try:
        receive_until(tara_ws, 'id="desk-totals"')
        receive_until(uma_ws, 'id="desk-totals"')
        laptop = browser_of(app)
        log_in(laptop, "tara")
        assert laptop.post("/logout").status_code == 302
        assert wait_closed(tara_ws) == SESSION_ENDED
        with app.app_context():

            def announce():
                publish(get_redis(), "pnl.updated", clients=[alpha.id])

            publish_until(uma_ws, announce, 'id="desk-totals" hx-swap-oob="true"')
    finally:
        close(tara_ws)
        close(uma_ws)


def test_a_removed_grant_closes_the_socket_before_another_fragment(app, server, factory, admin):
    """A grants change ends the user's sessions: the socket closes, so no fragment of the revoked
    client reaches it after the change (the grants event precedes any later one on the hub's one
    subscription), and the page falls back to plain requests, which go to the login page."""
    alpha, beta = factory.client("Alpha"), factory.client("Beta")
    tara = factory.user("tara", clients=[alpha, beta])
    ws = connect(server, session_cookie(server, "tara"), clients=f"{alpha.id},{beta.id}")
    try:
        first = receive_until(ws, 'id="desk-totals"')
        assert f'id="client-{alpha.id}"' in first and f'id="client-{beta.id}"' in first
        with app.app_context():

            def both():
                publish(get_redis(), "pnl.updated", clients=[alpha.id, beta.id])

            before = publish_until(ws, both, f'id="client-{beta.id}" hx-swap-oob="true"')
            assert f'id="client-{alpha.id}" hx-swap-oob="true"' in before

            response = admin.post(
                f"/admin/users/{tara.id}", data={"email": "", "role": "trader", "clients": [alpha.id]}
            )
            assert response.status_code == 302
            both()
        received = []
        with pytest.raises(simple_websocket.ConnectionClosed) as closed:
            for _ in range(50):
                if (message := ws.receive(timeout=0.2)) is not None:
                    received.append(message)
        assert closed.value.reason == SESSION_ENDED
        assert not [m for m in received if f'id="client-{beta.id}"' in m]
    finally:
        close(ws)


def test_the_periodic_recheck_narrows_a_socket_that_missed_its_event(app, server, factory):
    alpha, beta = factory.client("Alpha"), factory.client("Beta")
    tara = factory.user("tara", clients=[alpha, beta])
    ws = connect(server, session_cookie(server, "tara"), clients=f"{alpha.id},{beta.id}")
    try:
        receive_until(ws, 'id="desk-totals"')
        with app.app_context():
            user = db.session.get(User, tara.id)  # changed with no event at all (a lost message)
            user.clients = [db.session.get(type(alpha), alpha.id)]
            db.session.commit()
        app.extensions["fanout_hub"].recheck()  # what the hub's thread runs every RECHECK_SECONDS
        with app.app_context():

            def both():
                publish(get_redis(), "pnl.updated", clients=[alpha.id, beta.id])

            after = publish_until(ws, both, f'id="client-{alpha.id}" hx-swap-oob="true"')
        assert f'id="client-{beta.id}"' not in after
    finally:
        close(ws)


def test_the_periodic_recheck_closes_a_socket_whose_session_ended_unannounced(app, server, factory):
    tara = factory.user("tara")
    ws = connect(server, session_cookie(server, "tara"))
    try:
        receive_until(ws, 'id="feed-state"')
        with app.app_context():  # a version bump whose event was lost (Redis away at the commit)
            db.session.get(User, tara.id).session_version += 1
            db.session.commit()
        app.extensions["fanout_hub"].recheck()
        assert wait_closed(ws) == SESSION_ENDED
    finally:
        close(ws)

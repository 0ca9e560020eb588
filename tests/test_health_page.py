"""The admins' health page (/health/page and its polled panel): who may see it, and what it shows
from Redis (roles' heartbeats, queues, workers, the feed, failed jobs) and the database (sessions)."""

from __future__ import annotations

import json
import re
from datetime import timedelta

from rq import Queue, Worker
from rq.results import Result
from rq.utils import utcformat

from tests.test_health import start_roles
from webapp.extensions import get_rq_redis
from webapp.health import overview
from webapp.health.roles import LIVE_SECONDS
from webapp.marketdata.store import quote_key
from webapp.marketfeed.feed import HEARTBEAT_KEY, SUBSCRIPTIONS_KEY
from webapp.timeutil import IST, utcnow


def test_the_page_is_for_admins_only(client, auth, factory):
    for role in ("trader", "limited", "viewer"):
        factory.user(role, role=role)
    factory.user("boss", role="admin")
    response = client.get("/health/page")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    for role in ("trader", "limited", "viewer"):
        auth.login(role)
        assert client.get("/health/page").status_code == 403
        assert client.get("/health/page/panel").status_code == 403
        assert b"/health/page" not in client.get("/").data  # no link in their nav
        auth.logout()
    auth.login("boss")
    page = client.get("/health/page")
    assert page.status_code == 200 and b'id="health-panel"' in page.data
    assert b'hx-get="/health/page/panel" hx-trigger="every 5s"' in page.data
    assert b'href="/health/page"' in page.data  # the admin's nav links it
    panel = client.get("/health/page/panel")
    assert panel.status_code == 200 and panel.data.lstrip().startswith(b"{#") is False
    assert b"<html" not in panel.data and b'id="health-panel"' in panel.data


def _row(html: str, row_id: str) -> str:
    match = re.search(rf'<tr[^>]*id="{row_id}".*?</tr>', html, re.S)
    assert match, row_id
    return re.sub(r"\s+", " ", match.group(0))


def test_roles_show_alive_late_and_missing_with_the_last_heartbeat_in_ist(app, client, auth, factory, redis_client):
    factory.user("boss", role="admin")
    start_roles(app, roles=("orders", "worker", "feed"))
    late = utcnow() - timedelta(seconds=40)
    redis_client.hset("rq:worker:worker-1", "last_heartbeat", utcformat(late))
    gone = utcnow() - timedelta(seconds=LIVE_SECONDS + 30)
    with app.app_context():
        Worker(["strategies"], connection=get_rq_redis(), name="strategies-1").register_birth()
    redis_client.hset("rq:worker:strategies-1", "last_heartbeat", utcformat(gone))  # killed hard: still registered
    auth.login("boss")
    html = client.get("/health/page/panel").get_data(as_text=True)
    assert 'chip-green">alive' in _row(html, "role-orders") and "orders-1" in _row(html, "role-orders")
    assert 'chip-amber">late' in _row(html, "role-worker")
    assert late.astimezone(IST).strftime("%H:%M:%S") in _row(html, "role-worker")
    strategies = _row(html, "role-strategies")
    assert 'chip-red">missing' in strategies and gone.astimezone(IST).strftime("%H:%M:%S") in strategies
    assert "no process has registered" in _row(html, "role-cron")
    assert "alive" in _row(html, "role-feed")


def test_queues_workers_and_recent_failures(app, client, auth, factory):
    factory.user("boss", role="admin")
    with app.app_context():
        connection = get_rq_redis()
        sync = Queue("sync", connection=connection)
        sync.enqueue("jobs.heartbeat.beat")
        sync.enqueue("jobs.heartbeat.beat")
        failed = Queue("orders", connection=connection).enqueue("jobs.orders.send_batch", 7)
        Queue("orders", connection=connection).remove(failed)
        failed.ended_at = utcnow()
        trace = 'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: the broker said no\n'
        Queue("orders", connection=connection).failed_job_registry.add(failed, ttl=600, exc_string=trace)
        Result.create_failure(failed, ttl=600, exc_string=trace)  # as a worker records a failed run
        worker = Worker(["orders"], connection=connection, name="orders-1")
        worker.register_birth()
        worker.set_state("idle")
        worker.heartbeat()
    auth.login("boss")
    html = client.get("/health/page/panel").get_data(as_text=True)
    sync_row = _row(html, "queue-sync")
    assert '<th scope="row">sync</th><td class="num">2</td>' in sync_row, sync_row
    assert 'chip-red">1<' in _row(html, "queue-orders")
    assert "orders-1" in html and "idle" in html
    errors = html[html.index('id="health-errors"') :]
    assert "jobs.orders.send_batch" in errors and "ValueError: the broker said no" in errors
    assert "Traceback" not in errors  # the summary, not the whole trace


def test_feed_lag_and_ticking_instruments(app, client, auth, factory, redis_client):
    factory.user("boss", role="admin")
    now = utcnow()
    redis_client.set(HEARTBEAT_KEY, (now - timedelta(seconds=3)).isoformat())
    redis_client.sadd(SUBSCRIPTIONS_KEY, 11, 12, 13)
    redis_client.set(quote_key(11), json.dumps({"timestamp": now.isoformat()}))
    redis_client.set(quote_key(12), json.dumps({"timestamp": (now - timedelta(minutes=5)).isoformat()}))
    with app.app_context():
        state = overview.feed(redis_client, "paper", now)
    assert (state.subscribed, state.ticking) == (3, 1) and 2 < state.lag < 60
    auth.login("boss")
    html = re.sub(r"\s+", " ", client.get("/health/page/panel").get_data(as_text=True))
    assert "1 ticking of 3 subscribed" in html
    assert (now - timedelta(seconds=3)).astimezone(IST).strftime("%H:%M:%S") in html


def test_sessions_expired_missing_or_ending_today_are_listed_by_client(app, client, auth, factory):
    factory.user("boss", role="admin")
    now = utcnow()
    local_midnight = overview.end_of_ist_day(now)
    factory.client("Expired", broker="kite", session_enc="x", session_expires_at=now - timedelta(hours=1))
    ending = min(now + timedelta(minutes=5), local_midnight - timedelta(seconds=1))
    factory.client("Ending", broker="kite", session_enc="x", session_expires_at=ending)
    factory.client("Tomorrow", broker="kite", session_enc="x", session_expires_at=local_midnight + timedelta(hours=2))
    factory.client("Never", broker="kite")
    factory.client("Paper", broker="paper")
    factory.client("Off", broker="kite", enabled=False)
    with app.app_context():
        rows = {row.name: row.state for row in overview.broker_sessions(now)}
    assert rows == {"Expired": "expired", "Ending": "expiring", "Never": "none"}
    auth.login("boss")
    html = client.get("/health/page/panel").get_data(as_text=True)
    assert "Expired" in html and "expires today" in html and "not connected" in html
    assert "Tomorrow" not in html and "Paper" not in html


def test_the_page_stands_when_redis_is_away(services, encryption_key, factory):
    from tests.conftest import make_app
    from tests.factories import DEFAULT_PASSWORD

    factory.user("boss", role="admin")
    app = make_app(services, encryption_key, REDIS_URL="redis://127.0.0.1:1/0", RATELIMIT_ENABLED=False)
    client = app.test_client()
    client.post("/login", data={"username": "boss", "password": DEFAULT_PASSWORD})
    response = client.get("/health/page/panel")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "Redis is not answering: queues unknown." in html
    assert 'id="health-database">ok' in html
    app.extensions["fanout_redis"].close()
    with app.app_context():
        from webapp.extensions import db

        db.engine.dispose()

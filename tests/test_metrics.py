"""/metrics: the collector's values against rows and keys made here, and who may read it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families
from rq import Queue, Worker

from webapp.extensions import get_rq_redis
from webapp.health import overview
from webapp.marketfeed.feed import HEARTBEAT_KEY
from webapp.timeutil import utcnow
from webapp.trading.risk import start_of_day

TOKEN = "s3cret-scrape-token-0123456789"


def samples(text: str) -> dict[tuple[str, tuple], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def scrape(client, token: str = TOKEN) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.status_code
    assert response.mimetype == "text/plain"
    return samples(response.get_data(as_text=True))


@pytest.fixture
def scraper(app, client):
    app.config["METRICS_TOKEN"] = TOKEN
    return client


def test_orders_by_state_and_broker_and_the_send_latency_histogram(app, scraper, factory):
    trader = factory.user("t1")
    paper = [factory.client("P1"), factory.client("P2"), factory.client("P3")]
    kite = [factory.client("Kite Secret Name", broker="kite", code="ZX9911")]
    instrument = factory.instrument()
    now = utcnow()
    created = now - timedelta(seconds=5)
    # two paper children acknowledged 0.08 s and 0.4 s after creation, one rejected; one kite child 3 s
    batch = factory.batch(trader, paper[:2], instrument, status="PLACED", created_at=created, broker_order_id="B1")
    factory.batch(trader, paper[2:], instrument, status="REJECTED", created_at=created)
    factory.batch(
        trader, kite, instrument, status="COMPLETE", created_at=created, acknowledged_at=created + timedelta(seconds=3)
    )
    # yesterday's (IST) child: not today's
    factory.batch(trader, paper[:1], instrument, status="PLACED", created_at=start_of_day(now) - timedelta(hours=1))
    from webapp.extensions import db
    from webapp.models import Order

    with app.app_context():
        first, second = db.session.query(Order).filter_by(batch_id=batch.id).order_by(Order.id).all()
        first.acknowledged_at = created + timedelta(milliseconds=80)
        second.acknowledged_at = created + timedelta(milliseconds=400)
        db.session.commit()

    found = scrape(scraper)
    assert found[("fanout_orders_today", (("broker", "paper"), ("state", "PLACED")))] == 2
    assert found[("fanout_orders_today", (("broker", "paper"), ("state", "REJECTED")))] == 1
    assert found[("fanout_orders_today", (("broker", "kite"), ("state", "COMPLETE")))] == 1
    paper_bucket = lambda le: found[("fanout_order_send_latency_seconds_bucket", (("broker", "paper"), ("le", le)))]  # noqa: E731
    assert paper_bucket("0.05") == 0 and paper_bucket("0.1") == 1 and paper_bucket("0.25") == 1
    assert paper_bucket("0.5") == 2 and paper_bucket("+Inf") == 2
    assert found[("fanout_order_send_latency_seconds_count", (("broker", "paper"),))] == 2
    assert found[("fanout_order_send_latency_seconds_sum", (("broker", "paper"),))] == pytest.approx(0.48)
    kite_bucket = lambda le: found[("fanout_order_send_latency_seconds_bucket", (("broker", "kite"), ("le", le)))]  # noqa: E731
    assert kite_bucket("2.5") == 0 and kite_bucket("5.0") == 1
    text = scraper.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).get_data(as_text=True)
    assert "Kite Secret Name" not in text and "ZX9911" not in text and "t1" not in text  # no names or codes in labels


def test_queues_workers_feed_lag_and_open_sockets(app, scraper, redis_client):
    with app.app_context():
        connection = get_rq_redis()
        Queue("sync", connection=connection).enqueue("jobs.heartbeat.beat")
        Queue("sync", connection=connection).enqueue("jobs.heartbeat.beat")
        Queue("orders", connection=connection).enqueue("jobs.heartbeat.beat")
        for name in ("orders-1", "orders-2"):
            worker = Worker(["orders"], connection=connection, name=name)
            worker.register_birth()
            worker.set_state("idle")
            worker.heartbeat()
    redis_client.set(HEARTBEAT_KEY, (utcnow() - timedelta(seconds=7)).isoformat())
    redis_client.set(overview.SOCKETS_KEY.format(process="web-a:11"), 3, ex=30)  # two other web processes
    redis_client.set(overview.SOCKETS_KEY.format(process="web-b:12"), 4, ex=30)
    found = scrape(scraper)
    assert found[("fanout_queue_jobs", (("queue", "sync"), ("state", "queued")))] == 2
    assert found[("fanout_queue_jobs", (("queue", "orders"), ("state", "queued")))] == 1
    assert found[("fanout_queue_jobs", (("queue", "orders"), ("state", "failed")))] == 0
    assert found[("fanout_rq_workers", (("state", "idle"),))] == 2
    assert found[("fanout_processes", (("role", "orders"),))] == 2
    assert found[("fanout_processes", (("role", "feed"),))] == 0
    assert 7 <= found[("fanout_feed_lag_seconds", ())] < 60
    assert found[("fanout_open_sockets", ())] == 7  # and this process's 0, reported as it answered
    assert found[("fanout_source_up", (("source", "redis"),))] == 1
    assert found[("fanout_source_up", (("source", "database"),))] == 1


def test_a_web_process_reports_its_hubs_sockets(app, redis_client):
    from webapp.feed.hub import get_hub

    hub = get_hub(app)
    hub.subscribers.update({1: object(), 2: object()})  # two open sockets in this process
    try:
        with app.app_context():
            overview.report_sockets(redis_client, overview.hub_sockets(app))
            assert overview.open_sockets(redis_client) == 2
            assert 0 < redis_client.ttl(overview.SOCKETS_KEY.format(process=overview._process_name())) <= 30
    finally:
        hub.subscribers.clear()


def test_who_may_scrape(app, client, auth, factory):
    factory.user("boss", role="admin")
    factory.user("trader", role="trader")
    # no token configured: a bearer header is refused; a browser session decides otherwise
    assert client.get("/metrics", headers={"Authorization": "Bearer anything"}).status_code == 401
    response = client.get("/metrics")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    app.config["METRICS_TOKEN"] = TOKEN
    for header in ("Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer", ""):
        response = client.get("/metrics", headers={"Authorization": header})
        assert response.status_code == 401, header
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert TOKEN not in response.get_data(as_text=True)
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    auth.login("trader")
    assert client.get("/metrics").status_code == 403
    auth.logout()
    auth.login("boss")
    response = client.get("/metrics")
    assert response.status_code == 200 and "fanout_orders_today" in response.get_data(as_text=True)


def test_the_token_from_the_environment(app, client):
    from webapp.config import Config

    app.config["METRICS_TOKEN"] = Config.from_env({"METRICS_TOKEN": "from-the-env"}).METRICS_TOKEN
    assert client.get("/metrics", headers={"Authorization": "Bearer from-the-env"}).status_code == 200
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_redis_away_still_serves_the_database_metrics(services, encryption_key, factory):
    from tests.conftest import make_app

    app = make_app(services, encryption_key, REDIS_URL="redis://127.0.0.1:1/0", METRICS_TOKEN=TOKEN)
    found = scrape(app.test_client())
    assert found[("fanout_source_up", (("source", "redis"),))] == 0
    assert found[("fanout_source_up", (("source", "database"),))] == 1
    assert not any(name == "fanout_queue_jobs" for name, _ in found)
    app.extensions["fanout_redis"].close()
    with app.app_context():
        from webapp.extensions import db

        db.engine.dispose()

import os
import socket
from datetime import timedelta

from rq import Worker
from rq.cron import CronScheduler
from rq.utils import utcformat

from tests.conftest import make_app
from webapp.extensions import get_redis, get_rq_redis
from webapp.health.roles import LIVE_SECONDS, beat
from webapp.timeutil import utcnow


def start_roles(app, roles=("orders", "strategies", "worker", "cron", "feed")):
    """Register one process per role the way each really registers (RQ's worker and cron scheduler
    registries, the feed's own heartbeat key), in this process."""
    with app.app_context():
        rq_redis = get_rq_redis()
        if "orders" in roles:
            Worker(["orders"], connection=rq_redis, name="orders-1").register_birth()
        if "strategies" in roles:
            Worker(["strategies"], connection=rq_redis, name="strategies-1").register_birth()
        if "worker" in roles:
            Worker(["sync", "default"], connection=rq_redis, name="worker-1").register_birth()
        if "cron" in roles:
            CronScheduler(connection=rq_redis, name="cron-1").register_birth()
        if "feed" in roles:
            beat(get_redis(), "feed")


def test_health_and_live(client):
    assert client.get("/health").json == {"status": "ok"}
    assert client.get("/health/live").json == {"status": "ok"}


def test_ready_with_database_and_redis(app, client):
    start_roles(app)
    response = client.get("/health/ready")
    assert response.status_code == 200
    assert response.json["checks"] == {"database": "ok", "redis": "ok"}
    assert response.json["roles"] == {"orders": 1, "strategies": 1, "worker": 1, "cron": 1, "feed": 1, "backtests": 0}
    assert response.json["status"] == "ok" and response.json["degraded"] == []


def test_ready_is_degraded_naming_each_role_without_a_live_process(app, client):
    response = client.get("/health/ready")
    assert response.status_code == 503 and response.json["status"] == "degraded"
    assert response.json["degraded"] == ["orders", "strategies", "worker", "cron", "feed"]
    assert response.json["checks"] == {"database": "ok", "redis": "ok"} and response.json["failed"] == []
    start_roles(app, roles=("orders", "feed"))
    response = client.get("/health/ready")
    assert response.status_code == 503 and response.json["degraded"] == ["strategies", "worker", "cron"]
    assert response.json["roles"] == {"orders": 1, "strategies": 0, "worker": 0, "cron": 0, "feed": 1, "backtests": 0}


def test_a_worker_whose_heartbeat_stopped_is_not_live(app, client, redis_client):
    start_roles(app)
    stale = utcformat(utcnow() - timedelta(seconds=LIVE_SECONDS + 5))
    redis_client.hset("rq:worker:orders-1", "last_heartbeat", stale)  # SIGKILLed: registered, silent
    long_ago = (utcnow() - timedelta(seconds=LIVE_SECONDS + 5)).timestamp()
    redis_client.zadd("rq:cron_schedulers", {"cron-1": long_ago})
    redis_client.zadd("fanout:processes:feed", {f"{socket.gethostname()}:{os.getpid()}": long_ago})
    response = client.get("/health/ready")
    assert response.status_code == 503 and response.json["degraded"] == ["orders", "cron", "feed"]


def test_ready_names_what_failed(services, encryption_key):
    app = make_app(services, encryption_key, REDIS_URL="redis://127.0.0.1:1/0")  # nothing listens on port 1
    response = app.test_client().get("/health/ready")
    assert response.status_code == 503
    assert response.json["failed"] == ["redis"] and response.json["checks"]["database"] == "ok"
    app.extensions["fanout_redis"].close()
    with app.app_context():
        from webapp.extensions import db

        db.engine.dispose()


def test_detailed_is_for_admins(client, auth, factory, redis_client):
    factory.user("root", role="admin")
    factory.user("tara", role="trader")
    auth.login("tara")
    assert client.get("/health/detailed").status_code == 403
    auth.logout()
    auth.login("root")
    redis_client.set("fanout:cron:heartbeat", "2026-11-21T04:00:00+00:00")
    body = client.get("/health/detailed").json
    assert body["database"] == "ok" and set(body["queues"]) == {"orders", "strategies", "sync", "default", "backtests"}
    assert body["cron_heartbeat"] == "2026-11-21T04:00:00+00:00" and isinstance(body["workers"], list)
    assert body["roles"] == {"orders": [], "strategies": [], "worker": [], "cron": [], "feed": [], "backtests": []}
    start_roles(client.application)
    roles = client.get("/health/detailed").json["roles"]
    assert [p["name"] for p in roles["orders"]] == ["orders-1"] and [p["name"] for p in roles["worker"]] == ["worker-1"]
    assert [p["name"] for p in roles["cron"]] == ["cron-1"] and len(roles["feed"]) == 1
    assert roles["feed"][0]["pid"] == os.getpid()


def test_the_desk_shows_each_roles_processes_to_admins_and_traders(app, client, auth, factory):
    factory.user("root", role="admin")
    factory.user("tara", role="trader")
    factory.user("vic", role="viewer")
    start_roles(app, roles=("orders", "strategies", "worker", "feed"))
    auth.login("tara")
    page = client.get("/").get_data(as_text=True)
    assert 'id="desk-processes"' in page
    assert 'id="process-orders" title="1 live orders process">orders 1</span>' in page
    assert '<span class="chip chip-red" id="process-cron" title="0 live cron processes">cron down</span>' in page
    auth.logout()
    auth.login("root")
    assert 'id="process-cron"' in client.get("/").get_data(as_text=True)
    auth.logout()
    auth.login("vic")
    assert 'id="desk-processes"' not in client.get("/").get_data(as_text=True)

from tests.conftest import make_app


def test_health_and_live(client):
    assert client.get("/health").json == {"status": "ok"}
    assert client.get("/health/live").json == {"status": "ok"}


def test_ready_with_database_and_redis(client):
    response = client.get("/health/ready")
    assert response.status_code == 200
    assert response.json["checks"] == {"database": "ok", "redis": "ok"}


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
    assert body["database"] == "ok" and set(body["queues"]) == {"orders", "sync", "default"}
    assert body["cron_heartbeat"] == "2026-11-21T04:00:00+00:00" and isinstance(body["workers"], list)

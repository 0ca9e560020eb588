"""Webhooks end to end: the real route, the real database and Redis, the job run in-process, the paper broker."""

from __future__ import annotations

import json
import re
import threading
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from tests.conftest import count
from webapp.extensions import db
from webapp.hooks import alerts
from webapp.models import Batch, HookAlert, User
from webapp.models.audit import AuditEvent
from webapp.timeutil import utcnow
from webapp.trading import states

TV_JSON = {"ticker": "SBIN", "exchange": "NSE", "action": "buy", "contracts": "10", "price": "612.5", "time": "x"}
CHARTINK = {
    "stocks": "SBIN,INFY",
    "trigger_prices": "612.5,1548.2",
    "triggered_at": "2:34 pm",
    "scan_name": "Short term breakouts buy",
    "scan_url": "short-term-breakouts",
    "alert_name": "Alert for Short term breakouts",
    "webhook_url": "https://desk.example/hooks/x",
}


def post(client, secret, body, content_type="application/json"):
    data = json.dumps(body) if isinstance(body, dict) else body
    return client.post(f"/hooks/{secret}", data=data, content_type=content_type)


def test_tradingview_json_alert_makes_one_batch_for_the_hooks_clients(client, desk):
    _, secret = desk.hook()
    reply = post(client, secret, TV_JSON)
    assert reply.status_code == 200
    assert reply.json["status"] == "RECEIVED"
    stored = desk.alerts()
    assert [(a.id, a.status, a.source) for a in stored] == [(reply.json["alert_id"], "RECEIVED", "tradingview")]
    batch_ids = desk.run_job(reply.json["alert_id"])
    assert len(batch_ids) == 1
    (batch,) = desk.batches()
    assert (batch.id, batch.kind, batch.action, batch.instrument_id) == (batch_ids[0], "hook", "BUY", desk.sbin.id)
    assert desk.children(batch.id) == {
        desk.clients[0].id: ("BUY", 5, "NEW"),
        desk.clients[1].id: ("BUY", 10, "NEW"),
    }
    (alert,) = desk.alerts()
    assert (alert.status, alert.batch_id) == ("PROCESSED", batch.id)
    desk.run_orders()  # the send the job queued reaches the paper broker
    assert {status for _, _, status in desk.children(batch.id).values()} <= states.AT_BROKER | {states.COMPLETE}
    with desk.app.app_context():
        events = db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "batch.hook")).scalars().all()
        assert [(e.actor, e.target) for e in events] == [("hookowner", f"batch:{batch.id}")]


def test_tradingview_default_text_message_sizes_from_the_alert(client, desk):
    _, secret = desk.hook(quantities={}, client_ids=[c.id for c in desk.clients], sizing="fixed")
    body = "Order sell @ 3 filled on NSE:INFY. New strategy position is -3"
    reply = post(client, secret, body, content_type="text/plain")
    assert reply.status_code == 200, reply.json
    (batch_id,) = desk.run_job(reply.json["alert_id"])
    assert desk.children(batch_id) == {c.id: ("SELL", 3, "NEW") for c in desk.clients}


def test_plain_words_with_a_fixed_side_and_instrument(client, desk):
    _, secret = desk.hook(action="BUY", instrument_id=desk.infy.id, order_type="LIMIT")
    reply = post(client, secret, "long 1548.25 anything", content_type="text/plain")
    assert reply.status_code == 200, reply.json
    (batch_id,) = desk.run_job(reply.json["alert_id"])
    with desk.app.app_context():
        batch = db.session.get(Batch, batch_id)
        # the alert's 1548.25 on INFY's 0.10 tick, rounded so that a buy never pays more than the alert
        assert (batch.action, batch.instrument_id, batch.order_type, batch.price) == (
            "BUY",
            desk.infy.id,
            "LIMIT",
            Decimal("1548.20"),
        )


def test_chartink_alert_makes_one_batch_per_stock(client, desk):
    _, secret = desk.hook()
    reply = post(client, secret, CHARTINK)
    assert reply.status_code == 200
    assert reply.json["status"] == "RECEIVED"
    batch_ids = desk.run_job(reply.json["alert_id"])
    batches = desk.batches()
    assert [b.id for b in batches] == batch_ids
    assert sorted((b.instrument_id, b.action) for b in batches) == sorted(
        [(desk.sbin.id, "BUY"), (desk.infy.id, "BUY")]
    )
    for b in batches:
        assert desk.children(b.id) == {desk.clients[0].id: ("BUY", 5, "NEW"), desk.clients[1].id: ("BUY", 10, "NEW")}
    (alert,) = desk.alerts()
    assert (alert.source, alert.status, alert.batch_id) == ("chartink", "PROCESSED", batch_ids[0])


def test_the_same_alert_twice_in_the_window_makes_one_batch(client, desk):
    _, secret = desk.hook(dedupe_seconds=60)
    first, second = post(client, secret, TV_JSON), post(client, secret, {**TV_JSON, "time": "later", "price": "613"})
    assert (first.json["status"], second.json["status"]) == ("RECEIVED", "DUPLICATE")
    desk.run_job(first.json["alert_id"])
    assert desk.run_job(second.json["alert_id"]) == []
    assert len(desk.batches()) == 1
    dup = desk.alerts()[1]
    assert (dup.status, dup.duplicate_of_id) == ("DUPLICATE", first.json["alert_id"])


def test_after_the_window_the_same_alert_acts_again(client, desk):
    hook_id, secret = desk.hook(dedupe_seconds=5)
    first = post(client, secret, TV_JSON)
    with desk.app.app_context():  # the window opened 10 s ago
        db.session.execute(sa.text("UPDATE hook_windows SET opened_at = :t"), {"t": utcnow() - timedelta(seconds=10)})
        db.session.commit()
    second = post(client, secret, TV_JSON)
    assert (first.json["status"], second.json["status"]) == ("RECEIVED", "RECEIVED")


def test_two_identical_alerts_at_once_one_leads(app, desk):
    _, secret = desk.hook()
    replies, barrier = [], threading.Barrier(4)

    def send():
        with app.test_client() as c:
            barrier.wait()
            replies.append(post(c, secret, TV_JSON))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status_code for r in replies) == [200] * 4
    assert sorted(r.json["status"] for r in replies) == ["DUPLICATE"] * 3 + ["RECEIVED"]
    for r in replies:
        desk.run_job(r.json["alert_id"])
    assert len(desk.batches()) == 1


def test_the_job_run_twice_makes_one_batch(client, desk):
    _, secret = desk.hook()
    alert_id = post(client, secret, TV_JSON).json["alert_id"]
    first = desk.run_job(alert_id)
    assert desk.run_job(alert_id) == []
    assert [b.id for b in desk.batches()] == first
    with desk.app.app_context():  # even when the alert is found RECEIVED again (a worker died after the commit)
        db.session.execute(sa.update(HookAlert).values(status="RECEIVED"))
        db.session.commit()
    assert desk.run_job(alert_id) == first
    assert len(desk.batches()) == 1


def test_a_wrong_secret_is_404_and_stores_nothing(client, desk):
    desk.hook()
    reply = post(client, "not-the-secret", TV_JSON)
    assert reply.status_code == 404
    assert reply.json["error"]["code"] == "not_found"
    with desk.app.app_context():
        assert count(HookAlert) == 0


def test_an_inactive_hook_is_404(client, desk):
    _, secret = desk.hook(active=False)
    assert post(client, secret, TV_JSON).status_code == 404
    assert desk.alerts() == []


def test_an_unknown_instrument_is_stored_rejected_and_answered_422(client, desk):
    _, secret = desk.hook()
    reply = post(client, secret, {**TV_JSON, "ticker": "NOSUCH"})
    assert reply.status_code == 422
    assert "NOSUCH" in reply.json["error"]["message"]
    (alert,) = desk.alerts()
    assert (alert.status, alert.id) == ("REJECTED", reply.json["alert_id"])
    assert "no known instrument" in alert.reason
    assert desk.batches() == []


def test_hostile_bodies_get_4xx_json_never_500(client, desk):
    _, secret = desk.hook()
    for body, kind in (
        ("{not json", "application/json"),
        ("[1, 2, 3]", "application/json"),
        ('{"ticker": {"a": 1}, "action": "buy"}', "application/json"),
        ('{"ticker": "SBIN", "action": "hold"}', "application/json"),
        ('{"ticker": "SBIN", "action": "buy", "contracts": "1e9999"}', "application/json"),
        ('{"stocks": ""}', "application/json"),
        ("\x00\xff garbage", "application/octet-stream"),
        ("", "text/plain"),
    ):
        reply = client.post(f"/hooks/{secret}", data=body, content_type=kind)
        assert reply.status_code == 422, (body, reply.status_code)
        assert reply.json["error"]["message"]
    assert desk.batches() == []
    too_big = client.post(f"/hooks/{secret}", data="x" * (16 * 1024 + 1), content_type="text/plain")
    assert too_big.status_code == 413
    assert too_big.json["error"]["code"] == "too_large"


def test_a_stale_alert_expires_and_nothing_is_sent(client, desk):
    _, secret = desk.hook()
    alert_id = post(client, secret, TV_JSON).json["alert_id"]
    with desk.app.app_context():
        db.session.execute(sa.update(HookAlert).values(received_at=utcnow() - timedelta(seconds=31)))
        db.session.commit()
    assert desk.run_job(alert_id) == []
    (alert,) = desk.alerts()
    assert alert.status == "EXPIRED"
    assert desk.batches() == []


def test_the_sweep_requeues_fresh_alerts_and_expires_stale_ones(client, desk, redis_client):
    from jobs import hooks as jobs_hooks

    _, secret = desk.hook()
    fresh = post(client, secret, TV_JSON).json["alert_id"]
    stale = post(client, secret, {**TV_JSON, "ticker": "INFY"}).json["alert_id"]
    with desk.app.app_context():
        db.session.execute(
            sa.update(HookAlert).where(HookAlert.id == fresh).values(received_at=utcnow() - timedelta(seconds=10))
        )
        db.session.execute(
            sa.update(HookAlert).where(HookAlert.id == stale).values(received_at=utcnow() - timedelta(seconds=40))
        )
        db.session.commit()
    redis_client.delete("rq:queue:strategies")
    assert jobs_hooks.sweep() == 1
    assert redis_client.lrange("rq:queue:strategies", 0, -1) == [f"hook-alert-{fresh}"]
    assert {a.id: a.status for a in desk.alerts()} == {fresh: "RECEIVED", stale: "EXPIRED"}


def test_a_deactivated_owner_makes_the_alert_rejected(client, desk):
    _, secret = desk.hook()
    alert_id = post(client, secret, TV_JSON).json["alert_id"]
    with desk.app.app_context():
        db.session.get(User, desk.owner.id).active = False
        db.session.commit()
    assert desk.run_job(alert_id) == []
    (alert,) = desk.alerts()
    assert (alert.status, alert.reason) == ("REJECTED", "The hook's owner is deactivated.")
    assert desk.batches() == []


def test_a_client_no_longer_granted_is_left_out(client, desk):
    _, secret = desk.hook()
    with desk.app.app_context():
        owner = db.session.get(User, desk.owner.id)
        owner.clients = [c for c in owner.clients if c.id == desk.clients[0].id]
        db.session.commit()
    alert_id = post(client, secret, TV_JSON).json["alert_id"]
    (batch_id,) = desk.run_job(alert_id)
    assert desk.children(batch_id) == {desk.clients[0].id: ("BUY", 5, "NEW")}


def test_the_rate_limit_answers_429_with_retry_after(app, client, desk):
    app.config["HOOK_RATE_LIMIT"] = "2 per minute"
    _, secret = desk.hook(dedupe_seconds=5)
    codes = [post(client, secret, TV_JSON).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    limited = post(client, secret, TV_JSON)
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.json["error"]["code"] == "rate_limited"
    assert len(desk.alerts()) == 2


def _url(page: str) -> str:
    found = re.search(r'id="hook-url"[^>]*value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def test_the_page_creates_a_hook_shows_the_url_once_and_rotates_it(client, auth, desk):
    auth.login("hookowner")
    form = {
        "name": "breakouts",
        "symbol": "",
        "action": "",
        "product": "MIS",
        "order_type": "MARKET",
        "mode": "quantities",
        "sizing": "fixed",
        "clients": [str(desk.clients[0].id), str(desk.clients[1].id)],
        f"qty_{desk.clients[0].id}": "2",
        f"qty_{desk.clients[1].id}": "4",
        "dedupe_seconds": "30",
    }
    created = client.post("/hooks/new", data=form)
    assert created.status_code == 201
    page = created.get_data(as_text=True)
    url = _url(page)
    secret = url.rsplit("/", 1)[1]
    assert "{{strategy.order.action}}" in page
    hook_id = desk.alerts() or None
    with desk.app.app_context():
        from webapp.models import Hook

        hook = db.session.execute(sa.select(Hook)).scalar_one()
        hook_id = hook.id
        assert hook.quantities == {str(desk.clients[0].id): 2, str(desk.clients[1].id): 4}
        assert hook.secret_hash == alerts.secret_hash(secret) and secret not in hook.secret_hash
    shown = client.get(f"/hooks/{hook_id}").get_data(as_text=True)
    assert secret not in shown and "hook-url" not in shown
    assert client.get("/hooks").status_code == 200

    assert post(client, secret, TV_JSON).status_code == 200
    rotated = client.post(f"/hooks/{hook_id}/rotate")
    new_secret = _url(rotated.get_data(as_text=True)).rsplit("/", 1)[1]
    assert new_secret != secret
    assert post(client, secret, TV_JSON).status_code == 404
    assert post(client, new_secret, {**TV_JSON, "ticker": "INFY"}).status_code == 200
    with desk.app.app_context():
        actions = db.session.execute(sa.select(AuditEvent.action).where(AuditEvent.action.like("hook.%"))).scalars()
        assert list(actions) == ["hook.create", "hook.rotate"]


def test_the_form_refuses_bad_input_and_saves_nothing(client, auth, desk):
    auth.login("hookowner")
    reply = client.post(
        "/hooks/new",
        data={
            "name": "x",
            "symbol": "NSE:NOSUCH",
            "action": "BUY",
            "product": "MIS",
            "order_type": "MARKET",
            "mode": "quantities",
            "sizing": "fixed",
            "clients": [str(desk.clients[0].id)],
            f"qty_{desk.clients[0].id}": "-3",
            "dedupe_seconds": "2",
        },
    )
    assert reply.status_code == 400
    page = reply.get_data(as_text=True)
    assert "Nothing was saved" in page
    from webapp.models import Hook

    with desk.app.app_context():
        assert count(Hook) == 0


def test_another_users_hook_is_404_and_a_viewer_may_not_manage_hooks(client, auth, desk, factory):
    hook_id, _ = desk.hook()
    factory.user("other", role="trader")
    factory.user("watcher", role="viewer")
    auth.login("other")
    assert client.get(f"/hooks/{hook_id}").status_code == 404
    assert client.post(f"/hooks/{hook_id}/rotate").status_code == 404
    auth.logout()
    auth.login("watcher")
    assert client.get("/hooks").status_code == 403


@pytest.mark.csrf
def test_the_webhook_needs_no_csrf_token_but_the_pages_do(client, auth, desk):
    hook_id, secret = desk.hook()
    assert post(client, secret, TV_JSON).status_code == 200
    auth.login("hookowner")
    assert client.post(f"/hooks/{hook_id}/rotate").status_code == 400  # no token: refused, nothing rotated
    assert post(client, secret, {**TV_JSON, "ticker": "INFY"}).status_code == 200


def test_every_hooks_route_names_a_permission(app):
    views = {rule.rule: app.view_functions[rule.endpoint] for rule in app.url_map.iter_rules()}
    hooks = {path: view.permission for path, view in views.items() if path.startswith("/hooks")}
    assert hooks.pop("/hooks/<secret>") == "public"
    assert len(hooks) == 7  # list, new, show, edit, rotate, switch on/off, delete
    assert set(hooks.values()) == {"orders.place"}

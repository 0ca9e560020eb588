"""The collector: the right people, each fact once (twice run, run at once, run after a crash), every kind."""

from __future__ import annotations

import threading
from datetime import timedelta

import sqlalchemy as sa

from tests.notify.conftest import fill, order_in, run_collect
from webapp import audit
from webapp.automation.alerts import raise_alert
from webapp.extensions import db
from webapp.models import Client, Notification, NotificationCursor, NotificationDelivery, NotificationPrefs
from webapp.notify.collect import collect
from webapp.timeutil import utcnow


def _notes(app):
    with app.app_context():
        return [
            (n.user_id, n.key, n.kind)
            for n in db.session.execute(sa.select(Notification).order_by(Notification.id)).scalars()
        ]


def test_a_fill_reaches_those_who_see_the_client_once(app, factory, desk):
    order_id = order_in(factory, desk, desk.mine, "OPEN")
    fill(app, order_id, 4)
    created = run_collect(app)
    notes = _notes(app)
    # the admin (sees every client) and the granted trader; not the viewer of another client, not the inactive user
    assert sorted(uid for uid, _, _ in notes) == sorted([desk.admin.id, desk.trader.id])
    assert {key for _, key, _ in notes} == {f"fill:{order_id}:4"} and len(created) == 2
    assert run_collect(app) == [] and len(_notes(app)) == 2  # again: nothing new
    fill(app, order_id, 10, "COMPLETE")  # the rest filled: a new fact
    run_collect(app)
    with app.app_context():
        titles = set(db.session.execute(sa.select(Notification.title)).scalars())
    assert titles == {"Part filled BUY 4/10 INFY", "Filled BUY 10 INFY"}


def test_every_kind(app, factory, desk):
    rejected = order_in(factory, desk, desk.other, "REJECTED", reason="RMS: margin exceeds")
    doubt = order_in(factory, desk, desk.other, "UNKNOWN")
    failed = order_in(factory, desk, desk.mine, "FAILED", reason="login needed")
    with app.app_context():
        raise_alert("stop.fired", "Stop-loss fired for Asha Rao INFY", level="red", client_id=desk.mine.id)
        raise_alert("breaker.daily_loss", "Vikram Shah lost more than ₹5,000", level="red", client_id=desk.other.id)
        raise_alert("dayend.rolled", "the day rolled", level="info")  # info: not a breach
        audit.record("kill_switch.client.on", actor="tina", target=f"client:{desk.mine.id}", clients=[desk.mine.id])
        audit.record("kill_switch.desk.on", actor="boss", target="desk")
        client = db.session.get(Client, desk.other.id)
        client.session_enc, client.session_expires_at = "x", utcnow() + timedelta(minutes=20)
        db.session.commit()
    run_collect(app)
    notes = _notes(app)
    by_user = {}
    for uid, key, kind in notes:
        by_user.setdefault(uid, set()).add((key.split(":")[0], kind))
    assert by_user[desk.viewer.id] == {
        ("rejection", "rejection"),
        ("doubt", "doubt"),
        ("risk", "risk"),
        ("session", "session"),
    }
    assert by_user[desk.trader.id] == {("rejection", "rejection"), ("stop", "stop"), ("kill", "kill")}
    assert by_user[desk.admin.id] == by_user[desk.viewer.id] | by_user[desk.trader.id]  # and the desk kill
    assert sum(1 for uid, key, _ in notes if uid == desk.admin.id and key.startswith("kill:")) == 2
    keys = {key for _, key, _ in notes}
    assert {f"rejection:{rejected}", f"doubt:{doubt}", f"rejection:{failed}"} <= keys


def test_concurrent_runs_write_each_notification_and_delivery_once(app, factory, desk):
    with app.app_context():
        db.session.add(NotificationPrefs(user_id=desk.trader.id, email="tina@example.com", email_kinds="fill"))
        db.session.commit()
    orders = [order_in(factory, desk, desk.mine, "OPEN") for _ in range(6)]
    for order_id in orders:
        fill(app, order_id, 10, "COMPLETE")
    results, errors = [], []

    def run():
        try:
            results.append(run_collect(app, {"email"}))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    created = [nid for batch in results for nid in batch]
    assert len(created) == len(set(created)) == 12  # 6 fills × (admin, trader), each by one run only
    assert len(_notes(app)) == 12
    with app.app_context():
        deliveries = db.session.execute(sa.select(NotificationDelivery.notification_id)).scalars().all()
    assert len(deliveries) == len(set(deliveries)) == 6  # the trader's email: once per fill


def test_a_run_that_dies_before_commit_loses_nothing(app, factory, desk, monkeypatch):
    order_id = order_in(factory, desk, desk.mine, "REJECTED", reason="no")
    import webapp.notify.collect as collector

    def dies(*args, **kwargs):
        raise RuntimeError("worker killed")

    monkeypatch.setattr(collector, "announce", dies)  # after the commit: the rows exist, the toasts were lost
    with app.app_context():
        monkeypatch.setattr(db.session, "commit", dies)  # before the commit: nothing written, cursor unmoved
        try:
            collect(None)
        except RuntimeError:
            pass
        db.session.rollback()
        monkeypatch.undo()
        assert db.session.get(NotificationCursor, "orders") is None
    assert len(run_collect(app)) == 2
    assert {key for _, key, _ in _notes(app)} == {f"rejection:{order_id}"}


def test_a_late_commit_inside_the_settle_window_is_still_read(app, factory, desk):
    run_collect(app)  # the cursor now
    order_id = order_in(factory, desk, desk.mine, "REJECTED", reason="late")
    with app.app_context():  # written as if its transaction began a minute ago and committed after the last run
        db.session.execute(
            sa.text("UPDATE orders SET updated_at = :at WHERE id = :id"),
            {"at": utcnow() - timedelta(seconds=60), "id": order_id},
        )
        db.session.commit()
    run_collect(app)
    assert f"rejection:{order_id}" in {key for _, key, _ in _notes(app)}


def test_twin_clients_and_revoked_users_are_not_told(app, factory, desk):
    twin = factory.client(name="twin", twin_of_id=desk.mine.id)
    order_id = order_in(factory, desk, twin, "REJECTED", reason="paper")
    run_collect(app)
    assert not any(key == f"rejection:{order_id}" for _, key, _ in _notes(app))

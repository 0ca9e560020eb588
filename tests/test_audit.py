import hashlib

import pytest
import sqlalchemy as sa

from webapp import audit
from webapp.config import Config, ConfigError
from webapp.extensions import db
from webapp.models import AuditEvent, AuditHead

KEY_A, KEY_B = "a" * 16 + "-first-audit-key-A", "b" * 16 + "-second-audit-key-B"


def test_chain_verifies_and_reports_the_first_broken_link(app, runner):
    with app.app_context():
        for n in range(5):
            audit.record("test.event", actor="t", detail={"n": n})
        db.session.commit()
        assert audit.verify_chain().ok and audit.verify_chain().checked == 5
    assert "audit chain ok: 5 events" in runner.invoke(args=["audit", "verify"]).output
    with app.app_context():
        db.session.execute(sa.update(AuditEvent).where(AuditEvent.seq == 3).values(detail='{"n": 99}'))
        db.session.commit()
        report = audit.verify_chain()
        assert (report.broken_at, report.checked) == (3, 2)
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert "audit chain BROKEN at event 3: the hash matches no key of FANOUT_AUDIT_KEYS" in result.output


def test_deleted_event_breaks_the_chain(app):
    with app.app_context():
        for n in range(3):
            audit.record("test.event", detail={"n": n})
        db.session.commit()
        db.session.execute(sa.delete(AuditEvent).where(AuditEvent.seq == 2))
        db.session.commit()
        report = audit.verify_chain()
        assert report.broken_at == 3 and "sequence gap" in report.reason


def test_audit_page_lists_events_newest_first(app, client, auth, factory):
    factory.user("root", role="admin")
    auth.login("root")
    page = client.get("/admin/audit").data.decode()
    assert "login" in page and 'id="audit-1"' in page


def _events(app, n: int, keys: list[str] | None = None) -> None:
    if keys:
        app.config["FANOUT_AUDIT_KEYS"] = keys
    with app.app_context():
        for i in range(n):
            audit.record("test.event", actor="t", detail={"n": i})
        db.session.commit()


def _rewrite(app, from_seq: int, sign) -> None:
    """What someone with only database access can do: change an event and re-hash the chain
    from it onwards, head included, with whatever hash function they have."""
    with app.app_context():
        events = db.session.execute(sa.select(AuditEvent).order_by(AuditEvent.seq)).scalars().all()
        prev = events[from_seq - 2].hash if from_seq > 1 else audit.GENESIS
        events[from_seq - 1].detail = '{"n": 999}'
        for event in events[from_seq - 1 :]:
            event.prev_hash, event.hash = prev, sign(prev, event)
            prev = event.hash
        db.session.get(AuditHead, 1).hash = prev
        db.session.commit()


def _verify(app, runner):
    with app.app_context():
        report = audit.verify_chain()
    return report, runner.invoke(args=["audit", "verify"])


@pytest.mark.parametrize("deleted, broken_at", [((4, 5), 4), ((5,), 5), ((1, 2, 3, 4, 5), 1)])
def test_deleting_the_newest_events_is_caught_by_the_head(app, runner, deleted, broken_at):
    _events(app, 5)
    with app.app_context():
        db.session.execute(sa.delete(AuditEvent).where(AuditEvent.seq.in_(deleted)))
        db.session.commit()
    report, result = _verify(app, runner)
    assert (report.broken_at, report.checked) == (broken_at, broken_at - 1)
    assert result.exit_code == 1
    assert (
        f"audit chain BROKEN at event {broken_at}: the newest events were deleted: the head says the chain "
        f"ends at event 5, the last event left is {broken_at - 1}"
    ) in result.output


def test_head_rewound_without_its_hash_and_events_beyond_the_head_are_caught(app, runner):
    _events(app, 4)
    with app.app_context():
        db.session.execute(sa.delete(AuditEvent).where(AuditEvent.seq == 4))
        db.session.execute(sa.update(AuditHead).values(seq=3))  # the hash is still event 4's
        db.session.commit()
    report, _ = _verify(app, runner)
    assert (report.broken_at, "the newest event is not the one the head recorded" in report.reason) == (3, True)
    with app.app_context():
        head = db.session.get(AuditHead, 1)
        head.seq, head.hash = 2, db.session.execute(sa.select(AuditEvent.hash).where(AuditEvent.seq == 2)).scalar_one()
        db.session.commit()
    report, _ = _verify(app, runner)
    assert (report.broken_at, report.reason) == (3, "events after the head: the head says the chain ends at event 2")


def test_rewrite_with_plain_sha256_is_named_unkeyed(app, runner):
    _events(app, 5)
    _rewrite(app, 3, lambda prev, event: hashlib.sha256(audit._body(prev, event)).hexdigest())
    report, result = _verify(app, runner)
    assert (report.broken_at, report.checked) == (3, 2) and report.reason.startswith("unkeyed hash")
    assert "audit chain BROKEN at event 3: unkeyed hash" in result.output and result.exit_code == 1


def test_rewrite_with_another_key_is_caught(app, runner):
    _events(app, 5, keys=[KEY_A])
    _rewrite(app, 2, lambda prev, event: audit._sign("an attacker's own key, 32 chars+", prev, event))
    report, result = _verify(app, runner)
    assert (report.broken_at, report.reason) == (2, audit.FORGED)
    assert result.exit_code == 1


def test_rotation_then_rekey_then_the_old_key_goes(app, runner):
    _events(app, 3, keys=[KEY_A])
    _events(app, 2, keys=[KEY_B, KEY_A])  # the new key signs; the old links still verify
    report, result = _verify(app, runner)
    assert (report.ok, report.checked, report.old_key) == (True, 5, 3)
    assert "audit chain ok: 5 events" in result.output and "3 events are signed with an older key" in result.output
    app.config["FANOUT_AUDIT_KEYS"] = [KEY_B]
    assert _verify(app, runner)[0].broken_at == 1  # before rekey, the new key alone cannot vouch for them
    app.config["FANOUT_AUDIT_KEYS"] = [KEY_B, KEY_A]
    result = runner.invoke(args=["audit", "rekey"])
    assert result.exit_code == 0 and "re-signed 5 events" in result.output
    app.config["FANOUT_AUDIT_KEYS"] = [KEY_B]
    report, result = _verify(app, runner)
    assert (report.ok, report.checked, report.old_key) == (True, 5, 0) and result.exit_code == 0
    _events(app, 1)
    assert _verify(app, runner)[0].checked == 6
    app.config["FANOUT_AUDIT_KEYS"] = [KEY_A]
    assert _verify(app, runner)[0].reason == audit.FORGED


def test_rekey_migrates_an_unkeyed_chain_only_when_asked(app, runner):
    _events(app, 4)
    _rewrite(app, 1, lambda prev, event: hashlib.sha256(audit._body(prev, event)).hexdigest())  # as before the keys
    with app.app_context():
        before = db.session.execute(sa.select(AuditEvent.hash).order_by(AuditEvent.seq)).scalars().all()
    result = runner.invoke(args=["audit", "rekey"])
    assert result.exit_code == 1 and "unkeyed hash" in result.output and "nothing was re-signed" in result.output
    with app.app_context():
        assert db.session.execute(sa.select(AuditEvent.hash).order_by(AuditEvent.seq)).scalars().all() == before
    result = runner.invoke(args=["audit", "rekey", "--accept-unkeyed"])
    assert result.exit_code == 0 and "re-signed 4 events" in result.output and "4 were unkeyed" in result.output
    report, result = _verify(app, runner)
    assert report.ok and report.checked == 4 and result.exit_code == 0


def test_rekey_refuses_a_broken_chain_and_changes_nothing(app, runner):
    _events(app, 3)
    with app.app_context():
        db.session.execute(sa.update(AuditEvent).where(AuditEvent.seq == 2).values(actor="someone else"))
        db.session.commit()
    result = runner.invoke(args=["audit", "rekey", "--accept-unkeyed"])
    assert result.exit_code == 1 and "BROKEN at event 2" in result.output
    assert _verify(app, runner)[0].broken_at == 2


def test_audit_keys_are_required_outside_demo_mode():
    base = {"SECRET_KEY": "s", "FANOUT_ENCRYPTION_KEYS": ["k"], "REDIS_URL": "redis://x"}
    with pytest.raises(ConfigError, match="missing FANOUT_AUDIT_KEYS"):
        Config(**base).validate()
    with pytest.raises(ConfigError, match="at least 32 characters"):
        Config(**base, FANOUT_AUDIT_KEYS=["short"]).validate()
    Config(**base, FANOUT_AUDIT_KEYS=[KEY_A]).validate()
    Config(**base | {"SECRET_KEY": None}, DEMO_MODE=True).validate()
    assert Config.from_env({"FANOUT_AUDIT_KEYS": f"{KEY_B}, {KEY_A}"}).FANOUT_AUDIT_KEYS == [KEY_B, KEY_A]

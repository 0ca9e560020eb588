import sqlalchemy as sa

from webapp import audit
from webapp.extensions import db
from webapp.models import AuditEvent


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
    assert "audit chain BROKEN at event 3: contents changed after they were written" in result.output


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

"""Admin pages (issue 15): a new user starts as a Viewer, the favicon is served, and the audit trail
names clients and users, says its details as key: value text, filters and exports as CSV."""

import csv
import io
import re
from datetime import timedelta
from xml.etree import ElementTree

import pytest
import sqlalchemy as sa

from webapp import audit
from webapp.extensions import db
from webapp.models import AuditEvent, User
from webapp.timeutil import IST, utcnow


@pytest.fixture
def admin(factory, auth):
    user = factory.user("root", role="admin")
    auth.login("root")
    return user


def test_new_user_form_starts_at_viewer(client, admin):
    page = client.get("/admin/users/new").data.decode()
    selected = re.search(r'<select[^>]*name="role".*?</select>', page, re.S).group(0)
    assert re.search(r'<option selected value="viewer">|<option value="viewer" selected>', selected)
    assert "selected" not in re.search(r'<option[^>]*value="admin"[^>]*>', selected).group(0)


def test_a_user_created_without_choosing_a_role_is_a_viewer(app, client, admin):
    response = client.post("/admin/users/new", data={"username": "newbie", "password": "Sharp-trader-9"})
    assert response.status_code == 302
    with app.app_context():
        assert db.session.execute(sa.select(User.role).where(User.username == "newbie")).scalar_one() == "viewer"


def test_users_table_wraps_long_client_lists(client, admin, factory):
    clients = [factory.client(f"Client with a long name {n}") for n in range(12)]
    factory.user("many", role="trader", clients=clients)
    page = client.get("/admin/users").data.decode()
    assert 'class="panel table-scroll"' in page and '<td class="wrap">Client with a long name' in page


def test_favicon_is_served_as_svg(client):
    response = client.get("/static/favicon.svg")
    try:
        assert response.status_code == 200 and response.mimetype == "image/svg+xml"
        assert ElementTree.fromstring(response.data).tag.endswith("svg")
    finally:
        response.close()  # a file response holds the file open until closed


@pytest.fixture
def trail(app, factory, admin):
    alpha, beta = factory.client("Alpha Fund"), factory.client("Beta Trust")
    tara = factory.user("tara", role="trader")
    with app.app_context():
        audit.record(
            "batch.exit",
            actor_id=tara.id,
            actor="tara",
            target="batch:7",
            clients=[alpha.id, beta.id],
            detail={"legs": [{"client": alpha.id, "instrument": "NSE:INFY", "quantity": 3}], "reason": "=cmd|calc"},
        )
        audit.record("batch.ticket", actor="tara", detail={"quantities": {str(alpha.id): 5}})
        role = {"role": "viewer"}
        audit.record("user.update", actor_id=admin.id, actor="root", target=f"user:{tara.id}", detail=role)
        audit.record("client.update", actor="system", target=f"client:{beta.id}", clients=[beta.id], detail={})
        old = audit.record("client.update", actor="root", target=f"client:{alpha.id}", clients=[alpha.id])
        db.session.flush()
        old.created_at = utcnow() - timedelta(days=10)  # outside the date filter below (not re-hashed: a read test)
        db.session.commit()
    return alpha, beta, tara


def rows(html: str) -> list[str]:
    return re.findall(r'<tr id="audit-\d+">(.*?)</tr>', html, re.S)


def test_audit_names_clients_and_users_and_says_details(client, trail):
    alpha, beta, tara = trail
    page = client.get("/admin/audit").data.decode()
    exit_row = next(r for r in rows(page) if "batch.exit" in r)
    assert "Alpha Fund, Beta Trust" in exit_row
    assert '<span class="k">legs:</span> client=Alpha Fund, instrument=NSE:INFY, quantity=3' in exit_row
    assert "{" not in exit_row.split('class="detail"')[1]  # no raw JSON
    ticket_row = next(r for r in rows(page) if "batch.ticket" in r)
    assert '<span class="k">quantities:</span> Alpha Fund=5' in ticket_row
    user_row = next(r for r in rows(page) if "user.update" in r)
    assert "user tara" in user_row and '<span class="k">role:</span> viewer' in user_row


def test_audit_filters(client, trail):
    alpha, beta, tara = trail
    by_client = client.get(f"/admin/audit?client={beta.id}").data.decode()
    assert len(rows(by_client)) == 2 and all("Beta Trust" in r for r in rows(by_client))
    by_actor = rows(client.get("/admin/audit?actor=system").data.decode())
    assert len(by_actor) == 1 and "client.update" in by_actor[0]
    by_action = rows(client.get("/admin/audit?action=user.update").data.decode())
    assert len(by_action) == 1
    today = utcnow().astimezone(IST).date().isoformat()
    dated = rows(client.get(f"/admin/audit?client={alpha.id}&start={today}&end={today}").data.decode())
    assert len(dated) == 1 and "batch.exit" in dated[0]


@pytest.mark.parametrize(
    "query, message",
    [
        ("client=999999", "Choose a client from the list."),
        ("client=abc", "Choose a client from the list."),
        ("actor=nobody", "Choose someone from the list."),
        ("action=%3Cscript%3E", "Choose an action from the list."),
        ("start=2026-02-30", "Not a valid date value."),
        ("start=2026-01-10&end=2026-01-01", "The last day is before the first."),
    ],
)
def test_bad_filters_are_said_next_to_the_field(client, trail, query, message):
    response = client.get(f"/admin/audit?{query}")
    assert response.status_code == 200 and message in response.data.decode()


def test_audit_export_is_filtered_named_and_formula_safe(client, trail):
    alpha, beta, tara = trail
    response = client.get(f"/admin/audit/export.csv?client={alpha.id}")
    assert response.mimetype == "text/csv"
    exported = list(csv.DictReader(io.StringIO(response.data.decode())))
    assert [r["action"] for r in exported] == ["client.update", "batch.exit"]
    assert exported[1]["clients"] == "Alpha Fund, Beta Trust" and exported[0]["target"] == "client Alpha Fund"
    assert "legs: client=Alpha Fund" in exported[1]["detail"]
    assert "reason: =cmd|calc" in exported[1]["detail"]  # not at a cell's start: nothing to neutralise there
    by_actor = list(csv.DictReader(io.StringIO(client.get("/admin/audit/export.csv?actor=system").data.decode())))
    assert [r["actor"] for r in by_actor] == ["system"]


def test_audit_export_neutralises_a_formula_at_a_cell_start(app, client, admin):
    with app.app_context():
        audit.record("test.event", actor="root", target="=HYPERLINK(1)")
        db.session.commit()
    exported = list(csv.DictReader(io.StringIO(client.get("/admin/audit/export.csv?action=test.event").data.decode())))
    assert exported[0]["target"] == "'=HYPERLINK(1)"


def test_audit_pages_and_export_are_admin_only(client, auth, factory):
    factory.user("tara", role="trader")
    auth.login("tara")
    assert client.get("/admin/audit").status_code == 403
    assert client.get("/admin/audit/export.csv").status_code == 403


def test_older_events_keep_the_filters(app, client, trail):
    alpha, _, _ = trail
    with app.app_context():
        for _ in range(55):
            audit.record("client.update", actor="root", target=f"client:{alpha.id}", clients=[alpha.id])
        db.session.commit()
    page = client.get(f"/admin/audit?client={alpha.id}").data.decode()
    more = re.search(r'<tr hx-get="([^"]+)"', page).group(1).replace("&amp;", "&")
    assert f"client={alpha.id}" in more and "before=" in more
    older = client.get(more, headers={"HX-Request": "true"}).data.decode()
    assert rows(older) and all("Alpha Fund" in r for r in rows(older))
    with app.app_context():
        assert db.session.execute(sa.select(sa.func.count()).select_from(AuditEvent)).scalar_one() > 55

"""The role × route matrix: every route names a permission, and every role gets what the table says."""

import pytest

from webapp.permissions import PERMISSIONS, PUBLIC, ROLES

ROLES_AND_ANON = ("anonymous",) + ROLES


def routes(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        yield rule, app.view_functions[rule.endpoint]


def test_every_route_has_a_rule(app):
    missing = sorted(rule.rule for rule, view in routes(app) if not hasattr(view, "permission"))
    assert not missing, f"routes without a permission rule: {missing}"
    unknown = sorted({view.permission for _, view in routes(app)} - set(PERMISSIONS) - {PUBLIC})
    assert not unknown


@pytest.fixture
def world(app, factory):
    clients = [factory.client("Alpha"), factory.client("Beta")]
    instrument = factory.instrument()
    users = {role: factory.user(role, role=role, clients=clients) for role in ROLES}
    batch_id = factory.batch(users["trader"], clients, instrument).id
    with app.app_context():  # a child of it: the order book's per-order actions
        from webapp.extensions import db
        from webapp.models import Order

        order_id = db.session.execute(db.select(Order.id).where(Order.batch_id == batch_id)).scalars().first()
    from tests.backtest.runs_support import make_run_and_sweep
    from tests.deployments.conftest import make_deployment

    run_id, sweep_id = make_run_and_sweep(app, instrument.id)
    return {
        "run_id": run_id,
        "sweep_id": sweep_id,
        "deployment_id": make_deployment(app, clients, [instrument]),
        "user_id": users["viewer"].id,
        "client_id": clients[0].id,
        "instrument_id": instrument.id,
        "batch_id": batch_id,
        "order_id": order_id,
    }


def build(rule, ids):
    values = {arg: ids[arg] for arg in rule.arguments}
    path = rule.rule
    for arg, value in values.items():
        path = path.replace(f"<int:{arg}>", str(value)).replace(f"<{arg}>", str(value))
    return path


@pytest.mark.parametrize("who", ROLES_AND_ANON)
def test_role_route_matrix(app, client, auth, world, who):
    if who != "anonymous":
        auth.login(who)
    checked = 0
    for rule, view in routes(app):
        if rule.rule.startswith(("/api/", "/hooks/")):
            continue  # a key or a hook's secret, never a session: tests/api/test_matrix.py, tests/hooks/
        path = build(rule, world)
        method = "GET" if "GET" in rule.methods else "POST"
        if rule.endpoint == "auth.login" or rule.endpoint == "auth.logout":
            continue  # the login page redirects a logged-in user; logout would end this session
        if rule.websocket:
            continue  # only an upgrade matches it: tests/live/test_ws.py checks its handshake per role
        response = client.open(path, method=method, query_string={"broker": "paper"} if "credential" in path else None)
        permission = view.permission
        if permission == PUBLIC:
            assert response.status_code in (200, 503), (who, path, response.status_code)
        elif who == "anonymous":
            assert response.status_code == 302 and "/login" in response.headers["Location"], (
                path,
                response.status_code,
            )
        elif who not in PERMISSIONS[permission]:
            assert response.status_code == 403, (who, path, response.status_code)
        else:
            assert response.status_code not in (403, 500), (who, path, response.status_code)
            # a page, a redirect onwards, or 400/404 for missing input (POSTs sent empty); never to login
            assert response.status_code in (200, 302, 400, 404), (who, path, response.status_code)
            if method == "GET" and not rule.arguments - {"batch_id", "client_id", "instrument_id", "user_id"}:
                assert response.status_code in (200, 302) or "callback" in path, (who, path, response.status_code)
            assert "/login" not in response.headers.get("Location", ""), (who, path)
        checked += 1
    assert checked >= 15


def test_forbidden_access_is_audited(app, client, auth, factory):
    factory.user("vic", role="viewer")
    auth.login("vic")
    assert client.post("/admin/users/new", data={"username": "x"}).status_code == 403
    import sqlalchemy as sa

    from webapp.extensions import db
    from webapp.models import AuditEvent

    with app.app_context():
        event = db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "access.denied")).scalar_one()
        assert event.actor == "vic" and event.result == "denied" and event.target == "POST /admin/users/new"

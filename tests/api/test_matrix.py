"""Keys of every role and scope against every /api/v1 operation: what the permission table and the
scopes say, and nothing else. A key never reaches a client its user is not granted (404)."""

from __future__ import annotations

import itertools

import pytest

from tests.api.conftest import Api
from webapp.apikeys import scopes_for
from webapp.permissions import PERMISSIONS, ROLES

SCOPES = ("read", "trade", "admin")


def api_operations(app):
    """(rule, method, view) for every operation of the API (the contract and its docs page aside)."""
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if not rule.rule.startswith("/api/v1/") or not hasattr(view, "api_scope"):
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule, method, view


@pytest.fixture
def world(app, factory):
    from tests.backtest.runs_support import make_run_and_sweep
    from tests.deployments.conftest import make_deployment

    granted = [factory.client("Granted A"), factory.client("Granted B")]
    other = factory.client("Not granted")
    instrument = factory.instrument()
    users = {role: factory.user(f"{role}-user", role=role, clients=granted) for role in ROLES}
    batch_id = factory.batch(users["trader"], granted, instrument).id
    run_id, sweep_id = make_run_and_sweep(app, instrument.id)
    ids = {
        "client_id": granted[0].id,
        "instrument_id": instrument.id,
        "batch_id": batch_id,
        "user_id": users["viewer"].id,
        "deployment_id": make_deployment(app, granted, [instrument]),
        "run_id": run_id,
        "backtest_id": run_id,
        "sweep_id": sweep_id,
    }
    return {"users": users, "ids": ids, "other_client": other.id}


def build(rule, ids) -> str:
    path = rule.rule
    for arg in rule.arguments:
        path = path.replace(f"<int:{arg}>", str(ids.get(arg, 1))).replace(f"<{arg}>", str(ids.get(arg, 1)))
    return path


def call(api: Api, method: str, path: str):
    if method == "GET":
        return api.get(path)
    return api.client.open(path, method=method, json={}, headers=api._headers(None))


def key_choices(role):
    """Every non-empty set of scopes the role may hold."""
    allowed = scopes_for(role)
    for size in range(1, len(allowed) + 1):
        yield from itertools.combinations(allowed, size)


@pytest.mark.parametrize("role", ROLES)
def test_every_operation_answers_per_role_and_scope(app, client, make_key, world, role):
    user = world["users"][role]
    checked = 0
    for scopes in key_choices(role):
        api = Api(client, make_key(user, list(scopes), name="+".join(scopes)))
        for rule, method, view in api_operations(app):
            reply = call(api, method, build(rule, world["ids"]))
            where = (role, scopes, method, rule.rule, reply.status_code)
            assert reply.status_code < 500, where
            body = reply.get_json(silent=True)
            assert isinstance(body, dict) or reply.mimetype == "text/event-stream" or reply.status_code == 204, where
            if view.api_scope not in scopes:
                assert reply.status_code == 403 and body["error"]["code"] == "scope", where
            elif role not in PERMISSIONS[view.permission]:
                assert reply.status_code == 403 and body["error"]["code"] == "forbidden", where
            else:
                assert reply.status_code not in (401, 403), (where, body)
            reply.close()
            checked += 1
    assert checked >= 1


@pytest.mark.parametrize("role", [r for r in ROLES if r != "admin"])
def test_a_key_never_reaches_a_client_not_granted(app, client, make_key, world, role):
    user = world["users"][role]
    api = Api(client, make_key(user))
    ids = {**world["ids"], "client_id": world["other_client"]}
    reached = 0
    for rule, method, view in api_operations(app):
        if "client_id" not in rule.arguments or view.api_scope not in scopes_for(role):
            continue
        if role not in PERMISSIONS[view.permission]:
            continue
        reply = call(api, method, build(rule, ids))
        assert reply.status_code == 404, (role, method, rule.rule, reply.status_code, reply.get_json(silent=True))
        assert reply.get_json()["error"]["code"] == "not_found"
        reached += 1
    assert reached >= 5  # /clients/{id} and its funds, positions, holdings, orders, trades at least


def test_no_key_and_a_bad_key_are_401_everywhere(app, client, world):
    for rule, method, _view in api_operations(app):
        path = build(rule, world["ids"])
        for api in (Api(client, None), Api(client, "fo_" + "0" * 32)):
            reply = call(api, method, path)
            assert reply.status_code == 401, (method, rule.rule, reply.status_code)
            assert reply.get_json()["error"]["code"] == "unauthorized"

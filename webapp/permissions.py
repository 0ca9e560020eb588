"""The one permission table: what each role may do. Every route names a permission from it.

`requires(permission)` wraps a view: anonymous users go to the login page (an HX-Redirect for htmx
requests, so a login form is never swapped into a fragment); a role without the permission gets
403 and an `access.denied` audit event. `public` marks the few routes anyone may call. A test walks
the URL map and fails when a route carries neither.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from flask import abort, request
from flask_login import current_user

ROLES = ("admin", "trader", "limited", "viewer")
ROLE_LABELS = {"admin": "Admin", "trader": "Trader", "limited": "Limited trader", "viewer": "Viewer"}

_ALL = frozenset(ROLES)
PERMISSIONS: dict[str, frozenset[str]] = {
    "desk.view": _ALL,  # dashboards, books, instruments: read-only, own clients
    "account.self": _ALL,  # change own password, log out
    "orders.place": frozenset({"admin", "trader", "limited"}),
    "exits.all": frozenset({"admin", "trader"}),  # batch exits across clients, square off a client
    "kill.client": frozenset({"admin", "trader"}),
    "kill.desk": frozenset({"admin"}),
    "broker.connect": frozenset({"admin", "trader"}),  # daily broker logins for granted clients
    "users.manage": frozenset({"admin"}),
    "clients.manage": frozenset({"admin"}),
    "audit.view": frozenset({"admin"}),
    "health.detailed": frozenset({"admin"}),
    "health.processes": frozenset({"admin", "trader"}),  # the desk's strip of live processes per role
    "deployments.manage": frozenset({"admin", "trader"}),  # create, edit, start, pause, stop strategy deployments
    "automation.switch": frozenset({"admin"}),  # the desk-wide automation on/off switch
    "desk.risk": frozenset({"admin"}),  # the desk's daily loss limit and intraday square-off time
    "backtests.run": frozenset({"admin", "trader"}),  # run, sweep and cancel backtests (results: desk.view)
}
PUBLIC = "public"


def allowed(role: str | None, permission: str) -> bool:
    if permission == PUBLIC:
        return True
    return role in PERMISSIONS[permission]


def user_can(permission: str) -> bool:
    """For templates: does the current user hold this permission?"""
    return current_user.is_authenticated and allowed(current_user.role, permission)


def requires(permission: str) -> Callable:
    if permission not in PERMISSIONS:
        raise KeyError(f"unknown permission {permission!r}")

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args, **kwargs):
            from webapp.extensions import login_manager

            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if not allowed(current_user.role, permission):
                _deny(permission)
            return view(*args, **kwargs)

        wrapper.permission = permission
        return wrapper

    return decorate


def public(view: Callable) -> Callable:
    view.permission = PUBLIC
    return view


def _deny(permission: str) -> None:
    from webapp import audit
    from webapp.extensions import db

    audit.record(
        "access.denied",
        actor_id=current_user.id,
        actor=current_user.username,
        result="denied",
        target=f"{request.method} {request.path}",
        detail={"permission": permission},
        ip=request.remote_addr,
    )
    db.session.commit()
    abort(403)

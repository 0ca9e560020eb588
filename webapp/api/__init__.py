"""/api/v1: the desk through JSON (docs/api.md; the contract at /api/v1/openapi.json).

Authentication is by key only: `Authorization: Bearer <key>`. A session cookie is never read here
(so no CSRF token is needed and no CSRF hole opens), and a key is never accepted on a page. The key's
user becomes `current_user` for the request, so the pages' rules (webapp.access, webapp.permissions,
the ticket's review) decide everything, and every audit event written names the key.
"""

from __future__ import annotations

import math
import time

from flask import Blueprint, current_app, g, request
from flask_limiter import RateLimitExceeded
from werkzeug.exceptions import HTTPException

from webapp.api.core import ApiError
from webapp.extensions import csrf, limiter

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)

MAX_BODY = 256 * 1024  # a ticket for hundreds of clients is a few KiB
UNAUTHENTICATED = frozenset({"api.openapi", "api.docs", "api.docs_asset"})  # the contract and its docs page


def _rate_key() -> str:
    """Counted per presented key (its hash), before it is checked: a flood with one key is cut off
    whether or not the key is good; without a key, per address."""
    from webapp.apikeys import digest

    token = _bearer()
    return f"api-key:{digest(token)[:32]}" if token else f"api-ip:{request.remote_addr}"


limiter.limit(lambda: current_app.config["API_RATE_LIMIT"], key_func=_rate_key)(bp)


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


@bp.before_request
def authenticate():
    from webapp import apikeys as keys

    request.max_content_length = MAX_BODY
    if request.endpoint in UNAUTHENTICATED:
        return None
    token = _bearer()
    if token is None:
        raise ApiError(
            401,
            "unauthorized",
            "Send an API key as `Authorization: Bearer <key>` (session cookies are not accepted here).",
            headers={"WWW-Authenticate": 'Bearer realm="fanout"'},
        )
    key = keys.find_live(token[:200])
    if key is None:
        raise ApiError(
            401,
            "unauthorized",
            "This key is unknown, revoked or expired, or its user is deactivated.",
            headers={"WWW-Authenticate": 'Bearer realm="fanout", error="invalid_token"'},
        )
    if not keys.address_allowed(key, request.remote_addr):
        raise ApiError(403, "address_not_allowed", "This key may not be used from this address.")
    g.api_key, g.api_user = key, key.user
    g._login_user = key.user  # Flask-Login's current_user for this request: the key's user, never the session's
    keys.note_use(key, request.remote_addr)
    return None


@bp.errorhandler(ApiError)
def api_error(error: ApiError):
    from webapp.extensions import db

    db.session.rollback()
    return error.response()


@bp.errorhandler(RateLimitExceeded)
def rate_limited(error: RateLimitExceeded):
    retry = 60
    reset = getattr(limiter, "current_limit", None)
    if reset is not None:
        retry = max(1, math.ceil(reset.reset_at - time.time()))
    return ApiError(
        429,
        "rate_limited",
        f"Too many requests for this key: {error.description}.",
        headers={"Retry-After": str(retry)},
    ).response()


@bp.errorhandler(HTTPException)
def http_error(error: HTTPException):
    code = error.code or 500
    names = {
        400: ("bad_request", "The request was not understood."),
        404: ("not_found", "Nothing here: it does not exist or is not yours to see."),
        405: ("method_not_allowed", "This method is not allowed here."),
        413: ("too_large", f"The body is larger than {MAX_BODY // 1024} KiB."),
    }
    name, message = names.get(code, ("error", error.description or "Error"))
    return ApiError(code, name, message).response()


from webapp.api import (  # noqa: E402,F401  (the operations register on bp)
    admin,
    automation,
    batches,
    clients,
    exits,
    instruments,
    meta,
    stream,
    tickets,
)

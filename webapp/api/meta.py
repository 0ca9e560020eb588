"""The contract and who is calling: /api/v1/openapi.json, the interactive docs page, /api/v1/me."""

from __future__ import annotations

from pathlib import Path

from flask import abort, current_app, render_template, send_from_directory
from pydantic import BaseModel

from webapp.access import accessible_client_ids
from webapp.api import bp
from webapp.api.core import operation, replies, spec
from webapp.permissions import public

# Swagger UI's files, from the offapi package (served from this desk: no CDN, works offline)
DOCS_ASSETS = {"swagger_bundle.js", "swagger_preset.js", "swagger_style.css"}
# Swagger UI styles its widgets with style attributes: this one page allows inline styles (no user
# content is drawn on it); scripts stay 'self' only
DOCS_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@bp.get("/openapi.json")
@public
def openapi():
    return current_app.json.response(spec.spec)


@bp.get("/docs")
@public
def docs():
    response = current_app.make_response(render_template("api/docs.html"))
    response.headers["Content-Security-Policy"] = DOCS_POLICY
    return response


@bp.get("/docs/assets/<name>")
@public
def docs_asset(name: str):
    if name not in DOCS_ASSETS:
        abort(404)
    import offapi

    return send_from_directory(Path(offapi.__file__).parent, name, max_age=86400)


class Me(BaseModel):
    user_id: int
    username: str
    role: str
    key_id: int
    key_name: str
    scopes: list[str]
    clients: int  # how many clients this key can see and act for


@bp.get("/me")
@operation("desk.view", scope="read", replies=replies(Me), tag="account")
def me():
    """Who this key acts as: its user, role, scopes and how many clients it reaches."""
    from flask import g

    key, user = g.api_key, g.api_user
    return Me(
        user_id=user.id,
        username=user.username,
        role=user.role,
        key_id=key.id,
        key_name=key.name,
        scopes=key.scope_list,
        clients=len(accessible_client_ids(user)),
    )

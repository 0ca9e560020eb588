"""The key pages' one path to the domain (webapp.apikeys): the account page and the admin user page
both make and revoke keys through these two functions, so they answer bad input the same way."""

from __future__ import annotations

from flask import abort, request

from webapp.apikeys import KeyProblem, create_key, keys_of, revoke_key
from webapp.auth.forms import ApiKeyForm
from webapp.extensions import db
from webapp.inputs import record_id
from webapp.models import ApiKey, User
from webapp.timeutil import utcnow

# KeyProblem names the domain's fields; the form calls the expiry `expires`
FORM_FIELD = {"name": "name", "scopes": "scopes", "allowed_ips": "allowed_ips", "expires_at": "expires"}


def create_from_form(form: ApiKeyForm, owner: User, by: User) -> str | None:
    """The new key's text (shown once, never stored), committed; or None with a message on each bad field
    and nothing written."""
    if not form.validate_on_submit():
        return None
    try:
        _, text = create_key(
            owner,
            name=form.name.data or "",
            scopes=list(form.scopes.data or []),
            allowed_ips=form.allowed_ips.data or "",
            expires_at=form.expires_at(),
            by=by,
            ip=request.remote_addr,
        )
    except KeyProblem as problem:
        db.session.rollback()
        for field, message in problem.fields.items():
            getattr(form, FORM_FIELD[field]).errors.append(message)
        return None
    db.session.commit()
    return text


def revoke_owned(owner: User, by: User) -> str:
    """Revoke the `owner`'s key the form names (`key_id`) at once and say so; 404 when it is not theirs
    (so a key id tells nobody whose it is)."""
    key_id = record_id(request.form.get("key_id"))
    key = db.session.get(ApiKey, key_id) if key_id is not None else None
    if key is None or key.user_id != owner.id:
        abort(404)
    if not revoke_key(key, by=by, ip=request.remote_addr):
        return f"Key {key.label} was already revoked."
    db.session.commit()
    return f"Key {key.label} revoked: it no longer works."


def key_section(owner: User, form: ApiKeyForm, *, new_key: str | None, create_url: str, revoke_url: str) -> dict:
    """What templates/auth/_keys.html draws: the owner's keys, the create form, the key made just now."""
    return {
        "key_owner": owner,
        "keys": keys_of(owner),
        "key_form": form,
        "new_key": new_key,
        "create_url": create_url,
        "revoke_url": revoke_url,
        "now": utcnow(),
    }


def shown_once(response):
    """A page holding a new key's text is never cached, by the browser or anything between."""
    response.headers["Cache-Control"] = "no-store"
    return response

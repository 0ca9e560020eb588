"""Admin operations on users and clients, and the rules their inputs must pass, for the admin pages
and the API alike (each rule's message is the one shown next to the field). Each operation writes an
audit event in the same transaction. A password reset, a deactivation or reactivation, and a change of
role or grants end the user's sessions (webapp/auth/sessions.py) as part of that audited action."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email

from webapp import audit
from webapp.auth.sessions import ACCESS_CHANGED, end_sessions
from webapp.brokers import broker_class
from webapp.extensions import db
from webapp.models import Client, User
from webapp.permissions import allowed
from webapp.security import hash_password, password_problem
from webapp.timeutil import utcnow
from webapp.vault import Vault

RISK_FIELDS = (
    "max_order_value",
    "max_quantity",
    "max_orders_per_day",
    "max_open_positions",
    "max_daily_loss",
    "max_drawdown",  # from the day's peak MTM: the drawdown breaker (webapp/automation/breakers.py)
)
USER_LIMITS = ("max_position_value", "max_daily_loss", "max_orders_per_day")
MAX_PASSWORD = 256  # argon2 hashes any length; a megabyte "password" is only a way to burn CPU
USERNAME = re.compile(r"[A-Za-z0-9_.-]+")
CLIENT_CODE = re.compile(r"[A-Za-z0-9_-]+")
PRODUCTS = {"CNC": "Delivery (CNC)", "MIS": "Intraday (MIS)", "MTF": "MTF"}


# --- the rules (None: acceptable) ------------------------------------------------------------------


def username_problem(username: str) -> str | None:
    name = (username or "").strip()
    if not name:
        return "Choose a username."
    if not 3 <= len(name) <= 64:
        return "3 to 64 characters."
    if not USERNAME.fullmatch(name):
        return "Letters, digits, dot, dash and underscore only."
    taken = db.session.execute(sa.select(User.id).where(sa.func.lower(User.username) == name.lower())).first()
    return "That username is taken." if taken else None


def email_problem(email: str | None) -> str | None:
    if not email:
        return None
    if len(email) > 255:
        return "At most 255 characters."
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError:
        return "Not an email address."
    return None


def new_password_problem(password: str | None, username: str) -> str | None:
    """An initial or reset password: given, not too long, and past the password policy."""
    if not password:
        return "Set an initial password."
    if len(password) > MAX_PASSWORD:
        return f"At most {MAX_PASSWORD} characters."
    return password_problem(password, username or "")


def self_change_problem(actor: User, user: User, *, role: str | None = None, active: bool | None = None) -> str | None:
    """An admin may not lock themselves out: neither drop their own admin role nor deactivate themselves."""
    if user.id != actor.id:
        return None
    if role is not None and not allowed(role, "users.manage"):
        return "You cannot remove your own admin role."
    if active is False:
        return "You cannot deactivate yourself."
    return None


def unknown_client_ids(ids: list[int]) -> list[int]:
    """The ids among `ids` that name no client (a grant must name real clients)."""
    if not ids:
        return []
    found = set(db.session.execute(sa.select(Client.id).where(Client.id.in_(ids))).scalars())
    return [i for i in ids if i not in found]


def client_code_problem(broker: str, code: str, client: Client | None) -> str | None:
    code = (code or "").strip()
    if not code:
        return "Enter the client's code at the broker."
    if len(code) > 64:
        return "At most 64 characters."
    if not CLIENT_CODE.fullmatch(code):
        return "Letters, digits, dash and underscore only."
    clash = sa.select(Client.id).where(Client.broker == broker, sa.func.upper(Client.client_code) == code.upper())
    if client is not None:
        clash = clash.where(Client.id != client.id)
    if db.session.execute(clash).first():
        return f"Another client already uses code {code} at this broker."
    return None


def products_problem(products: list[str]) -> str | None:
    if not products:
        return "Allow at least one product."
    if any(p not in PRODUCTS for p in products):
        return "Choose products from CNC, MIS and MTF."
    return None


def missing_credentials(client: Client, vault: Vault) -> list[str]:
    """The names (never the values) of the required credential fields this client has no value for."""
    stored = vault.decrypt(client.credentials_enc) if client.credentials_enc else {}
    return sorted(errors) if (errors := credential_errors(client.broker, {}, stored)) else []


# --- the operations --------------------------------------------------------------------------------


def _clients(ids: list[int]) -> list[Client]:
    return list(db.session.execute(sa.select(Client).where(Client.id.in_(ids))).scalars()) if ids else []


def create_user(
    actor: User,
    *,
    username: str,
    email: str | None,
    role: str,
    password: str,
    client_ids: list[int],
    ip: str | None,
    limits: dict | None = None,
) -> User:
    user = User(
        username=username.strip(),
        email=email or None,
        role=role,
        active=True,
        password_hash=hash_password(password),
        password_changed_at=utcnow(),
        **(limits or {}),
    )
    user.clients = _clients(client_ids)
    db.session.add(user)
    db.session.flush()
    audit.record(
        "user.created",
        actor_id=actor.id,
        actor=actor.username,
        target=f"user:{user.id}",
        clients=client_ids,
        detail={"username": user.username, "role": role},
        ip=ip,
    )
    return user


def update_user(
    actor: User,
    user: User,
    *,
    email: str | None,
    role: str,
    client_ids: list[int],
    ip: str | None,
    limits: dict | None = None,
) -> None:
    before = {
        "role": user.role,
        "clients": sorted(c.id for c in user.clients),
        "email": user.email,
        **{k: getattr(user, k) for k in USER_LIMITS},
    }
    user.email, user.role = email or None, role
    for name, value in (limits or {}).items():
        setattr(user, name, value)
    user.clients = _clients(client_ids)
    if before["role"] != role or before["clients"] != sorted(c.id for c in user.clients):
        end_sessions(user, ACCESS_CHANGED)  # pages log in again; open sockets close
    after = {"role": role, "clients": sorted(client_ids), "email": user.email, **(limits or {})}
    audit.record(
        "user.updated",
        actor_id=actor.id,
        actor=actor.username,
        target=f"user:{user.id}",
        clients=set(before["clients"]) | set(client_ids),
        detail={"before": before, "after": after},
        ip=ip,
    )


def set_user_active(actor: User, user: User, active: bool, ip: str | None) -> None:
    user.active = active
    end_sessions(user)  # on reactivation too: a cookie from before the deactivation stays dead
    audit.record(
        "user.reactivated" if active else "user.deactivated",
        actor_id=actor.id,
        actor=actor.username,
        target=f"user:{user.id}",
        ip=ip,
    )


def reset_password(actor: User, user: User, password: str, ip: str | None) -> None:
    user.password_hash = hash_password(password)
    user.password_changed_at = utcnow()
    end_sessions(user)
    audit.record("user.password_reset", actor_id=actor.id, actor=actor.username, target=f"user:{user.id}", ip=ip)


def credential_errors(broker: str, submitted: Mapping[str, str], existing: Mapping[str, Any]) -> dict[str, str]:
    """Required credential fields must be given, unless a stored value is kept (left blank on edit)."""
    errors = {}
    for field in broker_class(broker).credential_fields:
        if field.required and not submitted.get(field.name) and not existing.get(field.name):
            errors[field.name] = f"Enter the {field.label}."
    return errors


def save_client(
    actor: User,
    client: Client | None,
    vault: Vault,
    *,
    values: Mapping[str, Any],
    credentials: Mapping[str, str],
    ip: str | None,
) -> Client:
    """Create or update a client. Blank credential inputs keep the stored value."""
    creating = client is None
    if creating:
        client = Client()
        db.session.add(client)
    old_broker = client.broker
    for name in ("name", "broker", "client_code", "algo_id", "enabled", *RISK_FIELDS):
        setattr(client, name, values.get(name))
    client.allowed_products = ",".join(values["allowed_products"])
    stored = vault.decrypt(client.credentials_enc) if not creating and old_broker == client.broker else {}
    fields = {f.name for f in broker_class(client.broker).credential_fields}
    merged = {k: v for k, v in stored.items() if k in fields}
    merged.update({k: v for k, v in credentials.items() if k in fields and v})
    client.credentials_enc = vault.encrypt(merged) if merged else None
    if not creating and old_broker != client.broker:
        client.session_enc, client.session_expires_at = None, None
    db.session.flush()
    changed = sorted(k for k, v in credentials.items() if v)
    audit.record(
        "client.created" if creating else "client.updated",
        actor_id=actor.id,
        actor=actor.username,
        target=f"client:{client.id}",
        clients=[client.id],
        detail={
            "name": client.name,
            "broker": client.broker,
            "client_code": client.client_code,
            "enabled": client.enabled,
            "credentials_changed": changed,
        },
        ip=ip,
    )
    return client

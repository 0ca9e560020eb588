"""API keys: made, checked and revoked here (the account page and the admin pages call these).

A key is `fo_` and 32 random characters of [A-Za-z0-9] (190 bits). Only its SHA-256 is stored, with
its first characters to tell keys apart; the full text is shown once, when it is made. A key acts as
its user: the user's role and client grants decide everything, and its scopes can only narrow that.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import string
from datetime import datetime, timedelta

import sqlalchemy as sa

from webapp import audit
from webapp.extensions import db
from webapp.models import ApiKey, User
from webapp.models.api import SCOPES
from webapp.timeutil import utcnow

ALPHABET = string.ascii_letters + string.digits
KEY_CHARS = 32
PREFIX = "fo_"
MAX_NETWORKS = 20
MAX_KEYS_PER_USER = 20
LAST_USED_EVERY = timedelta(seconds=60)  # last_used_at is written at most this often per key

ROLE_SCOPES = {
    "admin": ("read", "trade", "admin"),
    "trader": ("read", "trade"),
    "limited": ("read", "trade"),
    "viewer": ("read",),
}


class KeyProblem(ValueError):
    """A key that cannot be made as asked; `fields` holds a message per form field."""

    def __init__(self, fields: dict[str, str]):
        super().__init__("; ".join(fields.values()))
        self.fields = fields


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def scopes_for(role: str | None) -> tuple[str, ...]:
    return ROLE_SCOPES.get(role or "", ())


def parse_networks(raw: str) -> list[str]:
    """`10.0.0.0/8, 203.0.113.7` → canonical networks; ValueError with a message for anything else."""
    parts = [p for p in raw.replace(",", " ").split() if p]
    if len(parts) > MAX_NETWORKS:
        raise ValueError(f"At most {MAX_NETWORKS} addresses or networks.")
    networks = []
    for part in parts:
        try:
            networks.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise ValueError(
                f"{part[:45]!r} is not an IP address or network (like 203.0.113.7 or 10.0.0.0/8)."
            ) from None
    return list(dict.fromkeys(networks))


def address_allowed(key: ApiKey, address: str | None) -> bool:
    if not key.allowed_ips:
        return True
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(n) for n in key.allowed_ips.split(","))


def create_key(
    user: User,
    *,
    name: str,
    scopes: list[str],
    allowed_ips: str = "",
    expires_at: datetime | None = None,
    by: User,
    ip: str | None = None,
) -> tuple[ApiKey, str]:
    """A new key for `user` (made by `by`: the user, or an admin) and its text, shown once. The caller commits."""
    errors: dict[str, str] = {}
    name = name.strip()
    if not name or len(name) > 64:
        errors["name"] = "Name the key (at most 64 characters), e.g. what will use it."
    unknown = [s for s in scopes if s not in SCOPES]
    if not scopes or unknown:
        errors["scopes"] = "Choose at least one scope: read, trade or admin."
    elif wider := [s for s in scopes if s not in scopes_for(user.role)]:
        errors["scopes"] = f"A {user.role}'s key cannot hold {', '.join(wider)}."
    try:
        networks = parse_networks(allowed_ips)
    except ValueError as exc:
        errors["allowed_ips"] = str(exc)
        networks = []
    if ",".join(networks) and len(",".join(networks)) > 1024:
        errors["allowed_ips"] = "Too many networks."
    if expires_at is not None and expires_at <= utcnow():
        errors["expires_at"] = "The expiry must be in the future."
    live = db.session.execute(
        sa.select(sa.func.count()).select_from(ApiKey).where(ApiKey.user_id == user.id, ApiKey.revoked_at.is_(None))
    ).scalar_one()
    if live >= MAX_KEYS_PER_USER:
        errors["name"] = f"At most {MAX_KEYS_PER_USER} live keys per user; revoke one first."
    if errors:
        raise KeyProblem(errors)
    text = PREFIX + "".join(secrets.choice(ALPHABET) for _ in range(KEY_CHARS))
    key = ApiKey(
        user_id=user.id,
        name=name,
        prefix=text[:10],
        key_hash=digest(text),
        scopes=",".join(s for s in SCOPES if s in scopes),
        allowed_ips=",".join(networks),
        expires_at=expires_at,
        created_by_id=by.id,
    )
    db.session.add(key)
    db.session.flush()
    audit.record(
        "apikey.create",
        actor_id=by.id,
        actor=by.username,
        target=f"user:{user.id}",
        ip=ip,
        detail={"key": key.label, "scopes": key.scopes, "allowed_ips": key.allowed_ips, "expires_at": expires_at},
    )
    return key, text


def revoke_key(key: ApiKey, *, by: User, ip: str | None = None) -> bool:
    """Revoke at once (the next request with it fails). False when it was revoked already. The caller commits."""
    if key.revoked_at is not None:
        return False
    key.revoked_at = utcnow()
    audit.record(
        "apikey.revoke",
        actor_id=by.id,
        actor=by.username,
        target=f"user:{key.user_id}",
        ip=ip,
        detail={"key": key.label},
    )
    return True


def keys_of(user: User) -> list[ApiKey]:
    return list(
        db.session.execute(sa.select(ApiKey).where(ApiKey.user_id == user.id).order_by(ApiKey.id.desc())).scalars()
    )


def find_live(text: str) -> ApiKey | None:
    """The key this text names, when it is live: not revoked, not expired, its user active. None otherwise
    (one answer for all: a caller learns nothing about which keys exist)."""
    if not text.startswith(PREFIX) or len(text) != len(PREFIX) + KEY_CHARS:
        return None
    key = db.session.execute(sa.select(ApiKey).where(ApiKey.key_hash == digest(text), live())).scalar_one_or_none()
    if key is None or key.user is None or not key.user.active:
        return None
    return key


def live() -> sa.ColumnElement[bool]:
    """The one rule of a live key (its user's `active` is checked apart): not revoked, not expired."""
    return sa.and_(ApiKey.revoked_at.is_(None), sa.or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > utcnow()))


def live_key_ids(key_ids: set[int]) -> set[int]:
    """Which of these keys are live (the order streams' recheck, webapp/feed/hub.py)."""
    if not key_ids:
        return set()
    return set(db.session.execute(sa.select(ApiKey.id).where(ApiKey.id.in_(key_ids), live())).scalars())


def note_use(key: ApiKey, address: str | None) -> None:
    """Record the last use, at most once a minute per key (a write per request would cost every call)."""
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_EVERY or key.last_used_ip != address:
        db.session.execute(
            sa.update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now, last_used_ip=(address or "")[:45])
        )
        db.session.commit()

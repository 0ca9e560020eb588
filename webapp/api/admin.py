"""/api/v1/admin: users and clients, for admins (scope `admin`). The same operations and the same rules,
with the same messages, as the admin pages: both call webapp.admin.services.

Broker credentials never pass through the API, in or out: a client's keys, secrets and passwords are
entered on its admin page only. A reply says which required credential fields are still empty (their
names, never a value), and a body naming a credential field is refused as an unknown field.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

import sqlalchemy as sa
from flask import g, request
from pydantic import BaseModel, Field

from webapp.api import bp
from webapp.api.core import (
    ApiError,
    DecimalIn,
    Id,
    Money,
    Page,
    PageQuery,
    Strict,
    operation,
    paged,
    replies,
)
from webapp.automation.deployments import PRODUCTS
from webapp.brokers import broker_names
from webapp.extensions import db
from webapp.inputs import MAX_IDS, MAX_INT
from webapp.models import Client, User
from webapp.permissions import ROLES
from webapp.vault import current_vault

TAG = "admin"
# a write on /.../{id}: an id the router refuses (0, past INTEGER) answers 405 there; 409 an Idempotency-Key in use
ID_WRITE = (405, 409)


def _admin():
    """webapp.admin.services, imported late: the admin package imports its pages, which import the key
    pages' helpers, which import this API package (a cycle at import time, none at call time)."""
    from webapp.admin import services

    return services


Role = Literal[ROLES]  # type: ignore[valid-type]
Product = Literal[tuple(PRODUCTS)]  # type: ignore[valid-type]
Amount = DecimalIn(18, 4, minimum=Decimal(0))  # the limits' NUMERIC(18, 4) columns, zero or more
Count = Field(None, ge=0, le=MAX_INT)
MAX_TEXT = 512  # a bound for the schema; the rules below give the field's own limit and message


# --- users -----------------------------------------------------------------------------------------


class UserOut(BaseModel):
    id: int
    username: str
    email: str | None
    role: str
    active: bool
    client_ids: list[int] = Field(description="The clients granted to this user (an admin sees every client).")
    max_position_value: Money | None = Field(description="Max order value across clients, rupees (null: none).")
    max_daily_loss: Money | None = Field(description="Max daily loss across clients, rupees (null: none).")
    max_orders_per_day: int | None
    last_login_at: datetime | None
    created_at: datetime


def _user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        username=user.username,
        email=user.email,
        role=user.role,
        active=user.active,
        client_ids=sorted(c.id for c in user.clients),
        max_position_value=user.max_position_value,
        max_daily_loss=user.max_daily_loss,
        max_orders_per_day=user.max_orders_per_day,
        last_login_at=user.last_login_at,
        created_at=user.created_at,
    )


class UserLimits(Strict):
    max_position_value: Amount | None = None
    max_daily_loss: Amount | None = None
    max_orders_per_day: int | None = Count


class UserIn(UserLimits):
    username: str = Field(max_length=MAX_TEXT, description="3 to 64 letters, digits, dot, dash and underscore.")
    email: str | None = Field(None, max_length=MAX_TEXT)
    role: Role
    password: str = Field(max_length=4096, description="The initial password (the desk's password policy).")
    client_ids: list[Id] = Field(default_factory=list, max_length=MAX_IDS, description="Clients granted.")


class UserPatch(UserLimits):
    """Only the fields sent change; a limit sent as null is removed."""

    email: str | None = Field(None, max_length=MAX_TEXT)
    role: Role | None = None
    active: bool | None = Field(None, description="false deactivates: sessions end and API keys stop at once.")
    client_ids: list[Id] | None = Field(None, max_length=MAX_IDS)


def _user(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise ApiError(404, "not_found", "No such user.")
    return user


def _refuse(fields: dict[str, str | None]) -> None:
    problems = {name: message for name, message in fields.items() if message}
    if problems:
        raise ApiError(422, "invalid", "Some fields are not valid; see `fields`.", problems)


def _grants_problem(ids: list[int] | None) -> str | None:
    if ids and (unknown := _admin().unknown_client_ids(ids)):
        return f"No such client (id {', '.join(str(i) for i in unknown[:10])}): choose clients from the list."
    return None


@bp.get("/admin/users")
@operation("users.manage", scope="admin", replies=replies(Page[UserOut]), tag=TAG)
def admin_list_users(query: PageQuery):
    """List the desk's users, by username."""
    return paged(sa.select(User).order_by(User.username, User.id), query, UserOut, _user_out)


@bp.post("/admin/users")
@operation("users.manage", scope="admin", replies=replies(UserOut, status=201, extra=(409,)), tag=TAG, idempotent=True)
def admin_create_user(json: UserIn):
    """Create a user with a role, an initial password, client grants and limits."""
    _refuse(
        {
            "username": _admin().username_problem(json.username),
            "email": _admin().email_problem(json.email),
            "password": _admin().new_password_problem(json.password, json.username.strip()),
            "client_ids": _grants_problem(json.client_ids),
        }
    )
    ids = list(dict.fromkeys(json.client_ids))
    user = _admin().create_user(
        g.api_user,
        username=json.username,
        email=json.email,
        role=json.role,
        password=json.password,
        client_ids=ids,
        ip=request.remote_addr,
        limits={name: getattr(json, name) for name in _admin().USER_LIMITS},
    )
    db.session.commit()
    return _user_out(user), 201


@bp.get("/admin/users/<int:user_id>")
@operation("users.manage", scope="admin", replies=replies(UserOut), tag=TAG)
def admin_get_user(user_id: int):
    """One user: role, active, grants and limits."""
    return _user_out(_user(user_id))


@bp.patch("/admin/users/<int:user_id>")
@operation("users.manage", scope="admin", replies=replies(UserOut, extra=ID_WRITE), tag=TAG, idempotent=True)
def admin_update_user(user_id: int, json: UserPatch):
    """Change a user's role, grants, limits or email, or (de)activate them (deactivating ends their
    sessions and stops their API keys at once)."""
    user = _user(user_id)
    sent = json.model_fields_set
    actor = g.api_user
    nulls = {"role", "active", "client_ids"} & sent
    _refuse({name: "May not be null." for name in nulls if getattr(json, name) is None})
    _refuse(
        {
            "role": _admin().self_change_problem(actor, user, role=json.role),
            "active": _admin().self_change_problem(actor, user, active=json.active),
            "email": _admin().email_problem(json.email) if "email" in sent else None,
            "client_ids": _grants_problem(json.client_ids),
        }
    )
    changes = {"email", "role", "client_ids", *_admin().USER_LIMITS} & sent
    if changes:
        _admin().update_user(
            actor,
            user,
            email=json.email if "email" in sent else user.email,
            role=json.role or user.role,
            client_ids=list(dict.fromkeys(json.client_ids))
            if json.client_ids is not None
            else [c.id for c in user.clients],
            ip=request.remote_addr,
            limits={name: getattr(json, name) for name in _admin().USER_LIMITS if name in sent},
        )
    if json.active is not None and json.active != user.active:
        _admin().set_user_active(actor, user, json.active, request.remote_addr)
    db.session.commit()
    return _user_out(user)


# --- clients ---------------------------------------------------------------------------------------


class ClientAdminOut(BaseModel):
    id: int
    name: str
    broker: str
    client_code: str
    algo_id: str | None
    enabled: bool
    killed: bool
    allowed_products: list[str]
    max_order_value: Money | None
    max_quantity: int | None
    max_orders_per_day: int | None
    max_open_positions: int | None
    max_daily_loss: Money | None
    max_drawdown: Money | None = Field(description="From the day's peak MTM, rupees (null: none).")
    session: Literal["connected", "expired", "none"]
    credentials_missing: list[str] = Field(
        description="Names of the broker's required credential fields with no value yet (enter them on the "
        "client's admin page; the API never takes or shows credentials)."
    )
    created_at: datetime


def _client_out(client: Client) -> ClientAdminOut:
    return ClientAdminOut(
        id=client.id,
        name=client.name,
        broker=client.broker,
        client_code=client.client_code,
        algo_id=client.algo_id,
        enabled=client.enabled,
        killed=client.kill_switch,
        allowed_products=client.allowed_product_list,
        max_order_value=client.max_order_value,
        max_quantity=client.max_quantity,
        max_orders_per_day=client.max_orders_per_day,
        max_open_positions=client.max_open_positions,
        max_daily_loss=client.max_daily_loss,
        max_drawdown=client.max_drawdown,
        session=client.session_state(),
        credentials_missing=_admin().missing_credentials(client, current_vault()),
        created_at=client.created_at,
    )


class ClientRisk(Strict):
    max_order_value: Amount | None = None
    max_quantity: int | None = Count
    max_orders_per_day: int | None = Count
    max_open_positions: int | None = Count
    max_daily_loss: Amount | None = None
    max_drawdown: Amount | None = None


class ClientIn(ClientRisk):
    name: str = Field(min_length=1, max_length=120)
    broker: str = Field(max_length=32, description="A broker the desk has an adapter for (`paper`, `kite`, ...).")
    client_code: str = Field(max_length=MAX_TEXT, description="The client's code at the broker.")
    algo_id: str | None = Field(None, max_length=64)
    enabled: bool = True
    allowed_products: list[Product] = Field(default_factory=lambda: list(PRODUCTS), max_length=3)


class ClientPatch(ClientRisk):
    """Only the fields sent change; a limit sent as null is removed."""

    name: str | None = Field(None, min_length=1, max_length=120)
    broker: str | None = Field(None, max_length=32)
    client_code: str | None = Field(None, max_length=MAX_TEXT)
    algo_id: str | None = Field(None, max_length=64)
    enabled: bool | None = None
    allowed_products: list[Product] | None = Field(None, max_length=3)


def _client(client_id: int) -> Client:
    client = db.session.get(Client, client_id)
    if client is None:
        raise ApiError(404, "not_found", "No such client.")
    return client


def _save_client(client: Client | None, values: dict) -> Client:
    broker, code = values["broker"], (values["client_code"] or "").strip()
    products = list(dict.fromkeys(values["allowed_products"] or []))
    _refuse(
        {
            "name": None if (values["name"] or "").strip() else "Name the client.",
            "broker": None if broker in broker_names() else "Not a valid choice.",
            "client_code": _admin().client_code_problem(broker, code, client),
            "allowed_products": _admin().products_problem(products),
        }
    )
    values = {
        **values,
        "name": values["name"].strip(),
        "client_code": code,
        "algo_id": (values["algo_id"] or "").strip() or None,
        "allowed_products": products,
    }
    # no credentials from here: blank ones keep what the admin page stored (a new broker: none yet)
    saved = _admin().save_client(
        g.api_user, client, current_vault(), values=values, credentials={}, ip=request.remote_addr
    )
    db.session.commit()
    return saved


def _client_fields() -> tuple[str, ...]:
    return ("name", "broker", "client_code", "algo_id", "enabled", "allowed_products", *_admin().RISK_FIELDS)


@bp.get("/admin/clients")
@operation("clients.manage", scope="admin", replies=replies(Page[ClientAdminOut]), tag=TAG)
def admin_list_clients(query: PageQuery):
    """List every client account, by name (credentials are never shown)."""
    return paged(sa.select(Client).order_by(Client.name, Client.id), query, ClientAdminOut, _client_out)


@bp.post("/admin/clients")
@operation(
    "clients.manage", scope="admin", replies=replies(ClientAdminOut, status=201, extra=(409,)), tag=TAG, idempotent=True
)
def admin_create_client(json: ClientIn):
    """Create a client account at a broker, with its risk limits (its credentials go on its admin page)."""
    return _client_out(_save_client(None, {name: getattr(json, name) for name in _client_fields()})), 201


@bp.get("/admin/clients/<int:client_id>")
@operation("clients.manage", scope="admin", replies=replies(ClientAdminOut), tag=TAG)
def admin_get_client(client_id: int):
    """One client account: broker, code, limits, session state (never its credentials)."""
    return _client_out(_client(client_id))


@bp.patch("/admin/clients/<int:client_id>")
@operation("clients.manage", scope="admin", replies=replies(ClientAdminOut, extra=ID_WRITE), tag=TAG, idempotent=True)
def admin_update_client(client_id: int, json: ClientPatch):
    """Change a client's name, broker, code, enabled flag, products or limits (a limit sent as null is removed)."""
    client = _client(client_id)
    sent = json.model_fields_set
    required = {"name", "broker", "client_code", "enabled", "allowed_products"}
    _refuse({name: "May not be null." for name in required & sent if getattr(json, name) is None})
    values = {name: getattr(json, name) if name in sent else getattr(client, name) for name in _client_fields()}
    if "allowed_products" not in sent:
        values["allowed_products"] = client.allowed_product_list
    return _client_out(_save_client(client, values))

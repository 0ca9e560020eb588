"""Which clients a user may see and act for: admins all, everyone else only their grants."""
from __future__ import annotations

import sqlalchemy as sa
from flask import abort

from webapp.extensions import db
from webapp.models import Client, User, user_clients


def accessible_clients_select(user: User) -> sa.Select:
    query = sa.select(Client).order_by(Client.name)
    if user.role != "admin":
        query = query.join(user_clients, user_clients.c.client_id == Client.id).where(user_clients.c.user_id == user.id)
    return query


def accessible_clients(user: User) -> list[Client]:
    return list(db.session.execute(accessible_clients_select(user)).scalars())


def accessible_client_ids(user: User) -> set[int]:
    """The ids alone (one column, no objects: a trader may hold hundreds of clients)."""
    scope = client_scope(user)
    return set(db.session.execute(scope if scope is not None else sa.select(Client.id)).scalars())


def client_scope(user: User) -> sa.Select | None:
    """The ids of the clients a user may see, as a SELECT to filter queries with; None: every client."""
    if user.role == "admin":
        return None
    return sa.select(user_clients.c.client_id).where(user_clients.c.user_id == user.id)


def client_for(user: User, client_id: int) -> Client:
    """The client, or 404 when it does not exist or the user has no grant (no existence leak)."""
    client = db.session.get(Client, client_id)
    if client is None or (user.role != "admin" and not db.session.execute(
            client_scope(user).where(user_clients.c.client_id == client_id)).first()):
        abort(404)
    return client

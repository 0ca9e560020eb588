"""Which clients a user may see and act for: admins all, everyone else only their grants. Nothing
else in the code decides that (pages, partials, exports, the feed's sockets all ask here)."""

from __future__ import annotations

import sqlalchemy as sa
from flask import abort

from webapp.extensions import db
from webapp.models import Client, User, user_clients


def accessible_clients_select(user: User) -> sa.Select:
    query = sa.select(Client).order_by(Client.name)
    if (scope := client_scope(user)) is not None:
        query = query.where(Client.id.in_(scope))
    else:  # a deployment's paper twins are not the desk's clients: shown on its pages only
        query = query.where(Client.twin_of_id.is_(None))
    return query


def accessible_clients(user: User) -> list[Client]:
    return list(db.session.execute(accessible_clients_select(user)).scalars())


def accessible_client_ids(user: User) -> set[int]:
    """The ids alone (one column, no objects: a trader may hold hundreds of clients)."""
    scope = client_scope(user)
    return set(db.session.execute(scope if scope is not None else real_client_ids()).scalars())


def real_client_ids() -> sa.Select:
    """Every client but the paper twins of deployments (webapp.automation.twins): the real books."""
    return sa.select(Client.id).where(Client.twin_of_id.is_(None))


def twin_client_ids() -> sa.Select:
    return sa.select(Client.id).where(Client.twin_of_id.is_not(None))


def client_scope(user: User) -> sa.Select | None:
    """The ids of the clients a user may see, as a SELECT to filter queries with; None: every client."""
    if sees_every_client(user.role):
        return None
    return sa.select(user_clients.c.client_id).where(user_clients.c.user_id == user.id)


def sees_every_client(role: str | None) -> bool:
    """The one place that knows an admin sees every client (and no grant is needed for it)."""
    return role == "admin"


def granted_scope(role: str | None, granted: frozenset[int]) -> frozenset[int] | None:
    """client_scope for code that holds a role and its granted ids rather than a user (the feed's
    sockets): None when the role sees every client, else the granted ids."""
    return None if sees_every_client(role) else granted


def may_see(role: str | None, granted: frozenset[int], client_id: int | None) -> bool:
    if client_id is None:
        return False
    scope = granted_scope(role, granted)
    return scope is None or client_id in scope


def client_for(user: User, client_id: int) -> Client:
    """The client, or 404 when it does not exist or the user has no grant (no existence leak)."""
    client = db.session.get(Client, client_id)
    scope = client_scope(user)
    if client is None or (
        scope is not None and not db.session.execute(scope.where(user_clients.c.client_id == client_id)).first()
    ):
        abort(404)
    return client

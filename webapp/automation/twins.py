"""Paper twins: a paper deployment trades the same signals on paper-exchange twins of its clients.

A twin is a Client row on the paper exchange (the registry's paper broker), `twin_of_id` naming the
real client, one per (deployment, client), funded with the deployment's capital for that client or,
without one, the client's available funds as last synced. Twins are kept out of the real books (the
admins' client lists, desk totals, alerts, exports: webapp/access.py and the desk summary leave out
rows whose twin_of_id is set); a twin is shown only on its deployment's pages (`twins_of`).

The twin's paper account is opened in the caller's transaction, exactly as the exchange opens one on
first use (cash = deposited = opening balance), so the twin never exists unfunded: a sync that finds
it first would otherwise open it with the exchange's default cash.
"""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa

from webapp.brokers import paper_broker
from webapp.extensions import db
from webapp.models import Client, Deployment, DeploymentClient, FundsSnapshot
from webapp.models.paper import PaperAccount
from webapp.timeutil import utcnow

# the client's own limits a twin copies, so a paper run meets the refusals the live one would
COPIED_LIMITS = (
    "max_order_value",
    "max_quantity",
    "max_orders_per_day",
    "max_open_positions",
    "max_daily_loss",
    "max_drawdown",
    "allowed_products",
)


LIVE = "live"  # Deployment.mode is paper or live (the word "paper" alone is kept for the paper broker's name)


def is_paper(deployment: Deployment) -> bool:
    """Does the deployment trade paper twins (its mode is paper) rather than the clients' brokers?"""
    return deployment.mode != LIVE


def twin_code(deployment_id: int, client_id: int) -> str:
    return f"TW{deployment_id}C{client_id}"


def twin_name(client: Client, deployment_id: int) -> str:
    return f"{client.name} · paper #{deployment_id}"[:120]


def funding(link: DeploymentClient) -> Decimal | None:
    """The twin's opening cash: the deployment's capital for this client, else the client's available
    funds as last synced; None when neither is known (the exchange's default opening cash then)."""
    if link.capital is not None:
        return link.capital
    funds = db.session.get(FundsSnapshot, link.client_id)
    return funds.available_margin if funds is not None else None


def ensure_twins(deployment: Deployment) -> None:
    """For a paper deployment, a funded paper twin for each of its clients that has none (idempotent;
    in the caller's transaction)."""
    if not is_paper(deployment):
        return
    broker = paper_broker()
    for link in deployment.clients:
        if link.twin_id is not None:
            continue
        client = link.client
        code = twin_code(deployment.id, client.id)
        twin = db.session.execute(
            sa.select(Client).where(Client.broker == broker, Client.client_code == code)
        ).scalar_one_or_none()
        if twin is None:
            twin = Client(
                name=twin_name(client, deployment.id),
                broker=broker,
                client_code=code,
                enabled=True,
                twin_of_id=client.id,
                **{field: getattr(client, field) for field in COPIED_LIMITS},
            )
            db.session.add(twin)
        link.twin = twin
        cash = funding(link)
        exists = db.session.execute(sa.select(PaperAccount.id).where(PaperAccount.client_code == code)).first()
        if cash is not None and not exists:
            db.session.add(
                PaperAccount(
                    client_code=code, cash=cash, deposited=cash, opening_balance=cash, session_started_at=utcnow()
                )
            )
    db.session.flush()


def twins_of(deployment: Deployment) -> list[tuple[Client, Client]]:
    """(client, its twin) for each client of the deployment that has a twin, by client name: what
    its pages show (people without a grant on the twin see it here, and only here)."""
    return sorted(
        ((link.client, link.twin) for link in deployment.clients if link.twin is not None),
        key=lambda pair: (pair[0].name, pair[0].id),
    )


def is_twin(client: Client) -> bool:
    return client.twin_of_id is not None

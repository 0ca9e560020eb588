"""Placing a ticket: the one path the ticket page (POST /orders/new) and the API (POST /api/v1/tickets)
share — queue check, review, stop levels, the batch and its stop rules in one transaction, the send
queued. No request object in here: the caller passes the user, the clients it may trade and its address.

It lives beside the order routes, not in webapp/trading, because it arms the ticket's stop rules
(webapp.automation.stops), which the trading core may not import."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy.exc import IntegrityError

from webapp.access import accessible_clients
from webapp.automation import sizing, stops
from webapp.automation.deployments import capital_of
from webapp.extensions import db, get_redis
from webapp.models import Batch, Client, Instrument, User
from webapp.tasks import queue_available
from webapp.trading import batch_requests
from webapp.trading.tickets import PRICED, Review, Ticket, create_batch, reference_price, review_ticket

# the sizing rules a ticket may use (risk_pct needs a stop per signal: deployments only)
TICKET_SIZINGS = (sizing.FIXED, sizing.MULTIPLIER, sizing.CAPITAL_PCT)


def untradable(instrument: Instrument) -> str:
    """Why no order may be placed in this instrument ("" when it may): an index is a price, not a stock."""
    if instrument.is_index:
        return f"{instrument.tradingsymbol} is an index: it has a price but cannot be traded. Choose a stock."
    return ""


def tradable_clients(user: User) -> list[Client]:
    """The clients a user may put on a ticket: those they may see, enabled."""
    return [c for c in accessible_clients(user) if c.enabled]


@dataclass(frozen=True)
class StopLevels:
    """The ticket's optional stop rules, armed for every child it sends (None: not set)."""

    stop: Decimal | None = None
    target: Decimal | None = None
    trail: Decimal | None = None

    def any(self) -> bool:
        return any(v is not None for v in (self.stop, self.target, self.trail))


def level_errors(action: str, review: Review, levels: StopLevels) -> dict[str, str]:
    """Field → message for the stop levels, against the ticket's price (the LTP for a market order;
    only the grid and the signs when neither is known). Empty when none is set."""
    if not levels.any() or review.instrument is None:
        return {}
    direction = stops.LONG if action == "BUY" else stops.SHORT
    return stops.validate_levels(
        direction,
        review.unit_price,
        tick_size=review.instrument.tick_size,
        stop=levels.stop,
        target=levels.target,
        trail=levels.trail,
    )


def review_with_levels(
    user: User,
    ticket: Ticket,
    clients: list[Client],
    levels: StopLevels,
    redis,
    quantity_errors: dict[int, str] | None = None,
) -> tuple[Review, dict[str, str]]:
    """The ticket's review (nothing written) and its stop levels' errors: the preview and the submit."""
    review = review_ticket(user, ticket, clients, redis)
    review.quantity_errors.update(quantity_errors or {})
    if review.instrument is not None and (refused := untradable(review.instrument)):
        review.errors = {"instrument": refused}  # nothing else about an index order matters
        review.checks = []
    return review, level_errors(ticket.action, review, levels)


@dataclass
class Placement:
    """What placing a ticket did. Exactly one of: `unavailable` (nothing written), refused (`review`
    not ok or `stop_errors`: nothing written), `duplicate` (its ticket id already made a batch:
    nothing written), or `batch` (written; `not_queued` counts its children failed because the send
    could not be queued after the commit, None when it was queued)."""

    review: Review | None = None
    stop_errors: dict[str, str] = field(default_factory=dict)
    batch: Batch | None = None
    not_queued: int | None = None
    unavailable: bool = False
    duplicate: bool = False


def place_ticket(
    user: User,
    ticket: Ticket,
    clients: list[Client],
    levels: StopLevels,
    *,
    ip: str | None,
    quantity_errors: dict[int, str] | None = None,
) -> Placement:
    """Place a ticket for `clients` (the ones the user may trade): checked that a job can be queued
    before anything is written, reviewed, then the batch, its NEW children and their stop rules in
    one transaction, then the send queued (never sent from the caller's thread)."""
    if not queue_available():
        return Placement(unavailable=True)
    redis = get_redis()
    review, wrong = review_with_levels(user, ticket, clients, levels, redis, quantity_errors)
    if not review.ok or wrong:
        return Placement(review=review, stop_errors=wrong)
    try:
        batch = create_batch(user, ticket, review, ip=ip)
        armed = arm_stops(batch, review, user, levels, ip)
        db.session.commit()
    except IntegrityError:  # the same ticket id placed twice at once: the first one won
        db.session.rollback()
        return Placement(review=review, duplicate=True)
    except stops.StopError as exc:  # validated above; only a changed instrument could get here
        db.session.rollback()
        return Placement(review=review, stop_errors=exc.errors)
    not_queued = batch_requests.queue_send(batch.id)
    if armed:
        stops.notify_changed(redis)
    return Placement(review=review, batch=batch, not_queued=not_queued)


def arm_stops(batch: Batch, review: Review, user: User, levels: StopLevels, ip: str | None) -> int:
    """Arm the ticket's stop rules for the batch's children, in the batch's transaction."""
    if not levels.any():
        return 0
    return stops.arm_ticket(
        batch, user, price=review.unit_price, ip=ip, stop=levels.stop, target=levels.target, trail=levels.trail
    )


def sizing_price(ticket: Ticket, instrument: Instrument, redis) -> Decimal | None:
    """The price a sizing rule divides by: the ticket's own for a priced order, else the LTP."""
    return ticket.price if ticket.order_type in PRICED else reference_price(instrument, redis)


def sized_quantities(
    rule: str, value: Decimal, clients: list[Client], instrument: Instrument, price: Decimal | None
) -> tuple[dict[int, int], dict[int, str]]:
    """A sizing rule (webapp.automation.sizing, as deployments size) turned into per-client quantities
    for the ticket's review; a client sized to 0 is skipped, with why."""
    if rule not in TICKET_SIZINGS:
        raise ValueError(f"unknown ticket sizing {rule!r}")
    capital = capital_of(clients, {}) if rule == sizing.CAPITAL_PCT else {}
    quantities: dict[int, int] = {}
    skipped: dict[int, str] = {}
    for client in clients:
        qty, why = sizing.quantity(
            rule,
            value,
            price=price,
            lot_size=instrument.lot_size,
            capital=capital.get(client.id),
            cap=client.max_quantity,
            max_value=client.max_order_value,
        )
        quantities[client.id] = qty
        if qty == 0:
            skipped[client.id] = why
    return quantities, skipped

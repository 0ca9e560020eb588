"""A ticket: one trader action for many clients. Validated in full, then written as a Batch and one
NEW child order per client in a single transaction; the caller enqueues the send job."""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field
from decimal import Decimal

import sqlalchemy as sa

from webapp import audit
from webapp.extensions import db
from webapp.marketdata.store import read_quote
from webapp.models import Batch, Client, Instrument, Order, User
from webapp.money import is_tick_multiple, rupees
from webapp.trading import states
from webapp.trading.risk import ChildCheck, check_children

TAG_ALPHABET = string.ascii_letters + string.digits
PRICED = {"LIMIT", "SL"}
TRIGGERED = {"SL", "SL-M"}


TAG_LENGTH = 10


def new_tag() -> str:
    """10 characters of [A-Za-z0-9]: fits every broker's tag (Motilal's is the shortest).
    One random number below 62**10 written in base 62 (one draw per tag, not one per character)."""
    n, chars = secrets.randbelow(len(TAG_ALPHABET) ** TAG_LENGTH), []
    for _ in range(TAG_LENGTH):
        n, digit = divmod(n, len(TAG_ALPHABET))
        chars.append(TAG_ALPHABET[digit])
    return "".join(chars)


@dataclass
class Ticket:
    ticket_id: str
    action: str  # BUY | SELL
    instrument_id: int | None
    product: str
    order_type: str
    validity: str = "DAY"
    price: Decimal | None = None
    trigger_price: Decimal | None = None
    quantities: dict[int, int] = field(default_factory=dict)  # client id → quantity (0 skips)
    kind: str = "ticket"
    note: str = ""
    chase_seconds: int | None = None  # limit chase (webapp.trading.chase); None: off
    chase_max_ticks: int | None = None
    chase_then: str | None = None


@dataclass
class Review:
    """What validation found: field errors (nothing may be sent) and each child's risk check."""

    errors: dict[str, str] = field(default_factory=dict)
    quantity_errors: dict[int, str] = field(default_factory=dict)
    checks: list[ChildCheck] = field(default_factory=list)
    instrument: Instrument | None = None
    unit_price: Decimal | None = None

    @property
    def ok(self) -> bool:
        return not self.errors and not self.quantity_errors and any(not c.block for c in self.checks)


def reference_price(instrument: Instrument, redis) -> Decimal | None:
    """The last traded price from the feed, else the master's reference close."""
    quote = read_quote(redis, instrument) if redis is not None else None
    return quote.last_price if quote else instrument.last_price


def price_errors(ticket: Ticket, instrument: Instrument) -> dict[str, str]:
    errors: dict[str, str] = {}
    band = instrument.circuit_limits()
    for name, value, needed in (
        ("price", ticket.price, ticket.order_type in PRICED),
        ("trigger_price", ticket.trigger_price, ticket.order_type in TRIGGERED),
    ):
        label = "Price" if name == "price" else "Trigger price"
        if needed and value is None:
            errors[name] = f"{label} is required for a {ticket.order_type} order."
        elif value is None:
            continue
        elif value <= 0:
            errors[name] = f"{label} must be above zero."
        elif not is_tick_multiple(value, instrument.tick_size):
            errors[name] = f"{label} must be a multiple of the tick size ₹{instrument.tick_size.normalize():f}."
        elif band and not band[0] <= value <= band[1]:
            errors[name] = f"{label} is outside today's circuit band ₹{rupees(band[0])} – ₹{rupees(band[1])}."
    if not errors and ticket.order_type == "SL" and ticket.price is not None and ticket.trigger_price is not None:
        if ticket.action == "BUY" and ticket.price < ticket.trigger_price:
            errors["price"] = "For a buy stop-loss the price must be at or above the trigger."
        if ticket.action == "SELL" and ticket.price > ticket.trigger_price:
            errors["price"] = "For a sell stop-loss the price must be at or below the trigger."
    return errors


def review_ticket(
    user: User, ticket: Ticket, clients: list[Client], redis=None, reduces: dict[int, bool] | None = None
) -> Review:
    """Validate everything without writing: the ticket preview and the submit share this."""
    review = Review()
    instrument = db.session.get(Instrument, ticket.instrument_id) if ticket.instrument_id else None
    if instrument is None:
        review.errors["instrument"] = "Choose an instrument from the search."
        return review
    review.instrument = instrument
    review.errors.update(price_errors(ticket, instrument))
    if ticket.chase_seconds and ticket.order_type != "LIMIT":
        review.errors["chase"] = "Only limit orders can be chased."
    allowed = {c.id: c for c in clients}
    for client_id, qty in ticket.quantities.items():
        if client_id not in allowed:
            review.errors["clients"] = "A client on this ticket is not one you may trade."
        elif qty < 0:
            review.quantity_errors[client_id] = "Quantity cannot be negative."
        elif qty % instrument.lot_size:
            review.quantity_errors[client_id] = f"Quantity must be a multiple of the lot size {instrument.lot_size}."
    if not any(q > 0 for q in ticket.quantities.values()) and "clients" not in review.errors:
        review.errors["clients"] = "Enter a quantity for at least one client."
    price = ticket.price if ticket.order_type in PRICED else reference_price(instrument, redis)
    review.unit_price = price
    if review.errors or review.quantity_errors or price is None:
        return review
    review.checks = check_children(
        user,
        [c for c in clients if c.id in ticket.quantities],
        ticket.quantities,
        instrument_id=instrument.id,
        product=ticket.product,
        unit_price=price,
        reduces=reduces,
    )
    if review.checks and all(c.block for c in review.checks):
        review.errors["clients"] = "No client can take this order: " + review.checks[0].block
    return review


def existing_batch(ticket_id: str) -> Batch | None:
    return db.session.execute(sa.select(Batch).where(Batch.ticket_id == ticket_id)).scalar_one_or_none()


def create_batch(user: User, ticket: Ticket, review: Review, ip: str | None = None) -> Batch:
    """One transaction: the batch and a child per client — NEW to send, FAILED where risk blocked it."""
    batch = Batch(
        ticket_id=ticket.ticket_id,
        user_id=user.id,
        kind=ticket.kind,
        action=ticket.action,
        instrument_id=review.instrument.id,
        product=ticket.product,
        order_type=ticket.order_type,
        price=ticket.price,
        trigger_price=ticket.trigger_price,
        validity=ticket.validity,
        note=ticket.note,
        chase_seconds=ticket.chase_seconds,
        chase_max_ticks=ticket.chase_max_ticks,
        chase_then=ticket.chase_then,
    )
    db.session.add(batch)
    db.session.flush()
    if review.checks:  # one INSERT of many rows, on the table: the ORM's bulk path costs more (docs/BENCHMARKS.md)
        db.session.execute(
            Order.__table__.insert(),
            [
                dict(
                    batch_id=batch.id,
                    client_id=check.client.id,
                    instrument_id=review.instrument.id,
                    side=ticket.action,
                    quantity=check.quantity,
                    product=ticket.product,
                    order_type=ticket.order_type,
                    price=ticket.price,
                    trigger_price=ticket.trigger_price,
                    validity=ticket.validity,
                    tag=new_tag(),
                    status=states.FAILED if check.block else states.NEW,
                    reason=check.block,
                )
                for check in review.checks
            ],
        )
    audit.record(
        f"batch.{ticket.kind}",
        actor_id=user.id,
        actor=user.username,
        target=f"batch:{batch.id}",
        clients=[c.client.id for c in review.checks],
        ip=ip,
        detail={
            "action": ticket.action,
            "instrument": review.instrument.key,
            "product": ticket.product,
            "order_type": ticket.order_type,
            "price": ticket.price,
            "trigger": ticket.trigger_price,
            "quantities": {str(c.client.id): c.quantity for c in review.checks},
            "blocked": {str(c.client.id): c.block for c in review.checks if c.block},
        },
    )
    return batch

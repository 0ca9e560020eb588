"""Exits on the same order path: one position, an instrument across clients, a client's whole book,
and the kill switches (cancel open orders, square off intraday, refuse new orders until re-armed)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from webapp import audit
from webapp.extensions import db
from webapp.models import Batch, Client, DeskState, Holding, Instrument, Order, Position, User
from webapp.tasks import QUEUE_ORDERS, enqueue
from webapp.trading import states
from webapp.trading.risk import ChildCheck, check_children
from webapp.trading.tickets import existing_batch, new_tag


@dataclass(frozen=True)
class Holder:
    """A client's exitable quantity in one instrument and product (+ long, − short)."""

    client: Client
    instrument: Instrument
    product: str
    quantity: int

    @property
    def key(self) -> str:
        return f"{self.client.id}-{self.instrument.id}-{self.product}"


SYSTEM = "system"  # the actor named when the desk acts by itself (a stop, a breaker, the square-off)


def actor_of(user: User | None) -> dict:
    """audit.record's actor arguments for a person, or for the desk acting by itself (None)."""
    return {"actor_id": user.id, "actor": user.username} if user else {"actor_id": None, "actor": SYSTEM}


def holders(clients: list[Client], instrument_id: int | None = None, with_holdings: bool = True) -> list[Holder]:
    """Open positions, and delivery holdings unless told not to, of these clients (one instrument, or all)."""
    ids = [c.id for c in clients]
    by_id = {c.id: c for c in clients}
    totals: dict[tuple[int, int, str], int] = {}
    positions = sa.select(Position).where(Position.client_id.in_(ids), Position.quantity != 0)
    holdings = sa.select(Holding).where(Holding.client_id.in_(ids), Holding.quantity > 0)
    if instrument_id is not None:
        positions = positions.where(Position.instrument_id == instrument_id)
        holdings = holdings.where(Holding.instrument_id == instrument_id)
    for p in db.session.execute(positions).scalars():
        key = (p.client_id, p.instrument_id, p.product)
        totals[key] = totals.get(key, 0) + p.quantity
    for h in db.session.execute(holdings).scalars() if with_holdings else ():
        key = (h.client_id, h.instrument_id, "CNC")
        totals[key] = totals.get(key, 0) + h.quantity
    instruments = (
        {
            i.id: i
            for i in db.session.execute(
                sa.select(Instrument).where(Instrument.id.in_({k[1] for k in totals}))
            ).scalars()
        }
        if totals
        else {}
    )
    return sorted(
        (Holder(by_id[c], instruments[i], product, qty) for (c, i, product), qty in totals.items() if qty),
        key=lambda h: (h.client.name, h.instrument.tradingsymbol, h.product),
    )


def share_of(quantity: int, percent: int, lot_size: int = 1) -> int:
    """`percent` of an absolute quantity, rounded down to the lot (50% of 3 is 1)."""
    wanted = abs(quantity) * percent // 100
    return wanted - wanted % lot_size


def exit_side(holder: Holder) -> str:
    """The side that reduces a holding: sell a long, buy back a short."""
    return "SELL" if holder.quantity > 0 else "BUY"


def share_note(quantity: int, percent: int, lot_size: int = 1) -> str | None:
    """What rounding did to `percent` of a holding, said in words ("50% of 3 = 1 (rounded down)"),
    or None when the share is exact: an exit never rounds silently."""
    exact = abs(quantity) * percent
    rounded = share_of(quantity, percent, lot_size)
    if rounded * 100 == exact:
        return None
    how = f"rounded down to a lot of {lot_size}" if lot_size > 1 else "rounded down"
    left_out = "; nothing to exit" if not rounded else ""
    return f"{percent}% of {abs(quantity)} = {rounded} ({how}{left_out})"


def review_id(given: str | None) -> str:
    """The id a review step gives its confirmation (a hidden field), checked; a fresh one when absent
    or malformed (a direct post without a review is one exit, as before)."""
    try:
        return str(uuid.UUID(given or ""))
    except ValueError:
        return str(uuid.uuid4())


def reviewed_quantities(form: Mapping[str, str]) -> dict[str, str]:
    """The quantities a confirmation carries back from its review (`expect_<holder key>` fields)."""
    return {k.removeprefix("expect_"): v for k, v in form.items() if k.startswith("expect_")}


def review_marks(legs: list[tuple[Holder, int]]) -> dict[str, str]:
    """What a review shows of each leg and its confirmation must carry back unchanged."""
    return {h.key: str(q) for h, q in legs}


def place_reviewed_exit(
    user: User,
    kind: str,
    legs: list[tuple[Holder, int]],
    *,
    ticket_id: str,
    instrument_id: int | None,
    ip: str | None,
    note: str = "",
) -> tuple[Batch | None, bool]:
    """A person's confirmed exit, committed at most once per review: a second confirmation (a double
    click, a resent form) finds the first batch instead of exiting again — which, with the positions
    not yet moved by the first, would exit past flat. Returns (batch, created); the caller queues the
    send of a created one."""
    if (done := existing_batch(ticket_id)) is not None:
        return done, False
    try:
        batch = create_exit_batch(user, kind, legs, instrument_id=instrument_id, ip=ip, note=note, ticket_id=ticket_id)
        db.session.commit()
    except IntegrityError:  # the same confirmation twice at once: the first one won
        db.session.rollback()
        return existing_batch(ticket_id), False
    return batch, batch is not None


def position_of(client: Client, instrument_id: int, product: str) -> Holder | None:
    """The client's one position in this instrument and product, or None when it is flat."""
    return next((h for h in holders([client], instrument_id) if h.product == product), None)


def share_legs(found: list[Holder], percent: int) -> list[tuple[Holder, int]]:
    """`percent` of each holder, lot-rounded (share_of); a holder whose share rounds to nothing is left out."""
    legs = [(h, share_of(h.quantity, percent, h.instrument.lot_size)) for h in found]
    return [(h, q) for h, q in legs if q]


def exceeds(quantity: int, held: list[Holder]) -> str | None:
    """Why exiting `quantity` from these holdings is refused (more than they hold), or None."""
    most = sum(abs(h.quantity) for h in held)
    if quantity <= most:
        return None
    return f"At most {most}." if most else "Nothing of this instrument is held."


# a client's quantity is taken from its intraday position first, delivery last
PRODUCT_ORDER = {"MIS": 0, "MTF": 1, "CNC": 2}


def client_legs(found: list[Holder], quantities: dict[int, int]) -> tuple[list[tuple[Holder, int]], dict[int, str]]:
    """Exit legs for a quantity per client id (0 skips), taken from the client's holdings of the
    instrument intraday first; the refusals (more than held) by client id. Nothing is exited when
    any is refused: the caller writes no batch then."""
    by_client: dict[int, list[Holder]] = {}
    for holder in sorted(found, key=lambda h: PRODUCT_ORDER.get(h.product, len(PRODUCT_ORDER))):
        by_client.setdefault(holder.client.id, []).append(holder)
    legs, errors = [], {}
    for client_id, wanted in quantities.items():
        held = by_client.get(client_id, [])
        if not wanted:
            continue
        if error := exceeds(wanted, held):
            errors[client_id] = error
            continue
        for holder in held:
            take = min(wanted, abs(holder.quantity))
            if take:
                legs.append((holder, take))
            wanted -= take
    return legs, errors


def create_exit_batch(
    user: User | None,
    kind: str,
    legs: list[tuple[Holder, int]],
    *,
    instrument_id: int | None,
    ip: str | None = None,
    note: str = "",
    ticket_id: str | None = None,
) -> Batch | None:
    """MARKET orders that reduce each holder by the given quantity. Risk still applies (session,
    enabled), but exits need no margin and go out under a kill switch. `user` None: the desk acts
    by itself (the batch has no user; the audit names the system). `ticket_id`: the review's own id
    (place_reviewed_exit), so the database refuses a second batch for one confirmation."""
    legs = [(h, q) for h, q in legs if q > 0]
    if not legs:
        return None
    batch = Batch(
        ticket_id=ticket_id or str(uuid.uuid4()),
        user_id=user.id if user else None,
        kind=kind,
        action="EXIT",
        instrument_id=instrument_id,
        order_type="MARKET",
        validity="DAY",
        note=note,
    )
    db.session.add(batch)
    if user is None:  # the desk's own exit: the legs checked together, the children written in one INSERT
        checks = _desk_checks(legs)
        db.session.flush()
        db.session.execute(Order.__table__.insert(), [_exit_row(batch.id, h, q, checks[h.key]) for h, q in legs])
    else:  # a person's: each leg checked after the ones before it are written (their orders count today)
        for holder, quantity in legs:
            check = check_children(
                user,
                [holder.client],
                {holder.client.id: quantity},
                instrument_id=holder.instrument.id,
                product=holder.product,
                unit_price=holder.instrument.last_price or 0,
                reduces={holder.client.id: True},
            )[0]
            db.session.add(Order(batch=batch, **_exit_row(None, holder, quantity, check)))
        db.session.flush()
    audit.record(
        f"batch.{kind}",
        **actor_of(user),
        target=f"batch:{batch.id}",
        clients=[h.client.id for h, _ in legs],
        ip=ip,
        detail={
            "legs": [
                {"client": h.client.id, "instrument": h.instrument.key, "product": h.product, "quantity": q}
                for h, q in legs
            ],
            "note": note,
        },
    )
    return batch


def _exit_row(batch_id: int | None, holder: Holder, quantity: int, check: ChildCheck) -> dict:
    row = dict(
        client_id=holder.client.id,
        instrument_id=holder.instrument.id,
        side=exit_side(holder),
        quantity=min(quantity, abs(holder.quantity)),
        product=holder.product,
        order_type="MARKET",
        validity="DAY",
        tag=new_tag(),
        status=states.FAILED if check.block else states.NEW,
        reason=check.block,
    )
    return row if batch_id is None else {**row, "batch_id": batch_id}


def _desk_checks(legs: list[tuple[Holder, int]]) -> dict[str, ChildCheck]:
    """The desk's own exit (no person, so no person's order count to keep leg by leg): the legs of
    one instrument and product checked in one call, as a ticket's children are (a stop firing for
    100 clients: one risk pass, not 100). Holder key → its check."""
    groups: dict[tuple[int, str], list[tuple[Holder, int]]] = {}
    for holder, quantity in legs:
        groups.setdefault((holder.instrument.id, holder.product), []).append((holder, quantity))
    checks: dict[str, ChildCheck] = {}
    for (instrument_id, product), group in groups.items():
        found = check_children(
            None,
            [h.client for h, _ in group],
            {h.client.id: q for h, q in group},
            instrument_id=instrument_id,
            product=product,
            unit_price=group[0][0].instrument.last_price or 0,
            reduces={h.client.id: True for h, _ in group},
        )
        by_client = {c.client.id: c for c in found}
        checks.update({h.key: by_client[h.client.id] for h, _ in group})
    return checks


def retry_legs(children: list[Order]) -> list[tuple[Holder, int]]:
    """Exit again what these failed or rejected exit children were to exit, as far as it is still
    held the same way now: each leg at most its child's quantity (a retry never exits more than was
    asked, nor turns a position round)."""
    clients = list({child.client_id: child.client for child in children}.values())
    held = {(h.client.id, h.instrument.id, h.product): h for h in holders(clients)}
    legs = []
    for child in children:
        holder = held.get((child.client_id, child.instrument_id, child.product))
        if holder is not None and (holder.quantity > 0) == (child.side == "SELL"):
            legs.append((holder, min(child.quantity, abs(holder.quantity))))
    return legs


def open_children(client_ids: list[int]) -> list[int]:
    return list(
        db.session.execute(
            sa.select(Order.id).where(Order.client_id.in_(client_ids), Order.status.in_(states.AT_BROKER))
        ).scalars()
    )


def set_client_kill(user: User | None, client: Client, on: bool, ip: str | None, reason: str = "") -> None:
    """`reason`: why it was engaged (a breaker names its limit); shown with the switch until re-armed."""
    client.kill_switch = on
    client.kill_reason = reason if on else ""
    audit.record(
        "kill_switch.client.on" if on else "kill_switch.client.off",
        **actor_of(user),
        target=f"client:{client.id}",
        clients=[client.id],
        ip=ip,
        detail={"reason": reason} if on and reason else None,
    )


def set_desk_kill(user: User | None, on: bool, ip: str | None, client_ids: list[int], reason: str = "") -> None:
    state = db.session.get(DeskState, 1) or DeskState(id=1)
    state.kill_switch, state.changed_by = on, actor_of(user)["actor"]
    state.kill_reason = reason if on else ""
    db.session.add(state)
    audit.record(
        "kill_switch.desk.on" if on else "kill_switch.desk.off",
        **actor_of(user),
        target="desk",
        clients=client_ids,
        ip=ip,
        detail={"reason": reason} if on and reason else None,
    )


def cancel_open_orders(client_ids: list[int], by: str) -> list[int]:
    """Queue the cancel of these clients' orders open at the broker (`by`: who, named in each
    order's reason); the ids queued."""
    open_ids = open_children(client_ids)
    if open_ids:
        enqueue("jobs.orders.cancel_children", open_ids, by, queue_name=QUEUE_ORDERS)
    return open_ids


def square_off(user: User, client: Client, positions: list[Holder], ip: str | None) -> tuple[Batch | None, int]:
    """Cancel the client's open orders and exit its positions: the exit batch (None: nothing held)
    and how many orders were cancelled. The caller commits, then queues the batch's send."""
    cancelled = cancel_open_orders([client.id], user.username)
    batch = create_exit_batch(
        user,
        "square_off",
        [(h, abs(h.quantity)) for h in positions],
        instrument_id=None,
        ip=ip,
        note=f"square off {client.name}",
    )
    return batch, len(cancelled)


def engage_client_kill(user: User | None, client: Client, on: bool, ip: str | None, reason: str = "") -> Batch | None:
    """Turn a client's kill switch on (flatten it: the square-off batch) or off (None)."""
    set_client_kill(user, client, on, ip, reason)
    return flatten(user, [client], ip) if on else None


def engage_desk_kill(
    user: User | None, clients: list[Client], on: bool, ip: str | None, reason: str = ""
) -> Batch | None:
    """Turn the desk's kill switch on (flatten these clients: the square-off batch) or off (None)."""
    set_desk_kill(user, on, ip, [c.id for c in clients], reason)
    return flatten(user, clients, ip) if on else None


def flatten(user: User | None, clients: list[Client], ip: str | None) -> Batch | None:
    """Cancel open orders and square off intraday positions of these clients (kill switch on)."""
    # no person: a loss breaker engaged the switch (webapp/automation/breakers.py)
    cancel_open_orders([c.id for c in clients], "the kill switch" if user is not None else "a loss breaker")
    legs = [(h, abs(h.quantity)) for h in intraday_holders(clients)]
    return create_exit_batch(
        user, "kill_switch", legs, instrument_id=None, ip=ip, note="kill switch: square off intraday"
    )


def intraday_holders(clients: list[Client]) -> list[Holder]:
    return [h for h in holders(clients, with_holdings=False) if h.product == "MIS"]

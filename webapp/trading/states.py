"""The child order state machine (DESIGN §5).

    NEW → SUBMITTING → PLACED → OPEN → PARTIAL → COMPLETE
                     ↘ UNKNOWN (outcome unclear: resolved by tag, never retried blindly)
                     ↘ REJECTED (the broker said no) · FAILED (never reached the broker: login, risk)
    open states → CANCELLED | REJECTED

A timeout is "in flight", not "rejected" (nautilus): UNKNOWN stays red until the broker's own
order book says what happened.

Every status change goes through `TRANSITIONS` (`allowed`, `guarded_update`): an illegal one is
refused and logged, never written. Final states stay final: a stale broker read that shows a
COMPLETE child as OPEN changes nothing. Writing a child's own state again (a new reason, a fill
count) is not a transition and is always allowed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from webapp.brokers.base import BrokerOrderStatus

log = logging.getLogger(__name__)

NEW, SUBMITTING, UNKNOWN = "NEW", "SUBMITTING", "UNKNOWN"
PLACED, OPEN, PARTIAL, COMPLETE = "PLACED", "OPEN", "PARTIAL", "COMPLETE"
CANCELLED, REJECTED, FAILED = "CANCELLED", "REJECTED", "FAILED"

ALL = (NEW, SUBMITTING, UNKNOWN, PLACED, OPEN, PARTIAL, COMPLETE, CANCELLED, REJECTED, FAILED)
FINAL = frozenset({COMPLETE, CANCELLED, REJECTED, FAILED})
AT_BROKER = frozenset({PLACED, OPEN, PARTIAL})  # live at the broker: can be modified or cancelled
IN_FLIGHT = frozenset({NEW, SUBMITTING, UNKNOWN})  # not yet known to be at the broker
RETRYABLE = frozenset({FAILED, REJECTED})  # provably not placed

# what the broker's normalized status means for the desk's child
FROM_BROKER = {
    BrokerOrderStatus.PENDING: PLACED,
    BrokerOrderStatus.OPEN: OPEN,
    BrokerOrderStatus.TRIGGER_PENDING: OPEN,
    BrokerOrderStatus.PARTIAL: PARTIAL,
    BrokerOrderStatus.COMPLETE: COMPLETE,
    BrokerOrderStatus.CANCELLED: CANCELLED,
    BrokerOrderStatus.REJECTED: REJECTED,
}

# from-state → the states a child may move to from it; derived from what the engine (claim, answers,
# resolving by tag), sync (the broker's order book), unsent (deadline, not queued) and the cancel /
# modify / convert answers write
_FOUND = frozenset(FROM_BROKER.values())  # what a look-up by tag can find
TRANSITIONS: dict[str, frozenset[str]] = {
    NEW: frozenset({SUBMITTING, FAILED}),  # claimed, or failed unsent (deadline, not queued, bad details)
    # the send's answer: placed, refused, login needed, 429 (NEW: not an attempt), unclear; a stuck
    # SUBMITTING child is resolved by tag like an UNKNOWN one
    SUBMITTING: frozenset({PLACED, REJECTED, FAILED, NEW, UNKNOWN}) | _FOUND,
    UNKNOWN: _FOUND | {NEW, FAILED},  # found at the broker, absent (sent again, or failed)
    PLACED: frozenset({OPEN, PARTIAL, COMPLETE, CANCELLED, REJECTED}),
    OPEN: frozenset({PARTIAL, COMPLETE, CANCELLED, REJECTED}),
    PARTIAL: frozenset({OPEN, COMPLETE, CANCELLED, REJECTED}),  # OPEN: sync writes what the broker shows, as before
    COMPLETE: frozenset(),
    CANCELLED: frozenset(),
    REJECTED: frozenset(),
    FAILED: frozenset(),
}
assert set(TRANSITIONS) == set(ALL) and all(TRANSITIONS[s] <= set(ALL) for s in ALL)
assert all(not TRANSITIONS[s] for s in FINAL)


def allowed(current: str, new: str) -> bool:
    """May a child in `current` be written as `new`? Its own state again always may."""
    return current == new or new in TRANSITIONS.get(current, frozenset())


def sources(new: str) -> frozenset[str]:
    """The states from which a child may be written as `new` (itself included)."""
    return frozenset({new} | {s for s, to in TRANSITIONS.items() if new in to})


def refuse(order_id: Any, current: str, new: str) -> None:
    log.warning("op=child order=%s transition=refused from=%s to=%s", order_id, current, new)


def check(order_id: Any, current: str, new: str) -> bool:
    """`allowed`, logging a refusal."""
    if allowed(current, new):
        return True
    refuse(order_id, current, new)
    return False


def guarded_update(table: sa.Table, new: str, from_states: Iterable[str] | None = None) -> sa.Update:
    """An UPDATE of `table` (the orders table) to `new`, conditional on the row's status being one it
    may move from (of `from_states` only, when given: a bulk UPDATE that picks its rows by state).
    The caller adds its own WHERE and values(); the status value is set here."""
    legal = sources(new)
    if from_states is not None:
        wanted = frozenset(from_states)
        assert wanted <= legal, f"illegal transition {sorted(wanted - legal)} → {new}"
        legal = wanted
    # equalities, not IN: an expanding IN cannot be used in an executemany (the batch's answers)
    return table.update().where(sa.or_(*(table.c.status == s for s in sorted(legal)))).values(status=new)

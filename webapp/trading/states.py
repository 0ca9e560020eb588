"""The child order state machine (DESIGN §5).

    NEW → SUBMITTING → PLACED → OPEN → PARTIAL → COMPLETE
                     ↘ UNKNOWN (outcome unclear: resolved by tag, never retried blindly)
                     ↘ REJECTED (the broker said no) · FAILED (never reached the broker: login, risk)
    open states → CANCELLED | REJECTED

A timeout is "in flight", not "rejected" (nautilus): UNKNOWN stays red until the broker's own
order book says what happened.
"""
from __future__ import annotations

from webapp.brokers.base import BrokerOrderStatus

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

CHIP = {  # the colour class each state shows with
    NEW: "chip-muted", SUBMITTING: "chip-amber", UNKNOWN: "chip-red", PLACED: "chip-amber", OPEN: "chip-amber",
    PARTIAL: "chip-amber", COMPLETE: "chip-green", CANCELLED: "chip-muted", REJECTED: "chip-red", FAILED: "chip-red",
}

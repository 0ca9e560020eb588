"""The kinds of notification, their labels and colours (the toasts' and the page's)."""

from __future__ import annotations

FILL, REJECTION, DOUBT, STOP, RISK, KILL, SESSION = "fill", "rejection", "doubt", "stop", "risk", "kill", "session"
KINDS = (FILL, REJECTION, DOUBT, STOP, RISK, KILL, SESSION)
LABELS = {
    FILL: "Fills",
    REJECTION: "Rejections",
    DOUBT: "Orders in doubt",
    STOP: "Stops fired",
    RISK: "Risk breaches",
    KILL: "Kill switches",
    SESSION: "Broker sessions expiring",
}
TONES = {FILL: "green", REJECTION: "red", DOUBT: "red", STOP: "amber", RISK: "red", KILL: "red", SESSION: "amber"}
CHANNELS = ("telegram", "email")


def parse_kinds(text: str | None) -> list[str]:
    """Stored comma-separated kinds → the known ones, in KINDS order."""
    chosen = {part.strip() for part in (text or "").split(",")}
    return [kind for kind in KINDS if kind in chosen]

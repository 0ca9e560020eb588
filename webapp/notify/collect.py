"""The collector: reads the facts people are told about from the database, by cursor, and writes one
Notification per (fact, user) — exactly once, whatever runs it twice or at once.

Why a collector and not writes at the places the facts happen: those places are the order engine, the
sync, the feed's stop checks, the breakers and the kill switch — the paths that must stay quick and
whose transactions must not fail because a notification could not be written. The facts are all in the
database already (orders' states, risk alerts, the audit chain, client sessions), so one job reads them
after they commit, and the unique (user, key) is what makes it exactly once:

- orders (fills, rejections, orders in doubt) and risk alerts (stops fired, breaches) by time: from the
  start of the last complete run, less SETTLE (a row written in a transaction that commits late is
  still read); a run that dies before its commit leaves the cursor where it was (nothing lost), and a
  fact read twice is the same key (nothing doubled);
- kill switches by the audit chain's seq, which is gapless and in commit order (each append updates
  the one head row, so appends serialize): an exact cursor;
- broker sessions by their state now: a stored session ending within SESSION_WARNING, keyed by the
  client and that expiry (a new login is a new expiry, so a new warning).

Inserts are INSERT ... ON CONFLICT (user_id, key) DO NOTHING RETURNING id: only the run that inserted
a row makes its deliveries and announces it, so two runs at once neither double nor lose one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from webapp.access import sees_every_client
from webapp.automation.stops import FIRE_KINDS
from webapp.events import publish
from webapp.extensions import db
from webapp.models import (
    AuditEvent,
    Client,
    Instrument,
    Notification,
    NotificationCursor,
    NotificationDelivery,
    NotificationPrefs,
    Order,
    RiskAlert,
    User,
    user_clients,
)
from webapp.models.base import insert_ignoring
from webapp.money import rupees
from webapp.notify import kinds as K
from webapp.permissions import ROLES
from webapp.timeutil import format_ist, utcnow
from webapp.trading import states

SETTLE = timedelta(minutes=2)
SESSION_WARNING = timedelta(minutes=30)
EVENT = "notify.created"
KILL_ACTIONS = ("kill_switch.client.on", "kill_switch.client.off", "kill_switch.desk.on", "kill_switch.desk.off")
STOP_TITLES = {
    FIRE_KINDS["stop"]: "Stop-loss fired",
    FIRE_KINDS["target"]: "Target hit",
    FIRE_KINDS["trail"]: "Trailing stop fired",
}


@dataclass(frozen=True)
class Fact:
    key: str
    kind: str
    title: str
    body: str
    client_id: int | None  # None: a desk-level fact, told to those who see every client
    batch_id: int | None = None


def collect(redis, channels: frozenset[str] = frozenset(), now: datetime | None = None) -> list[int]:
    """One run: every new fact → notifications (and their deliveries on `channels`, the configured
    ones), committed, then announced. Returns the ids this run created."""
    now = now or utcnow()
    orders_since = _since("orders", now)
    alerts_since = _since("risk_alerts", now)
    audit_after, audit_to = _audit_range(now)
    facts = order_facts(orders_since) + alert_facts(alerts_since) + kill_facts(audit_after, audit_to)
    facts += session_facts(now)
    created = store(facts, channels, now)
    _advance("orders", at=now)
    _advance("risk_alerts", at=now)
    _advance("audit", position=audit_to)
    db.session.commit()
    announce(redis, created)
    return [nid for nid, _ in created]


# --- the sources ---------------------------------------------------------------------------------


def order_facts(since: datetime) -> list[Fact]:
    watched = (states.PARTIAL, states.COMPLETE, states.CANCELLED, states.REJECTED, states.FAILED, states.UNKNOWN)
    rows = db.session.execute(
        sa.select(Order, Instrument.tradingsymbol, Client.name)
        .join(Instrument, Instrument.id == Order.instrument_id)
        .join(Client, Client.id == Order.client_id)
        .where(Order.updated_at >= since, Order.status.in_(watched))
    ).all()
    facts = [fact for order, symbol, client in rows if (fact := _order_fact(order, symbol, client)) is not None]
    return facts


def _order_fact(order: Order, symbol: str, client: str) -> Fact | None:
    what, where = f"{order.side} {order.quantity} {symbol}", (order.client_id, order.batch_id)
    if order.status in (states.PARTIAL, states.COMPLETE, states.CANCELLED):
        if order.filled_quantity <= 0:
            return None
        done = order.filled_quantity >= order.quantity
        part = f"Part filled {order.side} {order.filled_quantity}/{order.quantity} {symbol}"
        price = f" at avg ₹{rupees(order.average_price)}" if order.average_price is not None else ""
        body = f"{client}{price} · {order.product}"
        return Fact(
            f"fill:{order.id}:{order.filled_quantity}", K.FILL, f"Filled {what}" if done else part, body, *where
        )
    if order.status == states.REJECTED:
        body = f"{client}: {order.reason or 'rejected by the broker'}"
        return Fact(f"rejection:{order.id}", K.REJECTION, f"Rejected {what}", body, *where)
    if order.status == states.FAILED:
        return Fact(
            f"rejection:{order.id}", K.REJECTION, f"Not sent {what}", f"{client}: {order.reason or 'not sent'}", *where
        )
    body = f"{client}: the broker's answer was lost; the desk is resolving it by its tag {order.tag}"
    return Fact(f"doubt:{order.id}", K.DOUBT, f"In doubt {what}", body, *where)


def alert_facts(since: datetime) -> list[Fact]:
    rows = db.session.execute(
        sa.select(RiskAlert).where(RiskAlert.created_at >= since, RiskAlert.level.in_(("red", "amber")))
    ).scalars()
    facts = []
    for alert in rows:
        if alert.kind in STOP_TITLES:
            facts.append(
                Fact(
                    f"stop:{alert.id}", K.STOP, STOP_TITLES[alert.kind], alert.message, alert.client_id, alert.batch_id
                )
            )
        else:
            facts.append(Fact(f"risk:{alert.id}", K.RISK, "Risk alert", alert.message, alert.client_id, alert.batch_id))
    return facts


def kill_facts(after_seq: int, to_seq: int) -> list[Fact]:
    if to_seq <= after_seq:
        return []
    rows = db.session.execute(
        sa.select(AuditEvent).where(
            AuditEvent.seq > after_seq, AuditEvent.seq <= to_seq, AuditEvent.action.in_(KILL_ACTIONS)
        )
    ).scalars()
    facts = []
    for event in rows:
        on = event.action.endswith(".on")
        verb = "engaged" if on else "re-armed"
        if event.action.startswith("kill_switch.desk"):
            facts.append(Fact(f"kill:{event.seq}", K.KILL, f"Desk kill switch {verb}", f"by {event.actor}", None))
            continue
        client_id = int(event.target.split(":", 1)[1]) if event.target.startswith("client:") else None
        if client_id is None:
            continue
        client = db.session.get(Client, client_id)
        name = client.name if client else f"client {client_id}"
        facts.append(Fact(f"kill:{event.seq}", K.KILL, f"Kill switch {verb}: {name}", f"by {event.actor}", client_id))
    return facts


def session_facts(now: datetime) -> list[Fact]:
    rows = db.session.execute(
        sa.select(Client).where(
            Client.session_enc.is_not(None),
            Client.session_expires_at > now,
            Client.session_expires_at <= now + SESSION_WARNING,
            Client.twin_of_id.is_(None),
        )
    ).scalars()
    return [
        Fact(
            f"session:{client.id}:{int(client.session_expires_at.timestamp())}",
            K.SESSION,
            f"Broker session ending: {client.name}",
            f"The {client.broker} session ends at {format_ist(client.session_expires_at, '%H:%M')} IST; reconnect it "
            "before then to keep trading this client.",
            client.id,
        )
        for client in rows
    ]


# --- recipients and storing ----------------------------------------------------------------------


class Recipients:
    """Who is told about a client's fact: every active user who may see the client (webapp.access's
    rule: those who see every client, and those granted it); a desk-level fact: those who see every
    client. A deployment's paper twin is not a desk client: nobody is told about it."""

    def __init__(self) -> None:
        every = [role for role in ROLES if sees_every_client(role)]
        self.everyone = frozenset(
            db.session.execute(sa.select(User.id).where(User.active.is_(True), User.role.in_(every))).scalars()
        )
        self._cache: dict[int, frozenset[int]] = {}

    def of(self, client_id: int | None) -> frozenset[int]:
        if client_id is None:
            return self.everyone
        if client_id not in self._cache:
            twin = db.session.execute(sa.select(Client.twin_of_id).where(Client.id == client_id)).first()
            if twin is None or twin[0] is not None:
                self._cache[client_id] = frozenset()
            else:
                granted = db.session.execute(
                    sa.select(User.id)
                    .join(user_clients, user_clients.c.user_id == User.id)
                    .where(user_clients.c.client_id == client_id, User.active.is_(True))
                ).scalars()
                self._cache[client_id] = self.everyone | frozenset(granted)
        return self._cache[client_id]


def store(facts: list[Fact], channels: frozenset[str], now: datetime) -> list[tuple[int, int]]:
    """The notifications not yet written, and their deliveries; (id, user id) of those this call wrote."""
    recipients = Recipients()
    wanted = {(user_id, fact.key): fact for fact in facts for user_id in recipients.of(fact.client_id)}
    if not wanted:
        return []
    existing = set()
    keys = sorted({key for _, key in wanted})
    for start in range(0, len(keys), 500):
        existing |= set(
            tuple(row)
            for row in db.session.execute(
                sa.select(Notification.user_id, Notification.key).where(Notification.key.in_(keys[start : start + 500]))
            ).all()
        )
    created = []
    table = Notification.__table__
    for (user_id, key), fact in sorted(wanted.items(), key=lambda item: item[0]):  # one order: no deadlock
        if (user_id, key) in existing:
            continue
        values = {
            "user_id": user_id,
            "key": key,
            "kind": fact.kind,
            "title": fact.title[:120],
            "body": fact.body[:400],
            "client_id": fact.client_id,
            "batch_id": fact.batch_id,
            "created_at": now,
        }
        statement = insert_ignoring(db.session, table, ["user_id", "key"]).values(**values).returning(table.c.id)
        notification_id = db.session.execute(statement).scalar_one_or_none()
        if notification_id is not None:
            created.append((notification_id, user_id, fact.kind))
    _deliveries(created, channels, now)
    return [(nid, user_id) for nid, user_id, _ in created]


def _deliveries(created: list[tuple[int, int, str]], channels: frozenset[str], now: datetime) -> None:
    if not created or not channels:
        return
    users = {user_id for _, user_id, _ in created}
    prefs = {
        p.user_id: p
        for p in db.session.execute(sa.select(NotificationPrefs).where(NotificationPrefs.user_id.in_(users))).scalars()
    }
    for notification_id, user_id, kind in created:
        pref = prefs.get(user_id)
        if pref is None:
            continue
        for channel in wanted_channels(pref, kind) & channels:
            db.session.add(NotificationDelivery(notification_id=notification_id, channel=channel, next_at=now))


def wanted_channels(pref: NotificationPrefs, kind: str) -> set[str]:
    out = set()
    if pref.telegram_chat_id and kind in K.parse_kinds(pref.telegram_kinds):
        out.add("telegram")
    if pref.email and kind in K.parse_kinds(pref.email_kinds):
        out.add("email")
    return out


def announce(redis, created: list[tuple[int, int]]) -> None:
    """After the commit: the users' open pages show the toasts (a lost event: the bell's own refresh)."""
    if created:
        publish(redis, EVENT, notifications=[{"id": nid, "user": uid} for nid, uid in created])


# --- cursors -------------------------------------------------------------------------------------


def cursor(name: str) -> NotificationCursor | None:
    return db.session.get(NotificationCursor, name)


def _since(name: str, now: datetime) -> datetime:
    row = cursor(name)
    start = row.at if row is not None and row.at is not None else now
    return start - SETTLE


def _audit_range(now: datetime) -> tuple[int, int]:
    """(after, to]: the audit seqs this run reads. A first run starts at the events of the last SETTLE."""
    to = db.session.execute(sa.select(sa.func.coalesce(sa.func.max(AuditEvent.seq), 0))).scalar_one()
    row = cursor("audit")
    if row is not None:
        return row.position, to
    before = db.session.execute(
        sa.select(sa.func.coalesce(sa.func.max(AuditEvent.seq), 0)).where(AuditEvent.created_at < now - SETTLE)
    ).scalar_one()
    return before, to


def _advance(name: str, *, at: datetime | None = None, position: int | None = None) -> None:
    """Move a cursor forward only (a slower run at the same time never moves it back)."""
    table = NotificationCursor.__table__
    db.session.execute(insert_ignoring(db.session, table, ["name"]).values(name=name, position=position or 0, at=at))
    if at is not None:
        db.session.execute(
            sa.update(table).where(table.c.name == name, sa.or_(table.c.at.is_(None), table.c.at < at)).values(at=at)
        )
    if position is not None:
        db.session.execute(
            sa.update(table).where(table.c.name == name, table.c.position < position).values(position=position)
        )

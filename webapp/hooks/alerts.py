"""Webhook alerts (TradingView, Chartink) → tickets, or a deployment's signals. No Flask: the route and
the job call these.

receive(): parse the body, name its instruments, fingerprint it, and in ONE transaction store the
HookAlert and open or join the hook's dedupe window (HookWindow: an INSERT that ignores a conflict,
else a conditional UPDATE when the window has passed — of two identical alerts at once exactly one
leads; the other is DUPLICATE). An alert naming no known instrument is stored REJECTED.

process(): a leading RECEIVED alert becomes a ticket for the hook's clients acting as the hook's owner
(role, grants, limits), reviewed and written by the ticket's own review_ticket/create_batch, with
ticket_id = uuid5(NAMESPACE, "hook-alert:<id>") — so a job run twice writes one batch — and the alert
PROCESSED with its batch in the same transaction. Never late: an alert older than the freshness
window is EXPIRED and nothing is sent. A Chartink alert naming several stocks makes one batch per stock.

A signal hook's alert becomes one StrategySignal of its deployment per instrument (signal_action maps
the alert to an Action), acted on by webapp.automation.runner.act_on_external_signal exactly as the
strategy's own signal; the alert turns PROCESSED (with the signal and batch) in that transaction.

The fingerprint is the alert's trading content (source, instruments, side, quantity; Chartink's scan),
not its time or price: TradingView's resends and an indicator firing the same order twice inside the
window are one alert.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from redis.exceptions import RedisError

from webapp import audit
from webapp.access import accessible_clients, sees_every_client
from webapp.automation import deployments, runner, sizing
from webapp.extensions import db
from webapp.models import Batch, Client, Deployment, FundsSnapshot, Instrument, User
from webapp.models.api import (
    DUPLICATE,
    EXPIRED,
    HOOK_SIGNAL,
    HOOK_TICKET,
    PROCESSED,
    RECEIVED,
    REJECTED,
    Hook,
    HookAlert,
    HookWindow,
)
from webapp.models.base import in_ids, insert_ignoring
from webapp.money import round_to_tick
from webapp.permissions import allowed
from webapp.strategies import Action
from webapp.tasks import QUEUE_STRATEGIES, enqueue
from webapp.timeutil import as_utc, utcnow
from webapp.trading.tickets import Ticket, create_batch, existing_batch, reference_price, review_ticket

log = logging.getLogger(__name__)

MAX_BODY = 16 * 1024
PROCESS_JOB = {"result_ttl": 60, "failure_ttl": 3600}
FRESH_SECONDS = 30  # HOOK_FRESH_SECONDS: an alert not processed within this of receipt is EXPIRED
NAMESPACE = uuid.UUID("5b0c7f39-2d1e-4f57-9a53-6c0f3e1a8b42")  # ticket ids of hook alerts
MAX_STOCKS = 50  # a Chartink alert naming more stocks than this is refused whole
ACTIONS = {"buy": "BUY", "sell": "SELL", "long": "BUY", "short": "SELL"}
SIGNAL_SIDES = {"enter_long": "BUY", "enter_short": "SELL", "exit_long": "SELL", "exit_short": "BUY", "exit": None}
POSITIONS = ("long", "short", "flat")
TV_POSITION = re.compile(r"new\s+strategy\s+position\s+is\s+(-?\d+)", re.I)
EXCHANGES = ("NSE", "BSE")
TV_DEFAULT = re.compile(r"order\s+(buy|sell)\s+@\s+(\d+)\s+filled\s+on\s+([A-Za-z0-9_:.&-]+)", re.I)
SYMBOL = re.compile(r"^(?:([A-Za-z_]+):)?([A-Za-z0-9&._-]{1,40})$")
TRADINGVIEW_MESSAGE = {
    "ticker": "{{ticker}}",
    "exchange": "{{exchange}}",
    "action": "{{strategy.order.action}}",
    "contracts": "{{strategy.order.contracts}}",
    "price": "{{close}}",
    "time": "{{timenow}}",
}


SignalSpec = tuple[int, Action, Decimal]  # (instrument id, action, price): one signal of a deployment


class AlertError(ValueError):
    """Why a body is not an alert this hook can act on (stored as the REJECTED alert's reason)."""


@dataclass
class Parsed:
    source: str  # tradingview | chartink
    symbols: list[tuple[str | None, str]] = field(default_factory=list)  # (exchange or None, symbol)
    prices: list[Decimal | None] = field(default_factory=list)  # per symbol (Chartink) or one (TradingView)
    action: str | None = None  # BUY | SELL
    quantity: int | None = None
    scan: str = ""
    signal: str | None = None  # an explicit Action value ("action": "enter_long", ...)
    position: str | None = None  # TradingView's {{strategy.market_position}}: long | short | flat


@dataclass
class Received:
    alert: HookAlert
    leads: bool


# ----------------------------------------------------------------------------- secrets


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()


def find_hook(secret: str) -> Hook | None:
    """The active hook with this secret (None: unknown or inactive; the same answer for both)."""
    if not secret or len(secret) > 200:
        return None
    hook = db.session.execute(sa.select(Hook).where(Hook.secret_hash == secret_hash(secret))).scalar_one_or_none()
    return hook if hook is not None and hook.active else None


def set_secret(hook: Hook) -> str:
    """A new secret for the hook (create or rotate): the hook keeps only its hash; the caller shows it once."""
    secret = new_secret()
    hook.secret_hash, hook.secret_prefix = secret_hash(secret), secret[:6]
    return secret


# ----------------------------------------------------------------------------- parsing


def _text(value: object, limit: int = 64) -> str:
    return value.strip()[:limit] if isinstance(value, str) else str(value)[:limit] if isinstance(value, int) else ""


def _decimal(value: object) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float):
        value = repr(value)
    try:
        number = Decimal(str(value).strip().replace(",", ""))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() and 0 < number < Decimal("1e9") else None


def _quantity(value: object) -> int | None:
    number = _decimal(value)
    if number is None or number != number.to_integral_value() or number > 10_000_000:
        return None
    return int(number)


def _action(value: object) -> str | None:
    return ACTIONS.get(_text(value).lower())


def _symbol(raw: str, exchange: str | None = None) -> tuple[str | None, str] | None:
    match = SYMBOL.match(raw.strip())
    if not match:
        return None
    prefix, symbol = match.groups()
    exchange = (prefix or exchange or "").upper().split("_")[0] or None  # NSE_DL (delayed feed) → NSE
    return exchange, symbol.upper()


def parse(body: str) -> Parsed:
    """TradingView's JSON alert message, TradingView plain text, or Chartink's JSON."""
    text = body.strip()
    data = None
    if text.startswith("{"):
        try:
            data = json.loads(text, parse_float=Decimal, parse_constant=lambda _: None)
        except (ValueError, RecursionError):
            data = None
    if isinstance(data, dict):
        return _parse_chartink(data) if "stocks" in data else _parse_tradingview(data)
    return _parse_text(text)


def _parse_chartink(data: dict) -> Parsed:
    stocks = [s.strip() for s in _text(data.get("stocks"), 4000).split(",") if s.strip()]
    if not stocks:
        raise AlertError("The Chartink alert names no stocks.")
    if len(stocks) > MAX_STOCKS:
        raise AlertError(f"The Chartink alert names more than {MAX_STOCKS} stocks.")
    prices = [_decimal(p) for p in _text(data.get("trigger_prices"), 4000).split(",")]
    scan = " ".join(_text(data.get(k), 200) for k in ("scan_name", "alert_name")).strip()
    words = set(re.findall(r"[a-z]+", scan.lower()))
    action = "BUY" if "buy" in words else "SELL" if "sell" in words else None
    symbols = []
    for stock in stocks:
        parsed = _symbol(stock, "NSE")
        if parsed is None:
            raise AlertError(f"{stock[:40]!r} is not a symbol.")
        symbols.append(parsed)
    return Parsed(
        source="chartink",
        symbols=symbols,
        prices=[prices[i] if i < len(prices) else None for i in range(len(symbols))],
        action=action,
        scan=_text(data.get("scan_url"), 200) or scan,
    )


def _parse_tradingview(data: dict) -> Parsed:
    raw = _text(data.get("ticker") or data.get("symbol") or data.get("tradingsymbol"))
    exchange = _text(data.get("exchange"), 16) or None
    symbols = [_symbol(raw, exchange)] if raw else []
    if raw and symbols[0] is None:
        raise AlertError(f"{raw[:40]!r} is not a symbol.")
    action_raw = data.get("action") or data.get("side")
    signal = _text(action_raw).lower() if _text(action_raw).lower() in SIGNAL_SIDES else None
    action = SIGNAL_SIDES[signal] if signal else _action(action_raw)
    if action_raw is not None and action is None and signal is None:
        raise AlertError("The action must be buy or sell (or enter_long, enter_short, exit, exit_long, exit_short).")
    position_raw = data.get("market_position")
    position = _text(position_raw, 16).lower() or None
    if position is not None and position not in POSITIONS:
        raise AlertError("The market_position must be long, short or flat.")
    quantity_raw = data.get("contracts", data.get("quantity", data.get("qty")))
    quantity = _quantity(quantity_raw)
    if quantity_raw not in (None, "") and quantity is None:
        raise AlertError("The quantity must be a whole number above zero.")
    price = _decimal(data.get("price", data.get("close")))
    return Parsed(
        source="tradingview",
        symbols=symbols,
        prices=[price],
        action=action,
        quantity=quantity,
        signal=signal,
        position=position,
    )


def _parse_text(text: str) -> Parsed:
    """TradingView plain text: its default strategy message ("order buy @ 10 filled on NSE:SBIN. New
    strategy position is 10"), or words: "BUY NSE:SBIN 10 @ 612.5" in any order."""
    if match := TV_DEFAULT.search(text):
        side, contracts, ticker = match.groups()
        after = TV_POSITION.search(text)
        net = int(after.group(1)) if after else None
        return Parsed(
            source="tradingview",
            symbols=[_symbol(ticker.rstrip("."))] if _symbol(ticker.rstrip(".")) else [],
            prices=[None],
            action=ACTIONS[side.lower()],
            quantity=int(contracts),
            position=None if net is None else "long" if net > 0 else "short" if net < 0 else "flat",
        )
    parsed = Parsed(source="tradingview", prices=[None])
    tokens = re.split(r"[\s,;]+", text[:2000])
    after_at = False
    for token in tokens:
        if not token:
            continue
        lower = token.lower()
        if lower in ("@", "at"):
            after_at = True
            continue
        if lower in ACTIONS and parsed.action is None:
            parsed.action = ACTIONS[lower]
        elif (number := _decimal(token)) is not None:
            if after_at or number != number.to_integral_value() or parsed.quantity is not None:
                parsed.prices = [number]
            else:
                parsed.quantity = int(number)
        elif not parsed.symbols and (symbol := _symbol(token)) and any(c.isalpha() for c in symbol[1]):
            parsed.symbols = [symbol]
        after_at = False
    if parsed.action is None and not parsed.symbols:
        raise AlertError("The alert is neither JSON nor text naming a side and a symbol.")
    return parsed


def find_instrument(exchange: str | None, symbol: str) -> Instrument | None:
    query = sa.select(Instrument).where(Instrument.tradingsymbol == symbol)
    if exchange in EXCHANGES:
        query = query.where(Instrument.exchange == exchange)
    found = db.session.execute(query.order_by(Instrument.exchange.desc())).scalars().first()  # NSE before BSE
    return found


def instruments_for(hook: Hook, parsed: Parsed) -> tuple[list[tuple[Instrument, Decimal | None]], list[str]]:
    """The instruments the alert acts on (with its price for each) and the symbols nobody knows."""
    if hook.instrument_id is not None:
        instrument = db.session.get(Instrument, hook.instrument_id)
        return ([(instrument, parsed.prices[0] if parsed.prices else None)] if instrument else []), []
    found, unknown = [], []
    for i, (exchange, symbol) in enumerate(parsed.symbols):
        instrument = find_instrument(exchange, symbol)
        if instrument is None:
            unknown.append(f"{exchange}:{symbol}" if exchange else symbol)
        elif instrument.id not in {f.id for f, _ in found}:
            found.append((instrument, parsed.prices[i] if i < len(parsed.prices) else None))
    return found, unknown


def fingerprint(hook: Hook, parsed: Parsed, instruments: list[Instrument]) -> str:
    normal = {
        "source": parsed.source,
        "instruments": sorted(i.id for i in instruments),
        "action": parsed.action or hook.action,
        "quantity": parsed.quantity,
        "scan": parsed.scan,
    }
    if parsed.signal or parsed.position:  # an entry and an exit of the same side are different alerts
        normal.update(signal=parsed.signal, position=parsed.position)
    return hashlib.sha256(json.dumps(normal, sort_keys=True).encode()).hexdigest()


# ----------------------------------------------------------------------------- receiving


def _window_insert(session):
    return insert_ignoring(session, HookWindow.__table__, ["hook_id", "fingerprint"])


def receive(hook: Hook, body: str, ip: str | None, now: datetime | None = None) -> Received:
    """Store the alert and open or join its dedupe window, in one transaction (committed here)."""
    now = now or utcnow()
    body = body.replace("\x00", "\ufffd")  # PostgreSQL text holds no NUL
    alert = HookAlert(hook_id=hook.id, received_at=now, payload=body[:MAX_BODY], ip=ip, status=RECEIVED)
    try:
        parsed = parse(body)
        found, unknown = instruments_for(hook, parsed)
        if not found:
            raise AlertError(
                "The alert names no known instrument"
                + (f" ({', '.join(unknown)[:200]})." if unknown else ": set one on the hook or send a ticker.")
            )
    except AlertError as exc:
        alert.source, alert.fingerprint = "tradingview" if not body.lstrip().startswith("{") else "json", ""
        alert.status, alert.reason, alert.processed_at = REJECTED, str(exc)[:300], now
        db.session.add(alert)
        db.session.commit()
        return Received(alert, leads=False)
    alert.source = parsed.source
    alert.fingerprint = fingerprint(hook, parsed, [i for i, _ in found])
    db.session.add(alert)
    db.session.flush()
    leads = _open_window(hook, alert, now)
    if not leads:
        leader = db.session.get(HookWindow, (hook.id, alert.fingerprint))
        alert.status, alert.processed_at = DUPLICATE, now
        alert.duplicate_of_id = leader.alert_id if leader is not None else None
        alert.reason = f"the same alert arrived within {hook.dedupe_seconds} s"
    db.session.execute(sa.update(Hook).where(Hook.id == hook.id).values(last_alert_at=now))
    db.session.commit()
    return Received(alert, leads=leads)


def _open_window(hook: Hook, alert: HookAlert, now: datetime) -> bool:
    """True when this alert opens the window (INSERT, or a conditional UPDATE of a passed window)."""
    inserted = db.session.execute(
        _window_insert(db.session)
        .values(hook_id=hook.id, fingerprint=alert.fingerprint, opened_at=now, alert_id=alert.id)
        .returning(HookWindow.__table__.c.hook_id)  # rowcount is not told for ON CONFLICT by every driver
    ).first()
    if inserted is not None:
        return True
    moved = db.session.execute(
        sa.update(HookWindow)
        .where(
            HookWindow.hook_id == hook.id,
            HookWindow.fingerprint == alert.fingerprint,
            HookWindow.opened_at <= now - timedelta(seconds=hook.dedupe_seconds),
        )
        .values(opened_at=now, alert_id=alert.id)
        .execution_options(synchronize_session=False)
    )
    return moved.rowcount == 1


# ----------------------------------------------------------------------------- processing


def ticket_id(alert_id: int, instrument_id: int | None = None) -> str:
    name = f"hook-alert:{alert_id}" if instrument_id is None else f"hook-alert:{alert_id}:{instrument_id}"
    return str(uuid.uuid5(NAMESPACE, name))


def _claim(alert_id: int, now: datetime) -> bool:
    """Take the alert for this transaction (the row is locked until commit: a second run waits, then finds it done)."""
    claimed = db.session.execute(
        sa.update(HookAlert)
        .where(HookAlert.id == alert_id, HookAlert.status == RECEIVED)
        .values(processed_at=now)
        .execution_options(synchronize_session=False)
    )
    return claimed.rowcount == 1


def _finish(alert: HookAlert, status: str, reason: str, now: datetime) -> None:
    alert.status, alert.reason, alert.processed_at = status, reason[:300], now


def process(
    alert_id: int,
    redis=None,
    fresh_seconds: int = FRESH_SECONDS,
    now: datetime | None = None,
    config: Mapping[str, Any] | None = None,
) -> list[int]:
    """Turn a leading RECEIVED alert into its batches (committed); the ids of batches to send now.
    Run twice, the second run finds the alert no longer RECEIVED and writes nothing. A signal hook's
    alert becomes its deployment's signal (_signal): the runner queues that batch itself, so [] here.
    `config`: the app's (the send deadline the runner applies)."""
    now = now or utcnow()
    if not _claim(alert_id, now):
        db.session.rollback()
        return []
    alert = db.session.get(HookAlert, alert_id)
    db.session.refresh(alert)
    if now - as_utc(alert.received_at) > timedelta(seconds=fresh_seconds):
        _finish(alert, EXPIRED, f"not processed within {fresh_seconds} s of receipt: not sent late", now)
        db.session.commit()
        return []
    hook = alert.hook
    if hook.kind == HOOK_SIGNAL:
        return _signal(hook, alert, redis, config or {}, now)
    try:
        batches = _batches(hook, alert, redis)
    except AlertError as exc:
        _finish(alert, REJECTED, str(exc), now)
        db.session.commit()
        return []
    alert.batch_id = batches[0].id
    _finish(alert, PROCESSED, "batches " + ", ".join(f"#{b.id}" for b in batches), now)
    db.session.commit()
    return [b.id for b in batches]


def _batches(hook: Hook, alert: HookAlert, redis) -> list[Batch]:
    owner = db.session.get(User, hook.user_id)
    if owner is None or not owner.active:
        raise AlertError("The hook's owner is deactivated.")
    if not allowed(owner.role, "orders.place"):
        raise AlertError("The hook's owner may not place orders.")
    if not hook.active:
        raise AlertError("The hook was switched off after the alert arrived.")
    if hook.kind != HOOK_TICKET:
        raise AlertError(f"A hook of kind {hook.kind[:8]!r} makes no ticket.")
    parsed = parse(alert.payload)
    found, unknown = instruments_for(hook, parsed)
    action = hook.action or parsed.action
    if action not in ("BUY", "SELL"):
        raise AlertError("The alert names no side (buy or sell) and the hook fixes none.")
    granted = {c.id: c for c in accessible_clients(owner) if c.enabled}
    wanted = [int(k) for k in hook.quantities] if hook.quantities else [int(i) for i in hook.client_ids]
    clients = [granted[i] for i in wanted if i in granted]
    if not clients:
        raise AlertError("None of the hook's clients is one its owner may trade.")
    batches, problems = [], [f"unknown: {', '.join(unknown)}"] if unknown else []
    for instrument, price in found:
        tid = ticket_id(alert.id, instrument.id if parsed.source == "chartink" else None)
        if (done := existing_batch(tid)) is not None:
            batches.append(done)
            continue
        ticket = Ticket(
            ticket_id=tid,
            action=action,
            instrument_id=instrument.id,
            product=hook.product,
            order_type=hook.order_type,
            price=_limit_price(hook, instrument, price, action),
            quantities=_quantities(hook, parsed, instrument, price, clients, redis),
            kind="hook",
            note=f"hook {hook.name}: alert #{alert.id}"[:200],
        )
        review = review_ticket(owner, ticket, clients, redis)
        if not review.checks:
            problems.append(
                f"{instrument.tradingsymbol}: "
                + "; ".join([*review.errors.values(), *review.quantity_errors.values()] or ["no price"])
            )
            continue
        batches.append(create_batch(owner, ticket, review))
        db.session.flush()
    if not batches:
        raise AlertError("; ".join(problems) or "No batch could be made.")
    return batches


def signal_action(parsed: Parsed) -> Action:
    """The deployment signal an alert asks for. An explicit action (enter_long, enter_short, exit,
    exit_long, exit_short) as is; TradingView's order action with its market position after the order:
    buy+long → ENTER_LONG, sell+short → ENTER_SHORT, sell+flat → EXIT_LONG, buy+flat → EXIT_SHORT;
    without a position (and Chartink's scan): buy → ENTER_LONG, sell → EXIT."""
    if parsed.signal:
        return Action(parsed.signal)
    side, position = parsed.action, parsed.position
    if side not in ("BUY", "SELL"):
        raise AlertError("The alert names no action: buy or sell (or enter_long, enter_short, exit, ...).")
    if position is None:
        return Action.ENTER_LONG if side == "BUY" else Action.EXIT
    if position == "flat":
        return Action.EXIT_SHORT if side == "BUY" else Action.EXIT_LONG
    if (side, position) in (("BUY", "long"), ("SELL", "short")):
        return Action.ENTER_LONG if side == "BUY" else Action.ENTER_SHORT
    raise AlertError(f"A {side.lower()} leaving the strategy {position} (a partial exit) is not a deployment signal.")


def _signal(hook: Hook, alert: HookAlert, redis, config: Mapping[str, Any], now: datetime) -> list[int]:
    """One signal of the hook's deployment per instrument of the alert, acted on by the runner as the
    strategy's own, with the alert PROCESSED (its signal and batch) in that transaction — a conditional
    UPDATE RECEIVED → PROCESSED the runner makes first, so a job run twice makes one signal. Refused
    here (REJECTED with the reason) when the hook may not act or the alert fits no instrument of it."""
    try:
        deployment, signals, skipped = _signal_plan(hook, alert, redis)
    except AlertError as exc:
        _finish(alert, REJECTED, str(exc), now)
        db.session.commit()
        return []
    alert_id = alert.id

    def claim() -> bool:
        done = db.session.execute(
            sa.update(HookAlert)
            .where(HookAlert.id == alert_id, HookAlert.status == RECEIVED)
            .values(status=PROCESSED, processed_at=now)
            .execution_options(synchronize_session=False)
        )
        return done.rowcount == 1

    def settle(results: list[runner.Evaluation]) -> None:
        alert.status, alert.signal_id = PROCESSED, results[0].signal_id
        alert.batch_id = next((b for r in results for b in r.batch_ids), None)
        reason = "; ".join([*(f"signal #{r.signal_id}: {r.outcome}" for r in results), *skipped])
        _finish(alert, PROCESSED, reason, now)

    runner.act_on_external_signal(
        deployment.id,
        signals,
        as_utc(alert.received_at),
        claim=claim,
        settle=settle,
        config=config,
        redis=redis,
        now=now,
    )
    return []


def _signal_plan(hook: Hook, alert: HookAlert, redis) -> tuple[Deployment, list[SignalSpec], list[str]]:
    """The deployment, its signals (instrument, action, price) and the alert's instruments it does not trade."""
    owner = db.session.get(User, hook.user_id)
    if owner is None or not owner.active:
        raise AlertError("The hook's owner is deactivated.")
    if not hook.active:
        raise AlertError("The hook was switched off after the alert arrived.")
    if not allowed(owner.role, "deployments.manage"):
        raise AlertError("The hook's owner may not manage deployments.")
    deployment = deployments.visible_one(owner, hook.deployment_id) if hook.deployment_id else None
    if deployment is None:
        raise AlertError("The hook's deployment is gone, or is not one its owner may manage.")
    parsed = parse(alert.payload)
    action = signal_action(parsed)
    found, unknown = instruments_for(hook, parsed)
    traded = {link.instrument_id for link in deployment.instruments}
    signals, skipped = [], [f"unknown: {', '.join(unknown)}"] if unknown else []
    outside = []
    for instrument, price in found:
        if instrument.id not in traded:
            outside.append(instrument.key)
            continue
        price = price or reference_price(instrument, redis)
        if price is None:
            skipped.append(f"{instrument.key}: no price")
            continue
        signals.append((instrument.id, action, price))
    if outside:
        skipped.append(f"not traded by deployment {deployment.name}: {', '.join(outside)}")
    if not signals:
        raise AlertError("; ".join(skipped) or "No instrument of the deployment.")
    return deployment, signals, skipped


def _limit_price(hook: Hook, instrument: Instrument, price: Decimal | None, action: str) -> Decimal | None:
    if hook.order_type != "LIMIT":
        return None
    if price is None:
        raise AlertError("A LIMIT hook needs the alert's price (TradingView's {{close}}).")
    offset = hook.limit_offset or Decimal(0)
    limit = price + offset if action == "BUY" else price - offset
    return round_to_tick(limit, instrument.tick_size, up=action == "SELL")


def _quantities(
    hook: Hook, parsed: Parsed, instrument: Instrument, price: Decimal | None, clients: list[Client], redis
) -> dict[int, int]:
    if hook.quantities:
        return {c.id: int(hook.quantities.get(str(c.id), 0)) for c in clients}
    value = hook.sizing_value if hook.sizing_value is not None else parsed.quantity
    price = price or reference_price(instrument, redis)
    capital = {
        f.client_id: f.available_margin
        for f in db.session.execute(
            sa.select(FundsSnapshot).where(in_ids(FundsSnapshot.client_id, [c.id for c in clients]))
        ).scalars()
    }
    return {
        c.id: sizing.quantity(
            hook.sizing,
            value,
            price=price,
            lot_size=instrument.lot_size,
            capital=capital.get(c.id),
            cap=c.max_quantity,
            max_value=c.max_order_value,
        )[0]
        for c in clients
    }


# ----------------------------------------------------------------------------- the queue and the sweep


def queue_alert(alert_id: int) -> bool:
    """Queue the processing of a stored alert; False when the queue is away (the sweep retries it)."""
    try:
        enqueue(
            "jobs.hooks.process", alert_id, queue_name=QUEUE_STRATEGIES, job_id=f"hook-alert-{alert_id}", **PROCESS_JOB
        )
    except RedisError as exc:
        log.warning("op=enqueue alert=%s job=hook result=failed error=%s", alert_id, exc)
        return False
    return True


def sweep(fresh_seconds: int = FRESH_SECONDS, grace_seconds: int = 3, now: datetime | None = None) -> list[int]:
    """Expire RECEIVED alerts past the freshness window (committed); the ids of fresh ones older than
    the grace (their worker died, or the queue was away) to queue again."""
    now = now or utcnow()
    stale = now - timedelta(seconds=fresh_seconds)
    db.session.execute(
        sa.update(HookAlert)
        .where(HookAlert.status == RECEIVED, HookAlert.received_at < stale)
        .values(status=EXPIRED, processed_at=now, reason=f"not processed within {fresh_seconds} s: not sent late")
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return list(
        db.session.execute(
            sa.select(HookAlert.id).where(
                HookAlert.status == RECEIVED,
                HookAlert.received_at >= stale,
                HookAlert.received_at < now - timedelta(seconds=grace_seconds),
            )
        ).scalars()
    )


# ----------------------------------------------------------------------------- hooks (pages)


def visible(user: User) -> sa.Select:
    query = sa.select(Hook).order_by(Hook.created_at.desc())
    return query if sees_every_client(user.role) else query.where(Hook.user_id == user.id)


def visible_one(user: User, hook_id: int) -> Hook | None:
    hook = db.session.get(Hook, hook_id)
    if hook is None or (not sees_every_client(user.role) and hook.user_id != user.id):
        return None
    return hook


def recent_alerts(hook_id: int, limit: int = 50) -> list[HookAlert]:
    return list(
        db.session.execute(
            sa.select(HookAlert).where(HookAlert.hook_id == hook_id).order_by(HookAlert.id.desc()).limit(limit)
        ).scalars()
    )


def audit_hook(action: str, user: User, hook: Hook, ip: str | None, detail: dict | None = None) -> None:
    audit.record(
        f"hook.{action}",
        actor_id=user.id,
        actor=user.username,
        target=f"hook:{hook.id}",
        clients=[int(k) for k in hook.quantities] or [int(i) for i in hook.client_ids],
        ip=ip,
        detail={
            "name": hook.name,
            "secret": f"{hook.secret_prefix}…",
            **({"deployment": hook.deployment_id} if hook.kind == HOOK_SIGNAL else {}),
            **(detail or {}),
        },
    )


def tradingview_message(hook: Hook | None = None) -> str:
    """The JSON to paste into TradingView's alert; a signal hook's also carries the position after the
    order, which tells an entry from an exit."""
    message = dict(TRADINGVIEW_MESSAGE)
    if hook is not None and hook.kind == HOOK_SIGNAL:
        message["market_position"] = "{{strategy.market_position}}"
    return json.dumps(message, indent=2)


def deployment_of(hook: Hook) -> Deployment | None:
    return db.session.get(Deployment, hook.deployment_id) if hook.deployment_id else None


def deployments_of(hooks: list[Hook]) -> dict[int, Deployment]:
    """The deployments these hooks name, by id (one query)."""
    ids = [h.deployment_id for h in hooks if h.deployment_id]
    if not ids:
        return {}
    return {d.id: d for d in db.session.execute(sa.select(Deployment).where(in_ids(Deployment.id, ids))).scalars()}

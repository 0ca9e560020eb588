"""The paper exchange: a simulated NSE cash market with its own order book, funds and portfolio.

It behaves like a remote broker. It works on its own SQLAlchemy sessions bound to the engine (never
on the desk's `db.session`), commits its own transactions, and holds the account's row lock while it
checks and books, so any number of web, worker and feed processes share one consistent book. While
it holds that lock it waits on nothing else: quotes are read from Redis before the lock is taken
(on SQLite the lock is the database's one write lock, and a Redis pause inside it timed every other
placement out into UNKNOWN).

Execution, as a trader sees it:
- MARKET fills at once against the opposite depth, level by level (that walk is the slippage), no
  further than the market protection (default 5% from the last price). Whatever the depth cannot
  fill is cancelled, IOC-style: the book shows CANCELLED with the filled quantity and the reason.
  NSE would park an unfilled market remainder as a limit order; Indian brokers' mandatory market
  protection makes it IOC-like in practice, and a market order that never rests is what a trader
  expects from a simulator.
- LIMIT takes the depth up to its price on arrival (price improvement, as on the exchange); the
  rest rests and later fills *at its own price* when a quote's opposite side crosses it, for as much
  as that side shows (`match_resting`). IOC limits cancel the rest.
- SL / SL-M wait in TRIGGER_PENDING until the last price reaches the trigger, then arrive as a
  LIMIT / a MARKET order.
- MIS is blocked for new exposure after the square-off time; `square_off_intraday` closes the rest.
  CNC / MTF buys become holdings at `day_roll` (T1 first, settled at the next roll); their sells need
  the stock (today's buys plus holdings, less what other open sells already reserve).
- No brokerage, taxes or MTF interest: paper P&L is the price difference alone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from webapp.brokers.base import (
    BrokerOrderStatus as Status,
)
from webapp.brokers.base import (
    Funds,
    Holding,
    InstrumentRef,
    InstrumentRow,
    Order,
    OrderRequest,
    OrderType,
    Position,
    Product,
    Quote,
    Rejected,
    Side,
    Trade,
    Validity,
)
from webapp.brokers.paper import events, reports, rules
from webapp.brokers.paper.ledger import OPEN_STATUSES, Ledger, lock_account, make_id
from webapp.brokers.paper.matching import book_side, last_price_in_band, protection_limit, walk
from webapp.brokers.paper.quotes import QuoteBook, band_of
from webapp.brokers.paper.rules import DELIVERY_PRODUCTS, MarginPolicy
from webapp.models import Instrument
from webapp.models.paper import PaperAccount, PaperOrder
from webapp.timeutil import utcnow

log = logging.getLogger(__name__)

DEFAULT_OPENING_CASH = Decimal("1000000")  # ₹10,00,000
DEFAULT_PROTECTION_PCT = Decimal(5)
_MARKET_LIKE = (OrderType.MARKET, OrderType.SLM)


class PaperExchange:
    def __init__(
        self,
        engine,
        *,
        redis=None,
        opening_cash: Decimal = DEFAULT_OPENING_CASH,
        policy: MarginPolicy | None = None,
        always_open: bool = False,
        holidays: Iterable[date] = (),
        square_off_at: time = rules.SQUARE_OFF_AT,
        protection_pct: Decimal = DEFAULT_PROTECTION_PCT,
        clock=utcnow,
    ):
        self.engine = engine
        self.book = QuoteBook(redis)
        self.opening_cash = opening_cash
        self.policy = policy or MarginPolicy()
        self.always_open = always_open
        self.holidays = frozenset(holidays)
        self.square_off_at = square_off_at
        self.protection_pct = protection_pct
        self.clock = clock

    @classmethod
    def from_options(cls, engine, options: Mapping[str, Any]) -> PaperExchange:
        """Build from the adapter's options (see PaperBroker for the list)."""
        redis = options.get("redis")
        if redis is None and options.get("redis_url"):
            import redis as redis_lib

            redis = redis_lib.Redis.from_url(options["redis_url"], decode_responses=True)
        square_off = options.get("square_off_time", rules.SQUARE_OFF_AT)
        if isinstance(square_off, str):
            square_off = time.fromisoformat(square_off)
        return cls(
            engine,
            redis=redis,
            opening_cash=Decimal(str(options.get("opening_cash", DEFAULT_OPENING_CASH))),
            policy=MarginPolicy(
                Decimal(str(options.get("mis_leverage", 5))), Decimal(str(options.get("mtf_funded_pct", 75)))
            ),
            always_open=bool(options.get("always_open", False)),
            holidays=options.get("holidays", ()),
            square_off_at=square_off,
            protection_pct=Decimal(str(options.get("market_protection_pct", DEFAULT_PROTECTION_PCT))),
            clock=options.get("clock", utcnow),
        )

    # ------------------------------------------------------------------ plumbing

    @contextmanager
    def locked(self, client_code: str, now: datetime, opening_cash: Decimal | None = None) -> Iterator[Ledger]:
        """One transaction holding the account's row lock (the account is created on first use)."""
        with Session(self.engine, expire_on_commit=False) as s, s.begin():
            account = lock_account(s, client_code, opening_cash or self.opening_cash, now)
            yield Ledger(s, account, self.policy)

    @contextmanager
    def reading(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as s:
            yield s

    def _instrument(self, s: Session, exchange: str, tradingsymbol: str) -> Instrument:
        query = sa.select(Instrument).filter_by(exchange=exchange, tradingsymbol=tradingsymbol)
        found = s.execute(query).scalar_one_or_none()
        if found is None:
            raise Rejected(f"Unknown instrument {exchange}:{tradingsymbol}")
        return found

    def _priced(self, exchange: str, tradingsymbol: str) -> tuple[Instrument, Quote]:
        """The instrument (read, then the session closed) and its quote: before any lock is taken."""
        with self.reading() as s:
            instrument = self._instrument(s, exchange, tradingsymbol)
        return instrument, self.quote_for(instrument)

    def quote_for(self, instrument: Instrument) -> Quote:
        quote = self.book.quote(instrument)
        if quote is None:
            raise Rejected(f"No market price for {instrument.key} yet")
        return quote

    def _check_session(self, now: datetime) -> None:
        if not self.always_open and not rules.is_market_open(now, self.holidays):
            raise Rejected(rules.MARKET_CLOSED)

    # ------------------------------------------------------------------ accounts

    def ensure_account(self, client_code: str, cash: Decimal | None = None) -> Funds:
        """Create the account with `cash` (default: the opening cash) unless it exists; its funds."""
        with self.locked(client_code, self.clock(), opening_cash=cash) as ledger:
            return ledger.funds()

    def funds(self, client_code: str) -> Funds:
        """Cash and margin; a client's first question opens its account, as a broker's first login would."""
        with self.reading() as s:
            account = s.execute(sa.select(PaperAccount).filter_by(client_code=client_code)).scalar_one_or_none()
            if account is not None:
                return Ledger(s, account, self.policy).funds()
        return self.ensure_account(client_code)

    # ------------------------------------------------------------------ reports (webapp/brokers/paper/reports.py)

    def order_book(self, client_code: str) -> list[Order]:
        return reports.order_book(self, client_code)

    def orders_by_tag(self, client_code: str, tag: str) -> list[Order]:
        return reports.order_book(self, client_code, tag=tag)

    def trades(self, client_code: str) -> list[Trade]:
        return reports.trades(self, client_code)

    def positions(self, client_code: str) -> list[Position]:
        return reports.positions(self, client_code)

    def holdings(self, client_code: str) -> list[Holding]:
        return reports.holdings(self, client_code)

    def quotes(self, refs: Sequence[InstrumentRef]) -> dict[str, Quote]:
        return reports.quotes(self, refs)

    def instruments(self) -> list[InstrumentRow]:
        return reports.instruments(self)

    # ------------------------------------------------------------------ market events (events.py)

    def match_resting(self, quotes: Iterable[Quote]) -> list[str]:
        """Fill resting LIMIT orders the quotes cross and fire the stops they reach; the order ids changed."""
        return events.match_resting(self, quotes)

    def square_off_intraday(self, now: datetime | None = None, client_codes: Iterable[str] | None = None) -> list[str]:
        """From the square-off time on, cancel open MIS orders and close MIS positions; the orders placed."""
        return events.square_off_intraday(self, now, client_codes)

    def day_roll(self, now: datetime | None = None, client_codes: Iterable[str] | None = None) -> list[str]:
        """Expire orders, settle T1, move delivery buys to holdings; once per IST date. The accounts rolled."""
        return events.day_roll(self, now, client_codes)

    # ------------------------------------------------------------------ orders

    def place(self, client_code: str, request: OrderRequest) -> str:
        rules.check_request(request)  # malformed orders are refused before the book is touched
        now = self.clock()
        self._check_session(now)
        instrument, quote = self._priced(request.exchange, request.tradingsymbol)
        with self.locked(client_code, now) as ledger:
            rules.check_request(request, instrument.lot_size)
            band = band_of(quote, instrument)
            rules.check_prices(
                request.side,
                request.order_type,
                request.price,
                request.trigger_price,
                instrument.tick_size,
                band,
                quote.last_price,
            )
            order = self.new_order(ledger.account, instrument, request, now)
            self._reserve(ledger, order, quote, instrument.tick_size, band, now)
            ledger.s.add(order)
            ledger.s.flush()
            order.order_id = make_id("P", order.id, now)
            self.arrive(ledger, order, quote, instrument.tick_size, band, now)
        log.info(
            "broker=paper op=place client=%s order_id=%s tag=%s status=%s filled=%s/%s",
            client_code,
            order.order_id,
            order.tag,
            order.status,
            order.filled_quantity,
            order.quantity,
        )
        return order.order_id

    def modify(
        self,
        client_code: str,
        order_id: str,
        *,
        quantity: int | None = None,
        price: Decimal | None = None,
        trigger_price: Decimal | None = None,
        order_type: OrderType | None = None,
        validity: Validity | None = None,
    ) -> str:
        now = self.clock()
        self._check_session(now)
        instrument, quote = self._order_priced(client_code, order_id)
        with self.locked(client_code, now) as ledger:
            order = self._open_order(ledger, order_id, "modified")
            new_type = order_type or OrderType(order.order_type)
            quantity = order.quantity if quantity is None else quantity
            if quantity <= order.filled_quantity:
                raise Rejected(
                    f"Quantity must be more than the {order.filled_quantity} already filled"
                    if order.filled_quantity
                    else "Quantity must be greater than zero"
                )
            price = price if price is not None else order.price
            trigger_price = trigger_price if trigger_price is not None else order.trigger_price
            rules.check_shape(quantity, Product(order.product), new_type, price, trigger_price, instrument.lot_size)
            band = band_of(quote, instrument)
            # an untriggered stop (or a new one) is checked against the market again; a fired one is a limit now
            becomes_stop = rules.uses_trigger(new_type) and (new_type.value != order.order_type or not order.triggered)
            rules.check_prices(
                Side(order.side),
                new_type,
                price,
                trigger_price,
                instrument.tick_size,
                band,
                quote.last_price if becomes_stop else None,
            )
            order.triggered = order.triggered and not becomes_stop
            order.order_type, order.quantity, order.updated_at = new_type.value, quantity, now
            order.price = price if rules.uses_price(new_type) else None
            order.trigger_price = trigger_price if rules.uses_trigger(new_type) else None
            order.validity = (validity or Validity(order.validity)).value
            self._reserve(ledger, order, quote, instrument.tick_size, band, now)
            self.arrive(ledger, order, quote, instrument.tick_size, band, now)
        log.info(
            "broker=paper op=modify client=%s order_id=%s status=%s filled=%s/%s",
            client_code,
            order_id,
            order.status,
            order.filled_quantity,
            order.quantity,
        )
        return order_id

    def cancel(self, client_code: str, order_id: str) -> str:
        now = self.clock()
        with self.locked(client_code, now) as ledger:
            order = self._open_order(ledger, order_id, "cancelled")
            self.close_order(order, Status.CANCELLED, "Cancelled on request", now)
        log.info("broker=paper op=cancel client=%s order_id=%s status=CANCELLED", client_code, order_id)
        return order_id

    def _order_priced(self, client_code: str, order_id: str) -> tuple[Instrument, Quote]:
        """An order's instrument (it never changes) and its quote, read before the account is locked."""
        with self.reading() as s:
            instrument = s.execute(
                sa.select(Instrument)
                .join(PaperOrder, PaperOrder.instrument_id == Instrument.id)
                .join(PaperAccount, PaperOrder.account_id == PaperAccount.id)
                .where(PaperOrder.order_id == order_id, PaperAccount.client_code == client_code)
            ).scalar_one_or_none()
        if instrument is None:
            raise Rejected(f"Order {order_id} not found")
        return instrument, self.quote_for(instrument)

    def _open_order(self, ledger: Ledger, order_id: str, verb: str) -> PaperOrder:
        order = ledger.s.execute(
            sa.select(PaperOrder).filter_by(order_id=order_id, account_id=ledger.account.id).with_for_update()
        ).scalar_one_or_none()
        if order is None:
            raise Rejected(f"Order {order_id} not found")
        if order.status not in OPEN_STATUSES:
            raise Rejected(f"Order {order_id} is {order.status} and can no longer be {verb}")
        return order

    @staticmethod
    def new_order(account: PaperAccount, instrument: Instrument, request: OrderRequest, now: datetime) -> PaperOrder:
        kind = OrderType(request.order_type)
        return PaperOrder(
            account_id=account.id,
            instrument_id=instrument.id,
            exchange=instrument.exchange,
            tradingsymbol=instrument.tradingsymbol,
            tag=request.tag,
            side=Side(request.side).value,
            product=Product(request.product).value,
            order_type=kind.value,
            validity=Validity(request.validity).value,
            quantity=request.quantity,
            filled_quantity=0,
            filled_value=Decimal(0),
            price=request.price if rules.uses_price(kind) else None,
            trigger_price=request.trigger_price if rules.uses_trigger(kind) else None,
            status=Status.PENDING.value,
            opening_quantity=0,
            triggered=False,
            placed_at=now,
            updated_at=now,
        )

    # ------------------------------------------------------------------ margin and stock

    def _set_block(
        self, ledger: Ledger, order: PaperOrder, quote: Quote, tick: Decimal, band: tuple[Decimal, Decimal]
    ) -> None:
        """Work out what the order holds while open: its opening quantity and the price it is valued at."""
        side, product, kind = Side(order.side), Product(order.product), OrderType(order.order_type)
        position = ledger.find_position(order.instrument_id, product)
        net = position.net_quantity if position else 0
        if product in DELIVERY_PRODUCTS:
            order.opening_quantity = order.pending_quantity if side is Side.BUY else 0
        else:
            order.opening_quantity = rules.opening_quantity(side, order.pending_quantity, net)
        if kind is OrderType.MARKET:  # it trades now: value it at the worst level it will reach
            fills = walk(
                book_side(side, quote, tick, band),
                side,
                order.pending_quantity,
                self._protection(side, quote, tick, band),
            )
            order.opening_quantity = min(order.opening_quantity, sum(f.quantity for f in fills))
            order.block_price = fills[-1].price if fills else last_price_in_band(quote, tick, band)
        else:
            order.block_price = order.trigger_price if kind is OrderType.SLM else order.price

    def _reserve(
        self,
        ledger: Ledger,
        order: PaperOrder,
        quote: Quote,
        tick: Decimal,
        band: tuple[Decimal, Decimal],
        now: datetime,
    ) -> None:
        """RMS before the order reaches the book: stock for delivery sells, the MIS cut-off, funds."""
        self._set_block(ledger, order, quote, tick, band)
        side, product = Side(order.side), Product(order.product)
        if product in DELIVERY_PRODUCTS and side is Side.SELL:
            self._check_stock(ledger, order)
        if (
            product is Product.MIS
            and order.opening_quantity
            and not self.always_open
            and rules.after_square_off(now, self.square_off_at)
        ):
            raise Rejected(rules.MIS_BLOCKED)
        required = ledger.order_block(order)
        if required > 0:
            available = ledger.funds(exclude=order).available_margin
            if required > available:
                raise rules.insufficient_funds(required, available)

    def _check_stock(self, ledger: Ledger, order: PaperOrder) -> None:
        position = ledger.find_position(order.instrument_id, order.product)
        holding = ledger.holding(order.instrument_id, order.product)
        held = max(position.net_quantity if position else 0, 0) + (holding.total_quantity if holding else 0)
        reserved = sum(
            o.pending_quantity
            for o in ledger.open_orders(instrument_id=order.instrument_id, product=order.product, side=Side.SELL.value)
            if o is not order
        )
        if order.pending_quantity > held - reserved:
            raise rules.insufficient_holdings(
                order.pending_quantity, order.tradingsymbol, Product(order.product), max(held - reserved, 0)
            )

    def margin_required(self, client_code: str, requests: Iterable[OrderRequest]) -> Decimal:
        """Margin these orders would block now, each on its own against the current positions.
        A question, not an order: read-only, it creates nothing (not even the account)."""
        total = Decimal(0)
        now = self.clock()
        with self.reading() as s:
            account = s.execute(
                sa.select(PaperAccount).filter_by(client_code=client_code)
            ).scalar_one_or_none() or PaperAccount(client_code=client_code)  # unsaved: no positions, nothing open
            ledger = Ledger(s, account, self.policy)
            for request in requests:
                rules.check_request(request)
                instrument = self._instrument(s, request.exchange, request.tradingsymbol)
                quote = self.quote_for(instrument)
                order = self.new_order(account, instrument, request, now)
                self._set_block(ledger, order, quote, instrument.tick_size, band_of(quote, instrument))
                total += ledger.order_block(order)
        return total

    # ------------------------------------------------------------------ execution

    def _protection(self, side: Side, quote: Quote, tick: Decimal, band: tuple[Decimal, Decimal]) -> Decimal:
        return protection_limit(side, last_price_in_band(quote, tick, band), self.protection_pct, tick, band)

    def arrive(
        self,
        ledger: Ledger,
        order: PaperOrder,
        quote: Quote,
        tick: Decimal,
        band: tuple[Decimal, Decimal],
        now: datetime,
    ) -> None:
        """The order meets the market: on placement, on modify, and when a stop triggers."""
        kind, side = OrderType(order.order_type), Side(order.side)
        if rules.uses_trigger(kind) and not order.triggered:
            order.status = Status.TRIGGER_PENDING.value
            return
        limit = self._protection(side, quote, tick, band) if kind in _MARKET_LIKE else order.price
        for fill in walk(book_side(side, quote, tick, band), side, order.pending_quantity, limit):
            ledger.book(order, fill, now)
        self.settle_status(order, ioc=kind in _MARKET_LIKE or order.validity == Validity.IOC.value, now=now)

    def settle_status(self, order: PaperOrder, ioc: bool, now: datetime) -> None:
        if order.pending_quantity == 0:
            self.close_order(order, Status.COMPLETE, None, now)
        elif ioc:
            why = (
                "not matched immediately (IOC)"
                if order.order_type in rules.LIMIT_TYPES
                else "no more depth within the market protection"
            )
            message = f"{order.pending_quantity} of {order.quantity} cancelled: {why}"
            self.close_order(order, Status.CANCELLED, message, now)
        else:
            order.status = (Status.PARTIAL if order.filled_quantity else Status.OPEN).value

    @staticmethod
    def close_order(order: PaperOrder, status: Status, message: str | None, now: datetime) -> None:
        order.status, order.status_message, order.updated_at = status.value, message, now

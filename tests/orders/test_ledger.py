"""Position arithmetic against an independent replay of the fills in exact rational arithmetic
(average-cost method): realized and unrealized P&L agree to the paisa for any sequence of fills —
partial exits, adds, reversals, shorts."""

from decimal import Decimal
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from webapp.trading.ledger import Book, apply_fill, unrealized

PAISA = Fraction(1, 100) / 2  # "to the paisa": within half a paisa of the exact value
prices = st.integers(min_value=1, max_value=2_000_000).map(lambda paise: Decimal(paise) / 100)
fills = st.lists(
    st.tuples(st.sampled_from(["BUY", "SELL"]), st.integers(min_value=1, max_value=100_000), prices),
    min_size=1,
    max_size=40,
)


def replay(sequence):
    """Exact average cost with Fractions: (net quantity, open cost, realized)."""
    qty, cost, realized = 0, Fraction(0), Fraction(0)
    for side, n, price in sequence:
        price = Fraction(price)
        signed = n if side == "BUY" else -n
        if qty == 0 or (qty > 0) == (signed > 0):
            qty, cost = qty + signed, cost + price * n
            continue
        closing = min(abs(qty), n)
        direction = 1 if qty > 0 else -1
        closed_cost = cost * closing / abs(qty)
        realized += (price * closing - closed_cost) * direction
        rest = qty + signed
        if rest == 0:
            qty, cost = 0, Fraction(0)
        elif (rest > 0) == (qty > 0):
            qty, cost = rest, cost - closed_cost
        else:
            qty, cost = rest, price * abs(rest)
    return qty, cost, realized


@settings(max_examples=400, deadline=None)
@given(fills, prices)
def test_ledger_matches_an_exact_replay(sequence, mark):
    book = Book()
    for side, qty, price in sequence:
        book = apply_fill(book, side, qty, price)
    qty, cost, realized = replay(sequence)
    assert book.quantity == qty
    assert abs(Fraction(book.realized_pnl) - realized) <= PAISA
    direction = 1 if qty >= 0 else -1
    exact_unrealized = (Fraction(mark) * abs(qty) - cost) * direction if qty else Fraction(0)
    assert abs(Fraction(unrealized(book, mark)) - exact_unrealized) <= PAISA


def test_partial_exit_keeps_the_average_and_realizes():
    book = apply_fill(apply_fill(Book(), "BUY", 10, Decimal("100")), "BUY", 10, Decimal("110"))
    assert (book.quantity, book.average_price, book.realized_pnl) == (20, Decimal("105.0000"), 0)
    book = apply_fill(book, "SELL", 5, Decimal("120"))
    assert (book.quantity, book.average_price, book.realized_pnl) == (15, Decimal("105.0000"), Decimal("75"))


def test_reversal_opens_the_rest_at_the_fill_price():
    book = apply_fill(Book(10, Decimal("1000"), Decimal("0")), "SELL", 25, Decimal("90"))
    assert (book.quantity, book.average_price, book.realized_pnl) == (-15, Decimal("90.0000"), Decimal("-100"))
    assert unrealized(book, Decimal("80")) == Decimal("150")


def test_short_then_cover():
    book = apply_fill(Book(), "SELL", 3, Decimal("250.05"))
    book = apply_fill(book, "BUY", 3, Decimal("249.00"))
    assert (book.quantity, book.cost, book.realized_pnl) == (0, 0, Decimal("3.15"))

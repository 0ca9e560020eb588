"""The one money type is Decimal. Helpers for ticks and display."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal, InvalidOperation, localcontext

PAISA = Decimal("0.01")


def to_decimal(value: object) -> Decimal:
    """Decimal from str/int/Decimal (never from float: that is how paise get lost)."""
    if isinstance(value, float):
        raise TypeError("floats are not money; pass a str or Decimal")
    try:
        return Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"not a number: {value!r}") from None


def is_tick_multiple(price: Decimal, tick: Decimal) -> bool:
    return tick > 0 and (price / tick) == (price / tick).to_integral_value()


def round_to_tick(price: Decimal, tick: Decimal, up: bool | None = None) -> Decimal:
    """Round to a tick multiple: up, down, or to nearest (up=None)."""
    rounding = ROUND_HALF_UP if up is None else (ROUND_CEILING if up else ROUND_FLOOR)
    return ((price / tick).to_integral_value(rounding=rounding) * tick).quantize(tick)


def rupees(value: Decimal | None, places: int = 2) -> str:
    """Indian digit grouping (12,34,567.89) for display."""
    if value is None:
        return ""
    if isinstance(value, int):  # sum() of nothing is 0
        value = Decimal(value)
    if not value.is_finite():  # an odd stored value still renders (the input layer refuses new ones)
        return str(value)
    q = Decimal(1).scaleb(-places)
    with localcontext() as context:  # quantize raises past the context's 28 digits: a huge stored limit
        context.prec = max(context.prec, value.adjusted() + places + 2)
        value = value.quantize(q, rounding=ROUND_HALF_UP)
    sign = "-" if value < 0 else ""
    whole, _, frac = f"{value:f}".lstrip("-").partition(".")
    if len(whole) > 3:
        head, tail = whole[:-3], whole[-3:]
        groups = []
        while len(head) > 2:
            groups.insert(0, head[-2:])
            head = head[:-2]
        if head:
            groups.insert(0, head)
        whole = ",".join(groups + [tail])
    return f"{sign}{whole}.{frac}" if places else f"{sign}{whole}"

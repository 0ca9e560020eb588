"""How many shares a deployment's signal buys or sells for one client: the sizing rule × its value,
rounded DOWN to the instrument's lot, capped by the client's max quantity and max order value.

Rules (`Deployment.sizing`):
- fixed: `value` shares;
- multiplier: `value` lots (value × lot size);
- capital_pct: `value` % of the client's capital, divided by the price;
- risk_pct: `value` % of the capital put at risk to the stop: capital × value% ÷ |price − stop|.

Decimal throughout; the answer is (quantity, reason): a quantity of 0 always comes with the reason,
which a page shows next to the client ("sizing gives 0 shares at ₹1,548.20 for this client: …").
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal, InvalidOperation

from webapp.money import rupees

FIXED, MULTIPLIER, CAPITAL_PCT, RISK_PCT = "fixed", "multiplier", "capital_pct", "risk_pct"
SIZINGS = {
    FIXED: "Fixed quantity (shares)",
    MULTIPLIER: "Multiplier (× the lot)",
    CAPITAL_PCT: "% of capital",
    RISK_PCT: "Risk % of capital to the stop",
}
HUNDRED = Decimal(100)


def _dec(value: object) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, float):
        raise TypeError("floats are not money; pass a str or Decimal")
    try:
        result = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"not a number: {value!r}") from None
    return result if result.is_finite() else None


def _floor(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


def quantity(
    sizing: str,
    value: object,
    *,
    price: object,
    lot_size: int,
    capital: object = None,
    stop: object = None,
    cap: int | None = None,
    max_value: object = None,
) -> tuple[int, str]:
    """Shares for one client (a multiple of `lot_size`, ≥ 0) and, when 0, why. `cap` is the client's
    max quantity, `max_value` its max order value (None: no limit)."""
    if sizing not in SIZINGS:
        raise ValueError(f"unknown sizing {sizing!r}")
    value, price, capital, stop, max_value = map(_dec, (value, price, capital, stop, max_value))
    lot = max(int(lot_size or 1), 1)
    if price is None or price <= 0:
        return 0, "sizing gives 0 shares: no price for this instrument"
    shown = f"₹{rupees(price)}"

    def zero(why: str) -> tuple[int, str]:
        return 0, f"sizing gives 0 shares at {shown} for this client: {why}"

    if value is None or value <= 0:
        return zero("the sizing value must be above zero")
    if sizing == FIXED:
        raw = value
    elif sizing == MULTIPLIER:
        raw = value * lot
    else:
        if capital is None or capital <= 0:
            return zero("no capital known (set it on the deployment, or sync the client's funds)")
        budget = capital * value / HUNDRED
        if sizing == CAPITAL_PCT:
            raw = budget / price
        else:
            if stop is None:
                return zero("risk sizing needs a stop, and the signal has none")
            risk = abs(price - stop)
            if risk == 0:
                return zero("the stop is at the price")
            raw = budget / risk
    shares = _floor(raw / lot) * lot
    why = ""
    if shares < lot:
        why = f"{raw.normalize():f} shares is less than one lot of {lot}" if lot > 1 else "less than one share"
    if cap is not None and shares > cap:
        shares = (cap // lot) * lot
        why = f"the client's max quantity {cap} is less than one lot of {lot}"
    if max_value is not None and shares * price > max_value:
        shares = _floor(max_value / price / lot) * lot
        why = f"the client's max order value ₹{rupees(max_value)} buys less than one lot"
    if shares <= 0:
        return zero(why or "less than one share")
    return shares, ""

"""The one input layer: every value a person or a program sends (URL parts, query strings, form
fields, WebSocket parameters, later the API) is parsed here before anything else sees it.

Why not plain int() / Decimal(): both accept far more than a desk should — "1_000", full-width
"１２３", Arabic-Indic digits, "NaN", "sNaN", "Infinity", "1e309", 30-digit numbers — and what they
accept then overflows a database column or breaks a comparison deep inside a request, a 500 after
part of the work. Here a value is ASCII digits within its column's range, or it is refused with a
message for the user (InputError), and nothing downstream has to ask again.

The parsers take plain strings and return plain values (no Flask request inside); the WTForms
fields and the URL converter below are thin adapters over them.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from decimal import Decimal

import sqlalchemy as sa
from werkzeug.routing import BaseConverter
from werkzeug.routing import ValidationError as RouteMismatch
from wtforms import DecimalField, HiddenField, IntegerField, SelectMultipleField
from wtforms.validators import StopValidation

MAX_ID = 2**31 - 1  # PostgreSQL INTEGER, the type of every primary key here
MAX_INT = 2**31 - 1  # quantities and counts live in INTEGER columns too
MAX_BIGINT = 2**63 - 1  # instrument tokens (BIGINT)
MAX_NUMBER_TEXT = 40  # no number a desk uses is longer; longer text is refused before any parsing
MAX_IDS = 200  # ids in one list (a page's rows, a form's checkboxes)

_WHOLE = re.compile(r"-?[0-9]+")  # a sign is parsed so "-5" gets the range's message
_DECIMAL = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class InputError(ValueError):
    """A value refused; the message is for the person who sent it."""


def whole_number(raw: object, *, minimum: int = 0, maximum: int = MAX_INT) -> int:
    """A whole number written in ASCII digits (no separator, exponent or "+") within the bounds."""
    text = raw.strip() if isinstance(raw, str) else ""
    if not text:
        raise InputError("Enter a whole number.")
    if len(text) > MAX_NUMBER_TEXT or not _WHOLE.fullmatch(text):
        raise InputError("Enter a whole number using the digits 0-9 only.")
    return _in_range(int(text), minimum, maximum)


def _in_range(value, minimum, maximum):
    if minimum is not None and value < minimum:
        raise InputError("Must be zero or more." if minimum == 0 else f"Must be at least {minimum}.")
    if maximum is not None and value > maximum:
        raise InputError(f"Must be at most {maximum}.")
    return value


def looks_whole(raw: object) -> bool:
    """Written as a whole number (ASCII digits, optional "-"), whatever its size."""
    return isinstance(raw, str) and _WHOLE.fullmatch(raw.strip()) is not None


def record_id(raw: object) -> int | None:
    """A database id (1..2**31-1) or None: callers answer 404 (or a field error) for None."""
    try:
        return whole_number(raw, minimum=1, maximum=MAX_ID)
    except InputError:
        return None


def id_list(raw: str | None, *, max_items: int = MAX_IDS) -> list[int]:
    """`1,2,3` (blanks ignored, duplicates dropped, order kept); InputError for anything else."""
    parts = [p.strip() for p in (raw or "").split(",") if p.strip()]
    if len(parts) > max_items:
        raise InputError(f"At most {max_items} ids at once.")
    ids = [record_id(p) for p in parts]
    if None in ids:
        raise InputError("Expected ids (whole numbers) separated by commas.")
    return list(dict.fromkeys(ids))


def column_digits(column) -> tuple[int, int]:
    """(precision, scale) of a Numeric model column: the database is the one source of truth."""
    column_type = getattr(column, "type", column)
    if not isinstance(column_type, sa.Numeric) or column_type.precision is None:
        raise TypeError(f"{column!r} is not a Numeric column with a precision")
    return column_type.precision, column_type.scale or 0


def decimal_number(
    raw: object, *, precision: int, scale: int, minimum: Decimal | None = None, maximum: Decimal | None = None
) -> Decimal:
    """A finite decimal in plain ASCII notation that fits NUMERIC(precision, scale) and the bounds."""
    text = raw.strip() if isinstance(raw, str) else ""
    if not text:
        raise InputError("Enter a number.")
    if len(text) > MAX_NUMBER_TEXT or not _DECIMAL.fullmatch(text):
        raise InputError("Enter a number using the digits 0-9 and a decimal point only.")
    value = Decimal(text)
    whole, _, fraction = text.lstrip("-").partition(".")
    if len(fraction.rstrip("0")) > scale:
        raise InputError(f"At most {scale} decimal places." if scale else "Enter a whole number.")
    if len(whole.lstrip("0")) > precision - scale:
        raise InputError(f"Too large: at most {precision - scale} digits before the decimal point.")
    return _in_range(value, minimum, maximum)


def ticket_token(raw: object) -> str:
    """The ticket's idempotency token: a UUID, returned in its canonical lower-case form."""
    text = raw.strip() if isinstance(raw, str) else ""
    if not _UUID.fullmatch(text):
        raise InputError("This ticket is malformed; reload the ticket and try again.")
    return str(uuid.UUID(text))


def text(raw: object, *, max_length: int) -> str:
    """A stripped string of at most max_length characters (None and non-strings are empty)."""
    value = raw.strip() if isinstance(raw, str) else ""
    if len(value) > max_length:
        raise InputError(f"At most {max_length} characters.")
    return value


def too_long(values: dict[str, str], *, max_length: int) -> dict[str, str]:
    """Messages for the values longer than max_length, by name (fields read outside a WTForms form)."""
    return {name: f"At most {max_length} characters." for name, value in values.items() if len(value) > max_length}


def bounded_params(pairs: Iterable[tuple[str, str]], *, max_items: int = 20, max_length: int = 1024) -> dict[str, str]:
    """Parameters passed on as a whole (a broker's login callback): a few, each of bounded length."""
    params = {}
    for name, value in pairs:
        if len(params) >= max_items or len(name) > 64 or len(value) > max_length:
            raise InputError("Too many or too long parameters.")
        params[name] = value
    return params


def choice(raw: object, allowed: Iterable[str]) -> str:
    """One of the allowed strings, exactly."""
    allowed = tuple(allowed)
    if not isinstance(raw, str) or raw not in allowed:
        raise InputError(f"Must be one of: {', '.join(allowed)}.")
    return raw


def shown_decimal(value: Decimal | None) -> str:
    """A stored decimal for display in an input, whatever it holds: string work only, so a huge,
    odd or non-finite stored value still renders (quantize() raises past 28 digits)."""
    if value is None:
        return ""
    if not isinstance(value, Decimal) or not value.is_finite():
        return str(value)
    whole, _, fraction = f"{value:f}".partition(".")
    return f"{whole}.{fraction.rstrip('0').ljust(2, '0')}"


# --- thin adapters: URL converter ----------------------------------------------------------------


class IdConverter(BaseConverter):
    """Replaces `<int:...>` in every route: ASCII digits within the INTEGER range, else no match (404).
    Werkzeug's own takes any Unicode digit (`\\d`) and any size, which overflowed the database."""

    regex = r"[0-9]{1,10}"
    weight = 50

    def to_python(self, value: str) -> int:
        found = record_id(value)
        if found is None:
            raise RouteMismatch()
        return found

    def to_url(self, value) -> str:
        return str(int(value))


def init_app(app) -> None:
    """Register before any blueprint, so every `<int:...>` rule is built with this converter; and
    refuse control characters in any query or form value before a view reads it."""
    app.url_map.converters["int"] = IdConverter
    app.before_request(_refuse_control_characters)


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def has_control_characters(values: Iterable[str]) -> bool:
    """NUL and the other C0 controls (tab and newlines aside): PostgreSQL refuses NUL in any text,
    which made a NUL in a username a 500; no field of this desk needs the others."""
    return any(_CONTROL.search(v) for v in values)


def _refuse_control_characters():
    from flask import abort, request

    values = [text for pair in request.args.items(multi=True) for text in pair]
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        values += [text for pair in request.form.items(multi=True) for text in pair]
    if has_control_characters(values):
        abort(400)


# --- thin adapters: WTForms fields ---------------------------------------------------------------


class _ParsedField:
    """A parse error is the field's only message: the validators after it would only repeat it."""

    def pre_validate(self, form):
        if self.process_errors:
            raise StopValidation()
        super().pre_validate(form)


class WholeNumberField(_ParsedField, IntegerField):
    def __init__(self, label=None, validators=None, *, minimum: int = 0, maximum: int = MAX_INT, **kwargs):
        super().__init__(label, validators, **kwargs)
        self.minimum, self.maximum = minimum, maximum

    def process_formdata(self, valuelist):
        if valuelist and isinstance(valuelist[0], str) and valuelist[0].strip():
            self.data = None
            self.data = whole_number(valuelist[0], minimum=self.minimum, maximum=self.maximum)
        elif valuelist:
            self.data = None


class IdField(_ParsedField, IntegerField):
    """A record id from a form (e.g. the ticket's instrument); the message names what to choose."""

    def __init__(self, label=None, validators=None, *, message: str = "Choose from the list.", **kwargs):
        super().__init__(label, validators, **kwargs)
        self.message = message

    def process_formdata(self, valuelist):
        self.data = None
        if valuelist and isinstance(valuelist[0], str) and valuelist[0].strip():
            self.data = record_id(valuelist[0])
            if self.data is None:
                raise InputError(self.message)


class AmountField(_ParsedField, DecimalField):
    """A decimal bounded by its model column's precision and scale (and by minimum/maximum)."""

    def __init__(
        self,
        label=None,
        validators=None,
        *,
        column,
        minimum: Decimal | None = None,
        maximum: Decimal | None = None,
        **kwargs,
    ):
        super().__init__(label, validators, places=None, **kwargs)
        self.precision, self.scale = column_digits(column)
        self.minimum, self.maximum = minimum, maximum

    def process_formdata(self, valuelist):
        self.data = None
        if valuelist and isinstance(valuelist[0], str) and valuelist[0].strip():
            self.data = decimal_number(
                valuelist[0], precision=self.precision, scale=self.scale, minimum=self.minimum, maximum=self.maximum
            )

    def _value(self):
        if self.raw_data:
            return self.raw_data[0][: MAX_NUMBER_TEXT * 2]
        return shown_decimal(self.data)


class TicketTokenField(_ParsedField, HiddenField):
    def process_formdata(self, valuelist):
        self.data = None
        if valuelist and isinstance(valuelist[0], str) and valuelist[0].strip():
            self.data = ticket_token(valuelist[0])


class IdsField(_ParsedField, SelectMultipleField):
    """Checkbox ids (clients of a user): at most MAX_IDS, each a record id; pre_validate then checks
    each is one of the choices."""

    def __init__(self, label=None, validators=None, **kwargs):
        kwargs.setdefault("coerce", int)
        super().__init__(label, validators, **kwargs)

    def process_formdata(self, valuelist):
        self.data = []
        if len(valuelist) > MAX_IDS:
            raise InputError(f"At most {MAX_IDS} at once.")
        ids = [record_id(v) for v in valuelist]
        if None in ids:
            raise InputError("Not a valid choice.")
        self.data = list(dict.fromkeys(ids))

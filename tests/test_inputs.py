"""The input layer (webapp/inputs.py): each kind of hostile value refused with a message, each edge
that must pass accepted. Python's own int() and Decimal() accept most of the refused values."""

from decimal import Decimal

import pytest
from werkzeug.datastructures import MultiDict

from webapp import inputs
from webapp.inputs import InputError
from webapp.models import Batch, Client, Order, User

HOSTILE_NUMBERS = [
    "1_000",  # int("1_000") == 1000
    "１２３",  # full-width digits: int() takes them
    "١٢٣",  # Arabic-Indic digits
    "१२३",  # Devanagari digits
    "³",  # a digit to str.isdigit(), not to int()
    "+5",
    "1e3",
    "0x10",
    "1,000",
    " ",
    "",
    "--1",
    "1 000",
    "١",
    "NaN",
    "nan",
    "sNaN",
    "Infinity",
    "-Infinity",
    "inf",
    "1e309",
]


@pytest.mark.parametrize("raw", HOSTILE_NUMBERS + ["1.5", "9" * 41])
def test_whole_number_refuses(raw):
    with pytest.raises(InputError):
        inputs.whole_number(raw)


@pytest.mark.parametrize(
    "raw, minimum, maximum, expected",
    [
        ("0", 0, 10, 0),
        (" 7 ", 0, 10, 7),
        ("10", 0, 10, 10),
        ("007", 0, 10, 7),
        ("-3", -5, 5, -3),
        (str(2**31 - 1), 0, 2**31 - 1, 2**31 - 1),
    ],
)
def test_whole_number_accepts_edges(raw, minimum, maximum, expected):
    assert inputs.whole_number(raw, minimum=minimum, maximum=maximum) == expected


@pytest.mark.parametrize(
    "raw, message",
    [
        ("-1", "Must be zero or more."),
        ("11", "Must be at most 10."),
        ("1_0", "digits 0-9"),
        ("", "Enter a whole number."),
    ],
)
def test_whole_number_messages(raw, message):
    with pytest.raises(InputError, match=message):
        inputs.whole_number(raw, minimum=0, maximum=10)


@pytest.mark.parametrize("raw", ["0", "-1", str(2**31), "9" * 30, "١", "1_0", "1.0", None, 5])
def test_record_id_outside_the_integer_range_or_malformed_is_none(raw):
    assert inputs.record_id(raw) is None


@pytest.mark.parametrize("raw", ["1", str(2**31 - 1), " 42 "])
def test_record_id_accepts_the_integer_range(raw):
    assert inputs.record_id(raw) == int(raw)


def test_id_list():
    assert inputs.id_list("3, 1,,3 ,2") == [3, 1, 2]
    assert inputs.id_list("") == [] and inputs.id_list(None) == []
    for raw in ("1,x", "1,١", f"1,{2**31}", "1,-2"):
        with pytest.raises(InputError, match="ids"):
            inputs.id_list(raw)
    with pytest.raises(InputError, match="At most 3"):
        inputs.id_list("1,2,3,4", max_items=3)


PRICE = dict(precision=14, scale=4)  # Numeric(14, 4): Order.price


@pytest.mark.parametrize(
    "raw",
    HOSTILE_NUMBERS
    + [
        "9" * 30,  # 30 digits
        "12345678901",  # 11 digits before the point: NUMERIC(14,4) holds 10
        "1.23456",  # five places
        "1.2.3",
        ".",
        "-",
        "0.1e1",
    ],
)
def test_decimal_refuses(raw):
    with pytest.raises(InputError):
        inputs.decimal_number(raw, **PRICE)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("1548.20", Decimal("1548.20")),
        ("0.0001", Decimal("0.0001")),
        ("9999999999.9999", Decimal("9999999999.9999")),
        (".5", Decimal("0.5")),
        ("1.50000", Decimal("1.5")),
        ("0", Decimal(0)),
        ("0009.5", Decimal("9.5")),
        ("1.", Decimal(1)),
    ],
)
def test_decimal_accepts_what_fits_the_column(raw, expected):
    assert inputs.decimal_number(raw, **PRICE) == expected


@pytest.mark.parametrize(
    "raw, message",
    [
        ("1.23456", "At most 4 decimal places."),
        ("12345678901", "at most 10 digits before"),
        ("NaN", "digits 0-9"),
        ("-1", "Must be zero or more."),
        ("1e309", "digits 0-9"),
    ],
)
def test_decimal_messages(raw, message):
    with pytest.raises(InputError, match=message):
        inputs.decimal_number(raw, minimum=Decimal(0), **PRICE)


def test_column_digits_come_from_the_models():
    assert inputs.column_digits(Order.price) == (14, 4)
    assert inputs.column_digits(Batch.trigger_price) == (14, 4)
    assert inputs.column_digits(Client.max_order_value) == (18, 4)
    assert inputs.column_digits(User.max_daily_loss) == (18, 4)
    with pytest.raises(TypeError):
        inputs.column_digits(Order.quantity)


def test_ticket_token_is_a_uuid():
    token = "6F9619FF-8B86-D011-B42D-00C04FC964FF"
    assert inputs.ticket_token(f" {token} ") == token.lower()
    for raw in (
        "t-1",
        "",
        "6f9619ff8b86d011b42d00c04fc964ff",
        token + "0",
        "{" + token + "}",
        token.replace("F", "Ｆ"),
        "x" * 36,
        None,
    ):
        with pytest.raises(InputError, match="reload the ticket"):
            inputs.ticket_token(raw)


def test_text_and_choice():
    assert inputs.text("  abc ", max_length=3) == "abc" and inputs.text(None, max_length=3) == ""
    with pytest.raises(InputError, match="At most 3 characters"):
        inputs.text("abcd", max_length=3)
    assert inputs.choice("1", ("1", "0")) == "1"
    for raw in ("01", " 1", None, "on"):
        with pytest.raises(InputError):
            inputs.choice(raw, ("1", "0"))


@pytest.mark.parametrize(
    "value, shown",
    [
        (None, ""),
        (Decimal("1E+40"), "1" + "0" * 40 + ".00"),
        (Decimal("12.3400"), "12.34"),
        (Decimal("5"), "5.00"),
        (Decimal("0.0001"), "0.0001"),
        (Decimal("NaN"), "NaN"),
        (Decimal("-Infinity"), "-Infinity"),
    ],
)
def test_a_stored_value_always_renders(value, shown):
    assert inputs.shown_decimal(value) == shown


def test_rupees_renders_any_stored_value():
    from webapp.money import rupees

    assert rupees(Decimal("1E+30")) == "10,00,00,00,00,00,00,00,00,00,00,00,00,00,000.00"
    assert rupees(Decimal("NaN")) == "NaN" and rupees(Decimal("Infinity")) == "Infinity"
    assert rupees(Decimal("-1234567.891")) == "-12,34,567.89"


class TestConverter:
    """`<int:...>` in every route is the bounded converter: a 404, never a database overflow."""

    def test_registered_for_every_int_rule(self, app):
        rules = [r for r in app.url_map.iter_rules() if "int" in str(r.rule) or r.arguments]
        converters = [c for r in rules for c in r._converters.values()]
        assert converters and all(type(c).__name__ != "IntegerConverter" for c in converters)
        assert any(isinstance(c, inputs.IdConverter) for c in converters)

    @pytest.mark.parametrize("part", [str(2**31), "9" * 30, "0", "١٢", "１２", "1_2", "-1", "%F0%9D%9F%8F"])
    def test_out_of_range_or_odd_ids_are_404(self, client, factory, auth, part):
        factory.user("ada", role="admin")
        auth.login("ada")
        assert client.get(f"/clients/{part}").status_code == 404
        assert client.get(f"/admin/users/{part}").status_code == 404

    def test_largest_id_is_an_ordinary_miss(self, client, factory, auth):
        factory.user("ada", role="admin")
        auth.login("ada")
        assert client.get(f"/clients/{2**31 - 1}").status_code == 404

    def test_urls_still_build(self, app):
        with app.test_request_context():
            from flask import url_for

            assert url_for("clients.detail", client_id=42) == "/clients/42"


class TestFields:
    """The WTForms adapters: the parse error is the field's one message; stored values render."""

    def _form(self, app, data, **fields):
        from flask_wtf import FlaskForm

        form_class = type("F", (FlaskForm,), fields)
        with app.test_request_context(method="POST", data=MultiDict(data)):
            form = form_class()
            form.validate()
            return form

    def test_amount_field(self, app):
        from wtforms.validators import Optional

        field = dict(
            limit=inputs.AmountField(column=Client.max_order_value, minimum=Decimal(0), validators=[Optional()])
        )
        assert self._form(app, {"limit": "2500000.50"}, **field).limit.data == Decimal("2500000.50")
        assert self._form(app, {"limit": ""}, **field).limit.data is None
        for raw in ("NaN", "Infinity", "1e309", "1_000", "١٢٣", "9" * 30, "1.23456", "-1"):
            form = self._form(app, {"limit": raw}, **field)
            assert form.limit.data is None and len(form.limit.errors) == 1, raw

    def test_amount_field_renders_a_huge_stored_value(self, app):
        from flask_wtf import FlaskForm

        class F(FlaskForm):
            limit = inputs.AmountField(column=Client.max_order_value)

        with app.test_request_context():
            form = F(data={"limit": Decimal("1E+35")})
            assert 'value="1' + "0" * 35 + '.00"' in form.limit()

    def test_whole_number_field(self, app):
        field = dict(n=inputs.WholeNumberField())
        assert self._form(app, {"n": "12"}, **field).n.data == 12
        for raw, message in (("1_000", "digits 0-9"), (str(2**31), "at most"), ("-1", "zero or more")):
            form = self._form(app, {"n": raw}, **field)
            assert form.n.data is None and len(form.n.errors) == 1 and message in form.n.errors[0].lower()

    def test_ids_field(self, app):
        field = dict(ids=inputs.IdsField(choices={1: "a", 2: "b"}))
        assert self._form(app, [("ids", "1"), ("ids", "2"), ("ids", "1")], **field).ids.data == [1, 2]
        assert self._form(app, [("ids", "3")], **field).ids.errors
        assert self._form(app, [("ids", "١")], **field).ids.errors
        assert self._form(app, [("ids", "1")] * (inputs.MAX_IDS + 1), **field).ids.errors

    def test_ticket_token_field(self, app):
        field = dict(t=inputs.TicketTokenField())
        assert (
            self._form(app, {"t": "6F9619FF-8B86-D011-B42D-00C04FC964FF"}, **field).t.data
            == "6f9619ff-8b86-d011-b42d-00c04fc964ff"
        )
        assert self._form(app, {"t": "t-1"}, **field).t.errors


def test_bounded_params():
    assert inputs.bounded_params([("state", "abc"), ("request_token", "t")]) == {"state": "abc", "request_token": "t"}
    for pairs in ([("a", "x" * 1025)], [(f"k{i}", "v") for i in range(21)], [("n" * 65, "v")]):
        with pytest.raises(InputError):
            inputs.bounded_params(pairs)

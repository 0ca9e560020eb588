from __future__ import annotations

import sqlalchemy as sa
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
)
from wtforms.validators import DataRequired, Length, Optional, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from webapp.admin import services
from webapp.admin.services import MAX_PASSWORD, PRODUCTS
from webapp.extensions import db
from webapp.inputs import AmountField, IdField, IdsField, WholeNumberField
from webapp.models import Client, User
from webapp.permissions import ROLE_LABELS
from webapp.security import password_problem

TOO_LONG = f"At most {MAX_PASSWORD} characters."


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class ClientChecksField(IdsField):
    """Client checkboxes: each value a record id (the input layer), then one of the choices."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class UserForm(FlaskForm):
    # the rules (username, email, password, client code) are webapp.admin.services', shared with the API
    username = StringField("Username", validators=[DataRequired(message="Choose a username.")])
    email = EmailField("Email", validators=[Optional()])
    # a new user starts read-only (Viewer), the least privilege: a form saved in haste gives no one the
    # power to trade or to manage users; the admin raises the role on purpose (Trader, Admin)
    role = SelectField("Role", choices=dict(ROLE_LABELS), default="viewer")
    password = PasswordField("Initial password", validators=[Length(max=MAX_PASSWORD, message=TOO_LONG)])
    clients = ClientChecksField("Clients this user may see and trade")
    # limits: the input layer bounds each by its column (Numeric precision/scale, INTEGER) and at zero
    max_position_value = AmountField(
        "Max order value (₹)", column=User.max_position_value, minimum=0, validators=[Optional()]
    )
    max_daily_loss = AmountField(
        "Max daily loss across clients (₹)", column=User.max_daily_loss, minimum=0, validators=[Optional()]
    )
    max_orders_per_day = WholeNumberField("Max orders per day", validators=[Optional()])

    def __init__(self, *args, user: User | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.clients.choices = {
            c.id: f"{c.name} ({c.broker}:{c.client_code})"
            for c in db.session.execute(sa.select(Client).order_by(Client.name)).scalars()
        }
        if user is not None:  # editing: username fixed, no password here (reset has its own form)
            del self.username
            del self.password

    def validate_username(self, field):
        if problem := services.username_problem(field.data):
            raise ValidationError(problem)

    def validate_email(self, field):
        if problem := services.email_problem(field.data):
            raise ValidationError(problem)

    def validate_password(self, field):
        if problem := services.new_password_problem(field.data, self.username.data or ""):
            raise ValidationError(problem)


class ResetPasswordForm(FlaskForm):
    password = PasswordField(
        "New password",
        validators=[DataRequired(message="Enter the new password."), Length(max=MAX_PASSWORD, message=TOO_LONG)],
    )

    def __init__(self, *args, username: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.username = username

    def validate_password(self, field):
        if problem := password_problem(field.data, self.username):
            raise ValidationError(problem)


class ConfirmForm(FlaskForm):
    """An empty form: just the CSRF token, for confirmation posts."""


money = dict(minimum=0, validators=[Optional()])
count = dict(validators=[Optional()])  # whole numbers from zero to the INTEGER column's maximum


class ClientForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(message="Name the client."), Length(max=120)])
    broker = SelectField("Broker")
    client_code = StringField(
        "Broker client code", validators=[DataRequired(message="Enter the client's code at the broker.")]
    )
    algo_id = StringField("SEBI algo id", validators=[Optional(), Length(max=64)])
    enabled = BooleanField("Enabled", default=True)
    max_order_value = AmountField("Max order value (₹)", column=Client.max_order_value, **money)
    max_quantity = WholeNumberField("Max quantity per order", **count)
    max_orders_per_day = WholeNumberField("Max orders per day", **count)
    max_open_positions = WholeNumberField("Max open positions", **count)
    max_daily_loss = AmountField("Max daily loss (₹)", column=Client.max_daily_loss, **money)
    max_drawdown = AmountField("Max drawdown from the day's peak (₹)", column=Client.max_drawdown, **money)
    allowed_products = MultiCheckboxField("Allowed products", choices=PRODUCTS)

    def __init__(self, *args, client: Client | None = None, brokers: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.client = client
        self.broker.choices = dict(brokers or {})

    def validate_client_code(self, field):
        if problem := services.client_code_problem(self.broker.data, field.data, self.client):
            raise ValidationError(problem)

    def validate_allowed_products(self, field):
        field.data = list(dict.fromkeys(field.data or []))  # a repeated box must not overflow the column
        if problem := services.products_problem(field.data):
            raise ValidationError(problem)


class AuditFilters(FlaskForm):
    """The audit trail's filters, read from the query string (a bookmarkable GET: no CSRF token)."""

    class Meta:
        csrf = False

    actor = SelectField("Who", validate_choice=False)
    action = SelectField("Action", validate_choice=False)
    client = IdField("Client", validators=[Optional()], message="Choose a client from the list.")
    start = DateField("From (IST)", validators=[Optional()])
    end = DateField("To (IST)", validators=[Optional()])

    def __init__(self, *args, actions: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        users = db.session.execute(sa.select(User.username).order_by(User.username)).scalars()
        self.actor.choices = [("", "Anyone"), ("system", "system (the desk by itself)")] + [(u, u) for u in users]
        self.action.choices = [("", "Any action")] + [(a, a) for a in actions]
        self.clients = dict(db.session.execute(sa.select(Client.id, Client.name).order_by(Client.name)).all())

    def validate_actor(self, field):
        if field.data and field.data not in dict(field.choices):
            raise ValidationError("Choose someone from the list.")

    def validate_action(self, field):
        if field.data and field.data not in dict(field.choices):
            raise ValidationError("Choose an action from the list.")

    def validate_client(self, field):
        if field.data is not None and field.data not in self.clients:
            raise ValidationError("Choose a client from the list.")

    def validate_end(self, field):
        if self.start.data and field.data and field.data < self.start.data:
            raise ValidationError("The last day is before the first.")

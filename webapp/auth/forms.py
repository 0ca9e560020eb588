from datetime import datetime, timedelta

from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectField, SelectMultipleField, StringField, TextAreaField
from wtforms.validators import DataRequired, EqualTo, Length
from wtforms.widgets import CheckboxInput, ListWidget

from webapp.apikeys import scopes_for
from webapp.timeutil import utcnow

PASSWORD_LENGTH = Length(max=256, message="At most 256 characters.")  # bounded: argon2 would hash any size


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(message="Enter your username."), Length(max=64)])
    password = PasswordField("Password", validators=[DataRequired(message="Enter your password."), PASSWORD_LENGTH])


class ChangePasswordForm(FlaskForm):
    current = PasswordField(
        "Current password", validators=[DataRequired(message="Enter your current password."), PASSWORD_LENGTH]
    )
    new = PasswordField("New password", validators=[DataRequired(message="Enter a new password."), PASSWORD_LENGTH])
    confirm = PasswordField(
        "Repeat new password",
        validators=[
            DataRequired(message="Repeat the new password."),
            EqualTo("new", message="The two passwords differ."),
        ],
    )


# a key's lifetime, as offered on the key form: never, or a number of days from now
KEY_EXPIRY = {"never": "Never", "30": "30 days", "90": "90 days", "365": "365 days"}
SCOPE_LABELS = {
    "read": "read: see clients, positions, orders",
    "trade": "trade: place, modify and exit orders",
    "admin": "admin: desk-wide switches, users and clients",
}


class ApiKeyForm(FlaskForm):
    """A new API key. Only the expiry choice is checked here: the name, scopes and networks are judged
    by webapp.apikeys.create_key (one set of rules and messages for the page, the admin page and tests)."""

    name = StringField("Name")
    # checkboxes; a scope beyond the role is not refused here but by the domain, with its message
    scopes = SelectMultipleField(
        "Scopes", widget=ListWidget(prefix_label=False), option_widget=CheckboxInput(), validate_choice=False
    )
    allowed_ips = TextAreaField("Allowed IP addresses or networks")
    expires = SelectField("Expires", choices=KEY_EXPIRY, default="never")

    def __init__(self, *args, role: str, **kwargs):
        super().__init__(*args, prefix="key", **kwargs)
        self.scopes.choices = [(s, SCOPE_LABELS[s]) for s in scopes_for(role)]
        if not self.is_submitted():
            self.scopes.data = ["read"] if self.scopes.choices else []

    def expires_at(self) -> datetime | None:
        return None if self.expires.data == "never" else utcnow() + timedelta(days=int(self.expires.data))

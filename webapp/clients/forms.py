from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length, Optional

from webapp.brokers.base import CredentialField


def login_form(fields: tuple[CredentialField, ...]) -> FlaskForm:
    """A form with the broker's login fields (Motilal: password, DOB/PAN, TOTP)."""

    class BrokerLoginForm(FlaskForm):
        pass

    for f in fields:
        kind = PasswordField if f.secret else StringField
        validators = [DataRequired(message=f"Enter the {f.label}.")] if f.required else [Optional()]
        validators.append(Length(max=256, message="At most 256 characters."))
        setattr(BrokerLoginForm, f.name, kind(f.label, validators=validators, description=f.help))
    return BrokerLoginForm()

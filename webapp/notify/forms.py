"""The notification settings form: sound, browser notifications, and which kinds go by each channel."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, SelectMultipleField
from wtforms.validators import Email, Length, Optional, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from webapp.notify.kinds import KINDS, LABELS


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class PrefsForm(FlaskForm):
    sound = BooleanField("Play a sound with each toast")
    browser = BooleanField("Browser notifications when the tab is in the background")
    telegram_kinds = MultiCheckboxField("Send by Telegram", choices={k: LABELS[k] for k in KINDS})
    email = EmailField("Email address", validators=[Optional(), Length(max=255), Email("Enter an email address.")])
    email_kinds = MultiCheckboxField("Send by email", choices={k: LABELS[k] for k in KINDS})

    def __init__(self, *args, telegram_linked: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.telegram_linked = telegram_linked

    def validate_telegram_kinds(self, field):
        if field.data and not self.telegram_linked:
            raise ValidationError("Link Telegram first (below), then choose what it receives.")

    def validate_email_kinds(self, field):
        if field.data and not (self.email.data or "").strip():
            raise ValidationError("Enter the email address these go to.")


class FilterArgs:
    """The list's filter from the query string: a known kind or none, a page number from 1 (hostile
    values fall back to the defaults)."""

    def __init__(self, args):
        kind = args.get("kind", "")
        self.kind = kind if kind in KINDS else ""
        raw = args.get("page", "1")
        self.page = int(raw) if raw.isascii() and raw.isdigit() and 0 < len(raw) < 6 and int(raw) > 0 else 1
        self.unread = args.get("unread") == "1"

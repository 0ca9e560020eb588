from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

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

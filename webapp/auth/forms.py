from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(message="Enter your username."), Length(max=64)])
    password = PasswordField("Password", validators=[DataRequired(message="Enter your password.")])


class ChangePasswordForm(FlaskForm):
    current = PasswordField("Current password", validators=[DataRequired(message="Enter your current password.")])
    new = PasswordField("New password", validators=[DataRequired(message="Enter a new password.")])
    confirm = PasswordField("Repeat new password", validators=[
        DataRequired(message="Repeat the new password."), EqualTo("new", message="The two passwords differ.")])

"""Log in, log out, change own password, own API keys. Logins are throttled per address (Flask-Limiter, Redis)."""

from __future__ import annotations

import sqlalchemy as sa
from flask import current_app, flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user, login_user, logout_user

from webapp import audit
from webapp.auth import bp
from webapp.auth.api_keys import create_from_form, key_section, revoke_owned, shown_once
from webapp.auth.forms import ApiKeyForm, ChangePasswordForm, LoginForm
from webapp.auth.sessions import end_sessions, keep_current_session
from webapp.extensions import db, limiter
from webapp.models import User
from webapp.permissions import public, requires
from webapp.security import hash_password, password_problem, safe_next, verify_password
from webapp.timeutil import utcnow

THROTTLED = "Too many login attempts from your address. Wait a minute and try again."


def login_throttled():
    form = LoginForm()
    form.password.errors = [THROTTLED]
    return render_template("auth/login.html", form=form), 429


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], methods=["POST"])
@public
def login():
    if current_user.is_authenticated:
        return redirect(url_for("desk.index"))
    form = LoginForm()
    if form.validate_on_submit():
        user = db.session.execute(
            sa.select(User).where(User.username == form.username.data.strip())
        ).scalar_one_or_none()
        if user is None or not verify_password(user.password_hash, form.password.data):
            audit.record("login", actor=form.username.data.strip()[:64], result="failed", ip=request.remote_addr)
            db.session.commit()
            form.password.errors.append("Wrong username or password.")
        elif not user.active:
            audit.record("login", actor_id=user.id, actor=user.username, result="deactivated", ip=request.remote_addr)
            db.session.commit()
            form.username.errors.append("This account is deactivated. Ask an admin to reactivate it.")
        else:
            login_user(user)
            user.last_login_at = utcnow()
            audit.record("login", actor_id=user.id, actor=user.username, ip=request.remote_addr)
            db.session.commit()
            return redirect(safe_next(request.args.get("next")) or url_for("desk.index"))
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=["POST"])
@requires("account.self")
def logout():
    # logging out ends every session of the user, on every device: a cookie session cannot be
    # ended alone, and one "log out" that leaves a forgotten desk logged in is the worse surprise
    end_sessions(current_user)
    audit.record("logout", actor_id=current_user.id, actor=current_user.username, ip=request.remote_addr)
    db.session.commit()
    logout_user()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@requires("account.self")
def change_password():
    form = ChangePasswordForm()
    if form.validate_on_submit():
        if not verify_password(current_user.password_hash, form.current.data):
            form.current.errors.append("That is not your current password.")
        elif problem := password_problem(form.new.data, current_user.username):
            form.new.errors.append(problem)
        else:
            current_user.password_hash = hash_password(form.new.data)
            current_user.password_changed_at = utcnow()
            end_sessions(current_user)
            audit.record(
                "user.password_changed",
                actor_id=current_user.id,
                actor=current_user.username,
                target=f"user:{current_user.id}",
                ip=request.remote_addr,
            )
            db.session.commit()
            keep_current_session(current_user)
            flash("Your password is changed.", "success")
            return redirect(url_for("desk.index"))
    return render_template("auth/password.html", form=form)


def _keys_page(form: ApiKeyForm, new_key: str | None = None, status: int = 200):
    section = key_section(
        current_user,
        form,
        new_key=new_key,
        create_url=url_for("auth.api_keys"),
        revoke_url=url_for("auth.revoke_api_key"),
    )
    return shown_once(make_response(render_template("auth/keys.html", **section), status))


@bp.route("/account/keys", methods=["GET", "POST"])
@requires("account.self")
def api_keys():
    form = ApiKeyForm(role=current_user.role)
    if request.method == "GET":
        return _keys_page(form)
    text = create_from_form(form, current_user, by=current_user)
    if text is None:
        return _keys_page(form)  # the messages sit next to their fields; nothing was written
    # the text goes into this response only: not the session, not a URL, not a flash
    return _keys_page(ApiKeyForm(formdata=None, role=current_user.role), new_key=text, status=201)


@bp.route("/account/keys/revoke", methods=["POST"])
@requires("account.self")
def revoke_api_key():
    flash(revoke_owned(current_user, by=current_user), "success")
    return redirect(url_for("auth.api_keys"))

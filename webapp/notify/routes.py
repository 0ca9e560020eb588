"""Notifications pages: the list (filter, mark read, paged), the header's bell, and the settings
(sound, browser notifications, Telegram link and kinds, email address and kinds)."""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from webapp.extensions import db
from webapp.inputs import record_id
from webapp.notify import bp, inbox
from webapp.notify import kinds as K
from webapp.notify.forms import FilterArgs, PrefsForm
from webapp.notify.telegram import CODE_LIFETIME, new_link_code
from webapp.permissions import requires


@bp.app_context_processor
def _bell():
    """For the header's bell on every page: counted only when a page renders it."""

    def notify_unread() -> int:
        return inbox.unread_count(current_user) if current_user.is_authenticated else 0

    def notify_prefs():
        return inbox.prefs_of(current_user) if current_user.is_authenticated else None

    return {"notify_unread": notify_unread, "notify_prefs": notify_prefs}


@bp.route("/notifications")
@requires("account.self")
def index():
    args = FilterArgs(request.args)
    page = inbox.page_of(current_user, args.kind, args.page, args.unread)
    return render_template("notify/page.html", page=page, args=args, kinds=K, unread=inbox.unread_count(current_user))


@bp.route("/notifications/bell")
@requires("account.self")
def bell():
    return render_template("notify/_bell.html")


@bp.route("/notifications/read", methods=["POST"])
@requires("account.self")
def read():
    nid = record_id(request.form.get("id"))
    if nid is None:
        abort(404)
    inbox.mark_read(current_user, nid)
    db.session.commit()
    return redirect(request.referrer if _local(request.referrer) else url_for("notify.index"))


@bp.route("/notifications/read-all", methods=["POST"])
@requires("account.self")
def read_all():
    changed = inbox.mark_read(current_user)
    db.session.commit()
    flash(f"{changed} marked read." if changed else "Nothing unread.", "success")
    return redirect(url_for("notify.index"))


@bp.route("/notifications/settings", methods=["GET", "POST"])
@requires("account.self")
def settings():
    prefs = inbox.prefs_of(current_user)
    form = PrefsForm(telegram_linked=bool(prefs.telegram_chat_id))
    if request.method == "GET":
        form.sound.data, form.browser.data, form.email.data = prefs.sound, prefs.browser, prefs.email
        form.telegram_kinds.data = K.parse_kinds(prefs.telegram_kinds)
        form.email_kinds.data = K.parse_kinds(prefs.email_kinds)
    if form.validate_on_submit():
        prefs.sound, prefs.browser = form.sound.data, form.browser.data
        prefs.email = (form.email.data or "").strip() or None
        prefs.telegram_kinds = ",".join(K.parse_kinds(",".join(form.telegram_kinds.data or [])))
        prefs.email_kinds = ",".join(K.parse_kinds(",".join(form.email_kinds.data or [])))
        db.session.add(prefs)
        db.session.commit()
        flash("Notification settings saved.", "success")
        return redirect(url_for("notify.settings"))
    return _settings_page(form, prefs)


def _settings_page(form: PrefsForm, prefs, code: str | None = None, status: int = 200):
    config = current_app.config
    return (
        render_template(
            "notify/settings.html",
            form=form,
            prefs=prefs,
            code=code,
            code_minutes=int(CODE_LIFETIME.total_seconds() // 60),
            telegram_on=bool(config.get("TELEGRAM_BOT_TOKEN")),
            email_on=bool(config.get("SMTP_HOST")),
        ),
        status if not form.errors else 400,
    )


@bp.route("/notifications/settings/telegram/code", methods=["POST"])
@requires("account.self")
def telegram_code():
    if not current_app.config.get("TELEGRAM_BOT_TOKEN"):
        abort(404)
    prefs = inbox.prefs_of(current_user)
    code = new_link_code(prefs)
    db.session.add(prefs)
    db.session.commit()
    form = PrefsForm(telegram_linked=bool(prefs.telegram_chat_id), formdata=None)
    form.sound.data, form.browser.data, form.email.data = prefs.sound, prefs.browser, prefs.email
    form.telegram_kinds.data = K.parse_kinds(prefs.telegram_kinds)
    form.email_kinds.data = K.parse_kinds(prefs.email_kinds)
    return _settings_page(form, prefs, code=code)


@bp.route("/notifications/settings/telegram/unlink", methods=["POST"])
@requires("account.self")
def telegram_unlink():
    prefs = inbox.prefs_of(current_user)
    prefs.telegram_chat_id, prefs.telegram_name, prefs.telegram_kinds = None, "", ""
    prefs.link_code_hash = prefs.link_code_expires_at = None
    db.session.add(prefs)
    db.session.commit()
    flash("Telegram unlinked: nothing more is sent there.", "success")
    return redirect(url_for("notify.settings"))


def _local(url: str | None) -> bool:
    """Only our own pages are returned to (never an open redirect)."""
    if not url:
        return False
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.netloc == request.host and parts.scheme in ("http", "https")

"""Admin pages: users, clients, audit trail. Thin: form → services → redirect."""

from __future__ import annotations

import sqlalchemy as sa
from flask import abort, flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user

from webapp.admin import audit_view, bp
from webapp.admin.forms import AuditFilters, ClientForm, ConfirmForm, ResetPasswordForm, UserForm
from webapp.admin.services import (
    RISK_FIELDS,
    USER_LIMITS,
    create_user,
    credential_errors,
    reset_password,
    save_client,
    self_change_problem,
    set_user_active,
    update_user,
)
from webapp.auth.api_keys import create_from_form, key_section, revoke_owned, shown_once
from webapp.auth.forms import ApiKeyForm
from webapp.auth.sessions import keep_current_session
from webapp.brokers import broker_choices, broker_class, broker_names
from webapp.csvexport import csv_response
from webapp.extensions import db
from webapp.htmx import render_page_or_partial
from webapp.inputs import record_id, too_long
from webapp.models import Client, User
from webapp.permissions import requires
from webapp.vault import current_vault, mask

AUDIT_PAGE = 50
MAX_CREDENTIAL = 512  # a broker key, secret or password; longer is not one


def _user_or_404(user_id: int) -> User:
    return db.session.get(User, user_id) or abort(404)


def _client_or_404(client_id: int) -> Client:
    return db.session.get(Client, client_id) or abort(404)


@bp.route("/users")
@requires("users.manage")
def users():
    rows = db.session.execute(sa.select(User).order_by(User.username)).scalars().all()
    return render_template("admin/users.html", users=rows, confirm=ConfirmForm())


@bp.route("/users/new", methods=["GET", "POST"])
@requires("users.manage")
def user_new():
    form = UserForm()
    if form.validate_on_submit():
        user = create_user(
            current_user,
            username=form.username.data,
            email=form.email.data,
            role=form.role.data,
            password=form.password.data,
            client_ids=form.clients.data,
            ip=request.remote_addr,
            limits={k: getattr(form, k).data for k in USER_LIMITS},
        )
        db.session.commit()
        flash(f"User {user.username} created.", "success")
        return redirect(url_for("admin.users"))
    return render_template("admin/user_form.html", form=form, user=None)


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
@requires("users.manage")
def user_edit(user_id: int):
    user = _user_or_404(user_id)
    form = UserForm(user=user, obj=user if request.method == "GET" else None)
    if request.method == "GET":
        form.clients.data = [c.id for c in user.clients]
    if form.validate_on_submit():
        if problem := self_change_problem(current_user, user, role=form.role.data):
            form.role.errors.append(problem)
        else:
            update_user(
                current_user,
                user,
                email=form.email.data,
                role=form.role.data,
                client_ids=form.clients.data,
                ip=request.remote_addr,
                limits={k: getattr(form, k).data for k in USER_LIMITS},
            )
            db.session.commit()
            keep_current_session(user)  # an admin who changed their own grants stays logged in here
            flash(f"User {user.username} saved.", "success")
            return redirect(url_for("admin.users"))
    return render_template("admin/user_form.html", form=form, user=user, **_user_keys(user))


# --- a user's API keys, on the user's page (made and revoked through webapp.auth.api_keys) ---------


def _user_keys(user: User, form: ApiKeyForm | None = None, new_key: str | None = None) -> dict:
    return key_section(
        user,
        form or ApiKeyForm(formdata=None, role=user.role),
        new_key=new_key,
        create_url=url_for("admin.user_key_new", user_id=user.id),
        revoke_url=url_for("admin.user_key_revoke", user_id=user.id),
    )


@bp.route("/users/<int:user_id>/keys", methods=["POST"])
@requires("users.manage")
def user_key_new(user_id: int):
    user = _user_or_404(user_id)
    key_form = ApiKeyForm(role=user.role)
    text = create_from_form(key_form, user, by=current_user)
    if text is not None:
        key_form = None  # made: the form starts empty again under the key shown once
    form = UserForm(formdata=None, user=user, obj=user)  # the user's page as a GET draws it
    form.clients.data = [c.id for c in user.clients]
    page = render_template("admin/user_form.html", form=form, user=user, **_user_keys(user, key_form, text))
    return shown_once(make_response(page, 200 if text is None else 201))


@bp.route("/users/<int:user_id>/keys/revoke", methods=["POST"])
@requires("users.manage")
def user_key_revoke(user_id: int):
    user = _user_or_404(user_id)
    flash(revoke_owned(user, by=current_user), "success")
    return redirect(url_for("admin.user_edit", user_id=user.id) + "#api-keys")


@bp.route("/users/<int:user_id>/password", methods=["GET", "POST"])
@requires("users.manage")
def user_password(user_id: int):
    user = _user_or_404(user_id)
    form = ResetPasswordForm(username=user.username)
    if form.validate_on_submit():
        reset_password(current_user, user, form.password.data, request.remote_addr)
        db.session.commit()
        keep_current_session(user)
        flash(f"Password of {user.username} reset.", "success")
        return redirect(url_for("admin.users"))
    return render_template("admin/user_password.html", form=form, user=user)


@bp.route("/users/<int:user_id>/active", methods=["POST"])
@requires("users.manage")
def user_active(user_id: int):
    user = _user_or_404(user_id)
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400)
    active = request.form.get("active")
    if active not in ("1", "0"):  # anything else is refused, not read as "deactivate"
        abort(400)
    active = active == "1"
    if problem := self_change_problem(current_user, user, active=active):
        flash(problem, "error")
    else:
        set_user_active(current_user, user, active, request.remote_addr)
        db.session.commit()
        flash(f"User {user.username} {'reactivated' if active else 'deactivated'}.", "success")
    return redirect(url_for("admin.users"))


def _broker_choices() -> dict[str, str]:
    return dict(broker_choices())


@bp.route("/clients")
@requires("clients.manage")
def clients():
    rows = db.session.execute(sa.select(Client).order_by(Client.name)).scalars().all()
    return render_template("admin/clients.html", clients=rows)


@bp.route("/clients/credential-fields")
@requires("clients.manage")
def credential_fields():
    broker = request.args.get("broker", "")
    if broker not in broker_names():
        abort(404)
    return render_template(
        "admin/_credentials.html", fields=broker_class(broker).credential_fields, stored={}, errors={}, submitted={}
    )


@bp.route("/clients/new", methods=["GET", "POST"])
@bp.route("/clients/<int:client_id>", methods=["GET", "POST"])
@requires("clients.manage")
def client_form(client_id: int | None = None):
    client = _client_or_404(client_id) if client_id else None
    form = ClientForm(client=client, brokers=_broker_choices(), obj=client if request.method == "GET" else None)
    if request.method == "GET":
        form.allowed_products.data = client.allowed_product_list if client else ["CNC", "MIS", "MTF"]
    vault = current_vault()
    stored = vault.decrypt(client.credentials_enc) if client else {}
    broker = form.broker.data  # an unknown name fails validation below; meanwhile show a real broker's fields
    if broker not in form.broker.choices:
        broker = client.broker if client else next(iter(form.broker.choices))
    if client and broker != client.broker:
        stored = {}
    fields = broker_class(broker).credential_fields
    submitted = {f.name: request.form.get(f"cred_{f.name}", "").strip() for f in fields}
    cred_errors = {}
    if form.validate_on_submit():
        cred_errors = credential_errors(broker, submitted, stored) | too_long(submitted, max_length=MAX_CREDENTIAL)
        if not cred_errors:
            values = {
                name: getattr(form, name).data
                for name in ("name", "broker", "algo_id", "enabled", "allowed_products", *RISK_FIELDS)
            }
            values["client_code"] = form.client_code.data.strip()
            values["algo_id"] = (values["algo_id"] or "").strip() or None
            saved = save_client(
                current_user, client, vault, values=values, credentials=submitted, ip=request.remote_addr
            )
            db.session.commit()
            flash(f"Client {saved.name} saved.", "success")
            return redirect(url_for("admin.clients"))
    masked = {f.name: (mask(stored.get(f.name)) if f.secret else stored.get(f.name, "")) for f in fields}
    return render_template(
        "admin/client_form.html",
        form=form,
        client=client,
        fields=fields,
        stored=masked,
        errors=cred_errors,
        submitted={k: v for k, v in submitted.items() if not any(f.secret and f.name == k for f in fields)},
    )


def _audit_filters() -> tuple[AuditFilters, audit_view.AuditFilter, dict[str, str]]:
    """The filters from the query string; an invalid one is said next to its field and filters nothing."""
    form = AuditFilters(request.args, actions=audit_view.actions())
    form.validate()
    ok = {name: not form[name].errors for name in ("actor", "action", "client", "start", "end")}
    found = audit_view.AuditFilter(
        actor=form.actor.data or "" if ok["actor"] else "",
        action=form.action.data or "" if ok["action"] else "",
        client_id=form.client.data if ok["client"] else None,
        start=form.start.data if ok["start"] and ok["end"] else None,
        end=form.end.data if ok["end"] else None,
    )
    args = {
        key: value
        for key, value in (
            ("actor", found.actor),
            ("action", found.action),
            ("client", found.client_id),
            ("start", found.start and found.start.isoformat()),
            ("end", found.end and found.end.isoformat()),
        )
        if value
    }
    return form, found, args


@bp.route("/audit")
@requires("audit.view")
def audit_log():
    before = record_id(request.args.get("before")) if request.args.get("before") else None
    if request.args.get("before") and before is None:
        abort(400)
    form, found, args = _audit_filters()
    events = audit_view.page_of(found, before, AUDIT_PAGE)
    return render_page_or_partial(
        "admin/audit.html",
        "admin/_audit_rows.html",
        events=events,
        more=len(events) == AUDIT_PAGE,
        names=audit_view.names_for(events),
        detail_lines=audit_view.detail_lines,
        client_ids=audit_view.client_ids,
        form=form,
        filter_args=args,
        export_limit=audit_view.EXPORT_LIMIT,
    )


@bp.route("/audit/export.csv")
@requires("audit.view")
def audit_export():
    """The events the filters show (the newest EXPORT_LIMIT), names and details as on the page."""
    _, found, args = _audit_filters()
    header, rows = audit_view.csv_rows(audit_view.export_events(found))
    label = "-".join(str(v) for v in args.values()) or "all"
    return csv_response(f"audit-{label}", header, rows)

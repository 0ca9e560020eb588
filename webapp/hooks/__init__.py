"""Webhooks: POST /hooks/<secret> (TradingView, Chartink) and the pages that manage hooks."""

from flask import Blueprint

bp = Blueprint("hooks", __name__)

from webapp.hooks import routes  # noqa: E402,F401  (routes attach to bp)

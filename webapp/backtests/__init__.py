from flask import Blueprint

bp = Blueprint("backtests", __name__)

from webapp.backtests import routes  # noqa: E402,F401  (routes attach to bp)

from flask import Blueprint

bp = Blueprint("feed", __name__)

from webapp.feed import routes  # noqa: E402,F401  (routes attach to bp)

from flask import Blueprint

bp = Blueprint("notify", __name__)

from webapp.notify import routes  # noqa: E402,F401  (routes attach to bp)

from flask import Blueprint

bp = Blueprint("risk", __name__)

from webapp.risk import routes  # noqa: E402,F401  (routes attach to bp)

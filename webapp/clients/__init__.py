from flask import Blueprint

bp = Blueprint("clients", __name__)

from webapp.clients import routes  # noqa: E402,F401  (routes attach to bp)

from flask import Blueprint

bp = Blueprint("instruments", __name__)

from webapp.instruments import routes  # noqa: E402,F401  (routes attach to bp)

from flask import Blueprint

bp = Blueprint("stops", __name__)

from webapp.stops import routes  # noqa: E402,F401  (routes attach to bp)

from flask import Blueprint

bp = Blueprint("desk", __name__)

from webapp.desk import routes  # noqa: E402,F401  (routes attach to bp)

from flask import Blueprint

bp = Blueprint("exits", __name__)

from webapp.exits import routes  # noqa: E402,F401  (routes attach to bp)

from flask import Blueprint

bp = Blueprint("deployments", __name__)

from webapp.deployments import routes  # noqa: E402,F401  (routes attach to bp)

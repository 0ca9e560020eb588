from flask import Blueprint

bp = Blueprint("desk", __name__)

from webapp.desk import routes  # noqa: E402,F401  (routes attach to bp)
from webapp.desk.positions import bp as positions_bp  # noqa: E402  (desk-wide positions: /positions)

bp.register_blueprint(positions_bp, url_prefix="/positions")

from flask import Blueprint

bp = Blueprint("orders", __name__)

from webapp.orders import book_pages, routes  # noqa: E402,F401  (routes attach to bp)

"""htmx helpers: one URL serves the page or its partial; redirects that htmx follows."""

from __future__ import annotations

from flask import Flask, Response, make_response, render_template, request


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true" and request.headers.get("HX-History-Restore-Request") != "true"


def render_page_or_partial(page: str, partial: str, **context) -> str:
    """The full page for a browser load, the partial alone for an htmx request."""
    return render_template(partial if is_htmx() else page, **context)


def hx_redirect(location: str) -> Response:
    response = make_response("", 200)
    response.headers["HX-Redirect"] = location
    return response


def init_app(app: Flask) -> None:
    @app.after_request
    def vary_on_htmx(response: Response) -> Response:
        response.vary.add("HX-Request")  # the same URL may answer a page or a fragment
        return response

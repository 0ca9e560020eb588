"""Web hardening (issue 10, item 8): security headers on every kind of response, redirects that
stay on the site, CSV cells a spreadsheet cannot run, batch counts scoped to the user's clients,
no broker secret in the Connect redirect, and a WebSocket Origin that must match the scheme too."""

import csv
import io
import re
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.conftest import make_app
from webapp.csvexport import neutralise
from webapp.feed.routes import _same_origin
from webapp.security import safe_next

ROOT = Path(__file__).resolve().parent.parent


def assert_hardened(response, hsts: bool = True) -> None:
    headers = response.headers
    policy = dict(part.strip().split(" ", 1) for part in headers["Content-Security-Policy"].split(";"))
    assert policy["script-src"] == "'self'" and policy["frame-ancestors"] == "'none'"
    assert "unsafe" not in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    assert ("max-age=" in headers.get("Strict-Transport-Security", "")) is hsts


def test_headers_on_pages_partials_exports_errors_health_and_static(app, client, auth, factory):
    assert_hardened(client.get("/login"))
    assert_hardened(client.get("/health/live"))
    with client.get("/static/js/live.js") as static:
        assert_hardened(static)
    mine = factory.client("Mine")
    factory.batch(factory.user("root", role="admin"), [mine], factory.instrument())
    factory.user("tara", clients=[mine])
    auth.login("tara")
    for response in (
        client.get("/"),
        client.get("/orders/batches"),
        client.get("/orders/", headers={"HX-Request": "true"}),  # the book's rows alone
        client.get("/orders/export.csv"),
        client.get("/orders/batches/export.csv"),
        client.get("/no/such/page"),
        client.get("/clients/999999"),
        client.get("/orders/batches/1/retry"),
    ):  # 405
        assert_hardened(response)
    assert client.get("/no/such/page").status_code == 404


def test_no_hsts_in_demo_mode(services, encryption_key):
    app = make_app(services, encryption_key, DEMO_MODE=True)
    response = app.test_client().get("/login")
    assert_hardened(response, hsts=False)


def test_templates_carry_no_inline_script_or_evaluated_htmx():
    """What the CSP would block (or force 'unsafe-eval' for) must not be in the markup at all."""
    problems = []
    for path in (ROOT / "templates").rglob("*.html"):
        text = path.read_text()
        for pattern, what in (
            (r"<script(?![^>]*\bsrc=)[^>]*>", "inline <script>"),
            (r"\son[a-z]+\s*=", "on* handler"),
            (r"\bhx-on", "hx-on"),
            (r"\bhx-vars\b|[\"']js:", "evaluated hx-vars / js:"),
            (r"hx-trigger=\"[^\"]*\[", "hx-trigger filter (eval)"),
            (r"\sstyle\s*=", "style attribute"),
            (r"javascript:", "javascript: URL"),
        ):
            problems += [f"{path.relative_to(ROOT)}: {what}" for _ in re.finditer(pattern, text)]
    assert problems == []
    base = (ROOT / "templates" / "base.html").read_text()
    assert '"allowEval":false' in base and '"includeIndicatorStyles":false' in base


# ---------------------------------------------------------------------------- redirects

HOSTILE_NEXT = [
    "//evil.example/",
    "///evil.example",
    "/\\evil.example",
    "/\\/evil.example",
    "https://evil.example/",
    "javascript:alert(1)",
    "/\t/evil.example",
    "/\n/evil.example",
    "/ok\r\nSet-Cookie: x=1",
    "evil.example",
    "http:/evil.example",
    "",
]


@pytest.mark.parametrize("target", HOSTILE_NEXT)
def test_safe_next_refuses_other_sites(target):
    assert safe_next(target) is None


@pytest.mark.parametrize("target", ["/", "/orders/?status=OPEN", "/clients/3", "/instruments/watchlist"])
def test_safe_next_keeps_local_paths(target):
    assert safe_next(target) == target


@pytest.mark.parametrize("target", HOSTILE_NEXT)
def test_login_next_never_leaves_the_site(client, factory, target):
    factory.user("tara")
    response = client.post(
        "/login", query_string={"next": target}, data={"username": "tara", "password": "Correct-horse-42"}
    )
    assert response.status_code == 302 and response.headers["Location"] == "/"


def test_login_next_to_a_local_page_is_followed(client, factory):
    factory.user("tara")
    response = client.post("/login?next=/orders/batches", data={"username": "tara", "password": "Correct-horse-42"})
    assert response.headers["Location"] == "/orders/batches"


@pytest.mark.parametrize("target", ["//other.host/x", "/\\other.host", "https://other.host/"])
def test_watchlist_toggle_next_stays_on_the_site(client, auth, factory, target):
    instrument = factory.instrument()
    factory.user("tara")
    auth.login("tara")
    response = client.post(f"/instruments/{instrument.id}/watch", data={"next": target})
    assert response.headers["Location"] == f"/instruments/{instrument.id}"
    response = client.post(f"/instruments/{instrument.id}/watch", data={"next": "/instruments/watchlist"})
    assert response.headers["Location"] == "/instruments/watchlist"


@pytest.mark.parametrize(
    "referrer, location",
    [
        ("http://evil.example/clients/1", "/"),
        ("http://localhost/clients/1?tab=x", "/clients/1?tab=x"),
        ("http://localhost//evil.example", "/"),
    ],
)
def test_exit_of_a_flat_position_goes_back_only_to_our_own_page(client, auth, factory, referrer, location):
    mine, instrument = factory.client("Mine"), factory.instrument()
    factory.user("tara", clients=[mine])
    auth.login("tara")
    response = client.post(
        "/exits/position",
        headers={"Referer": referrer},
        data={"client_id": mine.id, "instrument_id": instrument.id, "product": "MIS"},
    )
    assert response.status_code == 302 and response.headers["Location"] == location


# ---------------------------------------------------------------------------- CSV


@pytest.mark.parametrize(
    "cell, exported",
    [
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("-", "'-"),
        ("-12.50", "-12.50"),
        ("+3", "+3"),
        ("-7", "-7"),
        ("Aarav", "Aarav"),
        ("", ""),
        (None, None),
        (-12, -12),
    ],
)
def test_formula_cells_are_neutralised_and_plain_numbers_kept(cell, exported):
    assert neutralise(cell) == exported


def test_order_export_neutralises_names_and_notes(client, auth, factory):
    evil = factory.client("=cmd|' /C calc'!A0", code="@EVIL")
    factory.batch(factory.user("root", role="admin"), [evil], factory.instrument(), price=Decimal("-12.50"))
    auth.login("root")
    rows = list(csv.DictReader(io.StringIO(client.get("/orders/export.csv").data.decode())))
    assert rows[0]["client"] == "'=cmd|' /C calc'!A0" and rows[0]["client_code"] == "'@EVIL"
    assert rows[0]["price"].startswith("-12.50")  # a number, usable in a sum


# ---------------------------------------------------------------------------- batch counts


def test_batch_list_and_csv_count_only_the_users_children(client, auth, factory):
    mine, theirs, instrument = factory.client("Mine"), factory.client("Theirs"), factory.instrument()
    root = factory.user("root", role="admin")
    batch = factory.batch(root, [mine, theirs, factory.client("Third")], instrument)
    factory.user("tara", clients=[mine])
    counts = {}
    for username in ("tara", "root"):
        auth.login(username)
        page = client.get("/orders/batches").data.decode()
        row = re.search(rf'<tr id="batch-{batch.id}">.*?</tr>', page, re.S).group(0)
        exported = list(csv.DictReader(io.StringIO(client.get("/orders/batches/export.csv").data.decode())))
        counts[username] = (
            re.findall(r'<td class="num">(\d+)</td>', row)[-1],
            re.findall(r"NEW \d+", row),
            exported[0]["children"],
        )
        auth.logout()
    assert counts == {"tara": ("1", ["NEW 1"], "1"), "root": ("3", ["NEW 3"], "3")}


# ---------------------------------------------------------------------------- broker Connect


def test_sharekhan_connect_redirect_carries_no_secret(app, client, auth, factory, caplog):
    secrets = {"secret_key": "S3cretKeyS3cretKeyS3cretKeyS3cre", "vendor_key": "VendorKey-9f8e7d"}
    sk = factory.client(
        "Chirag",
        broker="sharekhan",
        code="73101",
        credentials={"api_key": "public-api-key", "version_id": "1005", **secrets},
    )
    factory.user("tara", clients=[sk])
    auth.login("tara")
    caplog.set_level("DEBUG")
    response = client.get(f"/clients/{sk.id}/connect")
    assert response.status_code == 302
    location = response.headers["Location"]
    assert set(dict(parse_qsl(urlsplit(location).query))) == {"api_key", "state", "version_id"}
    for secret in secrets.values():
        assert secret not in location and secret not in caplog.text


# ---------------------------------------------------------------------------- WebSocket Origin


@pytest.mark.parametrize(
    "origin, scheme, host, same",
    [
        ("http://desk.example:8000", "http", "desk.example:8000", True),
        ("https://desk.example", "https", "desk.example", True),
        ("http://desk.example", "https", "desk.example", False),  # a plain-http page on the same host
        ("https://desk.example:8000", "http", "desk.example:8000", False),
        ("http://evil.example:8000", "http", "desk.example:8000", False),
        ("null", "http", "desk.example", False),
        (None, "http", "desk.example", False),
    ],
)
def test_websocket_origin_must_match_scheme_and_host(origin, scheme, host, same):
    assert _same_origin(origin, scheme, host) is same


def test_a_webhooks_secret_never_reaches_a_log_line():
    """The hook's URL is its credential: gunicorn's access log and the error log name the path without it."""
    from datetime import timedelta
    from types import SimpleNamespace

    from gunicorn.config import Config

    from webapp.gunicorn_conf import RedactingLogger, access_log_format
    from webapp.security import loggable_path

    secret = "s3cr3t-Hook-Url-Part"
    assert loggable_path(f"/hooks/{secret}") == "/hooks/[secret]"
    assert loggable_path("/api/v1/batches/7") == "/api/v1/batches/7"
    config = Config()
    config.set("access_log_format", access_log_format)
    logger = RedactingLogger(config)
    environ = {
        "REQUEST_METHOD": "POST",
        "RAW_URI": f"/hooks/{secret}",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "PATH_INFO": f"/hooks/{secret}",
        "QUERY_STRING": "",
        "REMOTE_ADDR": "203.0.113.7",
    }
    atoms = logger.atoms(SimpleNamespace(status="200 OK", sent=12, headers=[]), {}, environ, timedelta(milliseconds=5))
    line = access_log_format % atoms
    assert secret not in line and secret not in atoms["r"] and "/hooks/[secret]" in line

"""The interactive API docs page in a browser: Swagger UI, served by the desk itself (no CDN), draws
every operation of the OpenAPI document under the page's policy, with no console violation."""

import pytest

from tests.e2e.conftest import wait_for_function

pytestmark = pytest.mark.slow


def test_the_docs_page_draws_the_operations(page, live_desk):
    page.goto(live_desk + "/api/v1/docs")
    wait_for_function(page, "document.querySelectorAll('.opblock').length > 0", timeout=15_000)
    drawn = page.evaluate("document.querySelectorAll('.opblock').length")
    listed = page.evaluate(
        """async () => { const doc = await (await fetch('/api/v1/openapi.json')).json();
                         return Object.values(doc.paths).reduce((n, ops) => n + Object.keys(ops).length, 0); }"""
    )
    assert drawn == listed >= 1
    assert page.get_by_text("/api/v1/me", exact=True).count() >= 1
    assert not page.csp_violations

"""In a browser: a trader makes an API key on the account page, reads it off the page, uses it with
`requests` against the live desk's /api/v1/me, then revokes it on the page and the key stops at once."""

import re

import pytest
import requests

from tests.e2e.conftest import login

pytestmark = pytest.mark.slow


def test_a_trader_makes_uses_and_revokes_a_key(page, live_desk):
    login(page, live_desk, "trader")
    page.click("#user-menu summary")  # API keys sits in the user's menu
    page.click("#user-menu a[href='/account/keys']")
    page.wait_for_url(live_desk + "/account/keys")

    page.fill("#key-name", "browser test")
    page.check("input[name=key-scopes][value=trade]")
    page.select_option("#key-expires", "30")
    page.click("#create-key")
    page.wait_for_selector("#new-key")
    key = page.inner_text("#new-key").strip()
    assert re.fullmatch(r"fo_[A-Za-z0-9]{32}", key)
    assert key in page.inner_text("#new-key-curl")
    assert key not in page.url

    bearer = {"Authorization": f"Bearer {key}"}
    answer = requests.get(live_desk + "/api/v1/me", headers=bearer, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["username"] == "trader"
    assert answer.json()["scopes"] == ["read", "trade"]

    page.goto(live_desk + "/account/keys")  # loaded again: the key is listed, its text never shown again
    assert page.query_selector("#new-key") is None
    assert key not in page.content()
    row = page.locator("tr[id^=api-key-]", has_text="browser test").first
    assert key[:10] in row.inner_text()

    with page.expect_navigation():  # its confirm() is accepted by the page fixture
        row.locator("button", has_text="Revoke").click()
    assert "revoked" in page.inner_text("#flashes")
    assert "revoked" in page.locator("tr[id^=api-key-]", has_text="browser test").first.inner_text()
    assert requests.get(live_desk + "/api/v1/me", headers=bearer, timeout=10).status_code == 401

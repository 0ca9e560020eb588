import pytest

from webapp.vault import Vault, VaultError, generate_key, mask


def test_round_trip_and_rotation():
    old, new = generate_key(), generate_key()
    token = Vault([old]).encrypt({"api_secret": "abc"})
    rotated = Vault([new, old]).rotate(token)
    assert Vault([new]).decrypt(rotated) == {"api_secret": "abc"}
    with pytest.raises(VaultError, match="cannot be decrypted"):
        Vault([new]).decrypt(token)


def test_malformed_key_is_named():
    with pytest.raises(VaultError, match="malformed key"):
        Vault(["not-a-key"])


@pytest.mark.parametrize("value, shown", [("", ""), ("short", "••••"), ("longsecretvalue", "••••alue")])
def test_mask(value, shown):
    assert mask(value) == shown


def test_cli_rotation(app, runner, factory):
    from webapp.extensions import db
    from webapp.models import Client
    from webapp.vault import current_vault

    client = factory.client("K", broker="kite", credentials={"api_key": "k", "api_secret": "s"})
    with app.app_context():
        before = db.session.get(Client, client.id).credentials_enc
    assert "re-encrypted 1 secrets" in runner.invoke(args=["secrets", "rotate"]).output
    with app.app_context():
        after = db.session.get(Client, client.id).credentials_enc
        assert after != before and current_vault().decrypt(after) == {"api_key": "k", "api_secret": "s"}

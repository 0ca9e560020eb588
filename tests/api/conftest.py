"""API fixtures: a key for a user (made through webapp.apikeys, as the account page makes them) and a
client that sends it as a Bearer header."""

from __future__ import annotations

import pytest

from webapp import apikeys as keys
from webapp.extensions import db
from webapp.models import User


class Api:
    """The Flask test client with `Authorization: Bearer <key>` on every call (JSON in and out)."""

    def __init__(self, client, key: str | None):
        self.client, self.key = client, key

    def _headers(self, headers):
        merged = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        merged.update(headers or {})
        return merged

    def get(self, path, *, headers=None, **kwargs):
        return self.client.get(path, headers=self._headers(headers), **kwargs)

    def post(self, path, json=None, *, headers=None, **kwargs):
        return self.client.post(path, json=json, headers=self._headers(headers), **kwargs)

    def put(self, path, json=None, *, headers=None, **kwargs):
        return self.client.put(path, json=json, headers=self._headers(headers), **kwargs)

    def patch(self, path, json=None, *, headers=None, **kwargs):
        return self.client.patch(path, json=json, headers=self._headers(headers), **kwargs)

    def delete(self, path, *, headers=None, **kwargs):
        return self.client.delete(path, headers=self._headers(headers), **kwargs)


@pytest.fixture
def make_key(app):
    """make_key(user, scopes=None, **options) -> the key's text (scopes default: all the role allows)."""

    def make(user, scopes=None, **options) -> str:
        with app.app_context():
            owner = db.session.get(User, user.id)
            _, text = keys.create_key(
                owner,
                name=options.pop("name", "test key"),
                scopes=list(scopes or keys.scopes_for(owner.role)),
                by=owner,
                **options,
            )
            db.session.commit()
            return text

    return make


@pytest.fixture
def api_as(client, make_key):
    """api_as(user, scopes=None, **options) -> Api acting with a new key of that user."""

    def make(user, scopes=None, **options) -> Api:
        return Api(client, make_key(user, scopes, **options))

    return make

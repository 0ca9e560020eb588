"""From a stored Client to a live broker adapter: decrypt credentials and session, add the
options the broker's adapter declares it reads from the settings (webapp/brokers/)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Row

from webapp.brokers import broker_options, create_broker
from webapp.brokers.base import Account, Broker, BrokerSession
from webapp.models import Client
from webapp.vault import Vault


def stored_session(client: Client | Row, vault: Vault) -> BrokerSession | None:
    data = vault.decrypt(client.session_enc)
    if not data:
        return None
    expires = datetime.fromisoformat(data["expires_at"]) if data.get("expires_at") else None
    return BrokerSession(access_token=data["access_token"], expires_at=expires, extra=data.get("extra", {}))


def adapter_for(client: Client | Row, config: Mapping[str, Any], vault: Vault) -> Broker:
    """From a Client, or a row of its id, broker, client_code, credentials_enc and session_enc."""
    account = Account(
        client_code=client.client_code,
        credentials=vault.decrypt(client.credentials_enc),
        session=stored_session(client, vault),
        client_id=client.id,
    )
    return create_broker(client.broker, account, broker_options(client.broker, config))

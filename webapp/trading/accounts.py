"""From a stored Client to a live broker adapter: decrypt credentials and session, add the
broker's endpoints and options from the settings."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from sqlalchemy import Row

from webapp.brokers import create_broker
from webapp.brokers.base import Account, Broker, BrokerSession
from webapp.models import Client
from webapp.vault import Vault


def broker_options(config: Mapping[str, Any], broker: str) -> dict[str, Any]:
    timeout = config.get("BROKER_TIMEOUT_SECONDS", 7)
    if broker == "kite":
        return {"base_url": config["KITE_API_URL"], "login_url": config["KITE_LOGIN_URL"], "timeout": timeout}
    if broker == "motilal":
        return {"base_url": config["MOTILAL_API_URL"], "timeout": timeout}
    if broker == "sharekhan":
        return {"base_url": config["SHAREKHAN_API_URL"], "login_url": config["SHAREKHAN_LOGIN_URL"], "timeout": timeout}
    if broker == "paper":
        return {"redis_url": config["REDIS_URL"], "always_open": config.get("PAPER_ALWAYS_OPEN", False),
                "latency_ms": config.get("PAPER_LATENCY_MS", 0), "jitter_ms": config.get("PAPER_JITTER_MS", 0)}
    return {}


def stored_session(client: Client | Row, vault: Vault) -> BrokerSession | None:
    data = vault.decrypt(client.session_enc)
    if not data:
        return None
    expires = datetime.fromisoformat(data["expires_at"]) if data.get("expires_at") else None
    return BrokerSession(access_token=data["access_token"], expires_at=expires, extra=data.get("extra", {}))


def adapter_for(client: Client | Row, config: Mapping[str, Any], vault: Vault) -> Broker:
    """From a Client, or a row of its id, broker, client_code, credentials_enc and session_enc."""
    account = Account(client_code=client.client_code, credentials=vault.decrypt(client.credentials_enc),
                      session=stored_session(client, vault), client_id=client.id)
    return create_broker(client.broker, account, broker_options(config, client.broker))

"""The domain core: accounts, orders, risk, ledger. No Flask request objects in here."""

from tests.orders.conftest import Desk, desk, kite, kite_server  # noqa: F401  (shared fixtures)

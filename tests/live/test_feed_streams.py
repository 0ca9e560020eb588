"""The feed on a broker stream, over a real socket: the Kite emulator's ticker, through a connected
client's session; prices land in Redis under the desk's instrument tokens."""

import time
from decimal import Decimal

import pytest

from tests.emulators.common import EmulatorServer
from tests.emulators.kite import KiteEmulator
from webapp.extensions import get_redis
from webapp.marketdata.store import read_quote
from webapp.marketfeed.feed import Feed, note_interest
from webapp.marketfeed.sources import StreamSource


@pytest.fixture
def kite_stream_server():
    emulator = KiteEmulator()
    with EmulatorServer(emulator) as server:
        emulator.stream.tick_interval = 0.05
        yield server
        emulator.stream.shutdown()


def test_kite_ticks_reach_the_quote_store(app, desk, kite_stream_server):
    emulator = kite_stream_server.app
    app.config.update(
        KITE_API_URL=kite_stream_server.url,
        KITE_WS_URL=kite_stream_server.url.replace("http", "ws"),
        FEED_SOURCE="kite",
    )
    desk.kite_client("Streamer", emulator)
    source = StreamSource(app, "kite")
    feed = Feed(app, source, on_quotes=source.after)
    with app.app_context():
        note_interest(get_redis(), desk.instrument.instrument_token)
    emulator.set_price("INFY", Decimal("1555.10"))
    deadline = time.monotonic() + 10
    quote = None
    while quote is None or quote.last_price != Decimal("1555.10"):
        assert time.monotonic() < deadline, f"no tick at the emulator's price; last {quote}"
        feed.step()
        with app.app_context():
            quote = read_quote(get_redis(), desk.instrument)
    source.supervisor.close()


def test_without_a_connected_client_the_stream_says_so(app, desk):
    app.config.update(FEED_SOURCE="kite", KITE_WS_URL="ws://127.0.0.1:9")
    source = StreamSource(app, "kite")
    from webapp.brokers.base import AuthExpired

    with pytest.raises(AuthExpired, match="no connected kite client"):
        source(None, {desk.instrument.instrument_token})
    source.supervisor.close()

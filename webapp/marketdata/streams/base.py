"""The tick-stream port: one broker market-data socket, read synchronously by the feed process.

A `TickStream` is one connection's worth of state. It never reconnects by itself: when the socket
dies `read` raises `StreamClosed` and the owner (normally `StreamSupervisor`) throws the stream away
and asks its factory for a fresh one. `connect` raises the broker port's typed errors: `AuthExpired`
when the broker refuses the session (log in again; retrying will not help) and `Unavailable` when
the broker cannot be reached (retry with backoff).

Tokens are the broker's own instrument keys, as its adapter's `stream_token` gives them: Kite's
`instrument_token`, ShareKhan's scrip code (the NSE exchange token), or a string where the broker keys
its stream so (Upstox's "NSE_EQ|<ISIN>"). Quotes carry Decimal prices and aware UTC timestamps.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping

from webapp.brokers.base import Quote

Tick = tuple[int | str, Quote]
# token -> (exchange, tradingsymbol), so quotes can name their instrument; streams only know tokens
SymbolMap = Mapping[int, tuple[str, str]]


class StreamClosed(Exception):
    """The socket died (closed by the broker, reset, or closed locally): make a new stream."""


class TickStream(ABC):
    """One market-data connection. Not thread-safe: one owner calls every method."""

    name: str = "stream"

    @abstractmethod
    def connect(self) -> None:
        """Open the socket. Raises AuthExpired (session refused) or Unavailable (unreachable)."""

    @abstractmethod
    def subscribe(self, tokens: Iterable[int]) -> None:
        """Start ticks for these tokens. Raises StreamClosed when the socket is gone."""

    @abstractmethod
    def unsubscribe(self, tokens: Iterable[int]) -> None:
        """Stop ticks for these tokens. Raises StreamClosed when the socket is gone."""

    @abstractmethod
    def read(self, timeout: float) -> list[Tick]:
        """Ticks that arrived, waiting up to `timeout` seconds for the first; [] when none came.

        Raises StreamClosed when the socket died.
        """

    @abstractmethod
    def close(self) -> None:
        """Close the socket; safe to call more than once and after the socket died."""

    def __enter__(self) -> TickStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

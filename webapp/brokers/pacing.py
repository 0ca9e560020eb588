"""Keeping one account's calls under its broker's rate, in this process.

`Pacer.wait(key, limit, window)` lets at most `limit` calls of one key (an account, or an account and an
endpoint) start in any `window` seconds: a burst up to the limit goes at once, the next call sleeps until
the window has moved. The sleep happens outside the lock, so other keys go on. Other processes are not
coordinated: their refusals come back from the broker as RateLimited.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Hashable


class Pacer:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sent: dict[Hashable, deque[float]] = {}

    def wait(self, key: Hashable, limit: int, window: float) -> None:
        if limit <= 0 or window <= 0:
            return
        with self._lock:
            now = time.monotonic()
            sent = self._sent.get(key)
            if sent is None or sent.maxlen != limit:
                sent = self._sent[key] = deque(sent or (), maxlen=limit)
            start = max(now, sent[0] + window) if len(sent) == limit else now
            sent.append(start)
        if start > now:
            time.sleep(start - now)

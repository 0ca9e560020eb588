"""The one pacer the adapters keep their brokers' rates with (webapp/brokers/pacing.py), on a fake clock."""

from __future__ import annotations

import pytest

from webapp.brokers import pacing


@pytest.fixture
def clock(monkeypatch):
    class Clock:
        now = 100.0
        slept: list[float] = []

        def monotonic(self) -> float:
            return self.now

        def sleep(self, seconds: float) -> None:
            self.slept.append(round(seconds, 6))
            self.now += seconds

    fake = Clock()
    fake.slept = []
    monkeypatch.setattr(pacing.time, "monotonic", fake.monotonic)
    monkeypatch.setattr(pacing.time, "sleep", fake.sleep)
    return fake


def test_a_burst_up_to_the_limit_goes_at_once_and_the_next_call_waits_for_the_window(clock):
    pacer = pacing.Pacer()
    for _ in range(3):
        pacer.wait("A1", 3, 1.0)
    assert clock.slept == []
    pacer.wait("A1", 3, 1.0)
    assert clock.slept == [1.0]


def test_one_call_per_interval_and_each_key_has_its_own_budget(clock):
    pacer = pacing.Pacer()
    pacer.wait(("A1", "orders"), 1, 0.5)
    pacer.wait(("A1", "trades"), 1, 0.5)  # another endpoint: no wait
    pacer.wait(("B2", "orders"), 1, 0.5)  # another account: no wait
    assert clock.slept == []
    pacer.wait(("A1", "orders"), 1, 0.5)
    clock.now += 2.0  # long after: the window has moved on
    pacer.wait(("A1", "orders"), 1, 0.5)
    assert clock.slept == [0.5]

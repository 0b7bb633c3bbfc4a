"""Webhook retry schedule and per-host throttle."""

from __future__ import annotations

from bluemule.server.db import make_engine, make_sessionmaker
from bluemule.server.delivery_policy import (
    THROTTLE_COOLDOWN,
    TIMEOUT_SECONDS,
    HostThrottle,
    is_success,
    next_attempt_delay,
)
from bluemule.server.outbox import DeliveryWorker


def test_retry_schedule_is_30_then_60_seconds_then_give_up() -> None:
    assert [next_attempt_delay(n) for n in range(4)] == [0.0, 30.0, 60.0, None]


def test_success_is_2xx_only() -> None:
    assert [is_success(s) for s in (200, 204, 299, 300, 404, 500, None)] == [
        True,
        True,
        True,
        False,
        False,
        False,
        False,
    ]


def test_throttle_while_errors_outnumber_successes_then_cool_down() -> None:
    host = HostThrottle()
    host.record(True, 0.0)
    host.record(False, 1.0)
    assert not host.throttled(1.0)  # 1 error, 1 success: not more errors
    host.record(False, 2.0)
    assert host.throttled(2.5)
    assert host.throttled(2.0 + THROTTLE_COOLDOWN - 0.1)
    assert not host.throttled(2.0 + THROTTLE_COOLDOWN)  # quiet long enough: try again
    assert not host.throttled(100.0)


def test_a_delivery_waits_20_seconds_as_particle_does() -> None:
    """Particle's webhook timeout; the worker's default HTTP client uses it."""
    assert TIMEOUT_SECONDS == 20
    worker = DeliveryWorker(make_sessionmaker(make_engine("sqlite://")))
    try:
        assert worker.timeout == 20 and worker.client.timeout.read == 20
    finally:
        worker.close()

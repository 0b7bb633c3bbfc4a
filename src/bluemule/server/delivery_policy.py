"""When to (re)try a webhook delivery, and when a host is throttled: pure rules.

Particle (``shared/reference/fleet-server-anchors.md`` §2.2): 20 s timeout; a failed or
skipped delivery is retried after about 30 s and 1 min, then dropped; an adaptive
throttle per destination host skips deliveries while errors outnumber successes and
lifts after a few quiet seconds. bluemule keeps every attempt in a delivery log.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field
from typing import Final

TIMEOUT_SECONDS: Final = 20.0
RETRY_DELAYS: Final = (30.0, 60.0)
"""Seconds before the 2nd and 3rd attempts; after the 3rd the delivery is given up."""
THROTTLE_WINDOW: Final = 20
"""Recent outcomes per host the throttle looks at."""
THROTTLE_COOLDOWN: Final = 5.0
"""Seconds without new errors after which a throttled host is tried again."""


class Outcome(enum.StrEnum):
    """One attempt's result, as the delivery log shows it."""

    DELIVERED = "delivered"
    """2xx."""
    FAILED = "failed"
    """Non-2xx status, timeout or connection error."""
    SKIPPED = "skipped"
    """Throttled: not sent (counts as an attempt, like Particle's "Sleeping, too many errors")."""


def is_success(status: int | None) -> bool:
    """A 2xx response; ``None`` means no response (timeout, refused)."""
    return status is not None and 200 <= status < 300


def next_attempt_delay(attempts_made: int) -> float | None:
    """Seconds until the next attempt after ``attempts_made`` unsuccessful ones, or None."""
    if attempts_made < 1:
        return 0.0
    index = attempts_made - 1
    return RETRY_DELAYS[index] if index < len(RETRY_DELAYS) else None


@dataclass
class HostThrottle:
    """The adaptive per-host throttle."""

    recent: deque[bool] = field(default_factory=lambda: deque(maxlen=THROTTLE_WINDOW))
    last_error_at: float | None = None

    def record(self, success: bool, now: float) -> None:
        """Remember an attempt's outcome."""
        self.recent.append(success)
        if not success:
            self.last_error_at = now

    def throttled(self, now: float) -> bool:
        """Skip this host now? While errors outnumber successes, until a quiet cooldown."""
        errors = sum(1 for ok in self.recent if not ok)
        if errors <= len(self.recent) - errors:
            return False
        if self.last_error_at is not None and now - self.last_error_at >= THROTTLE_COOLDOWN:
            self.recent.clear()
            return False
        return True

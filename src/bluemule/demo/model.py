"""What the demo is asked to do, what it shows while running, and what it reports."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

DEFAULT_DEVICES = 6
MAX_DEVICES = 64


class DemoError(Exception):
    """The demo could not be set up or run (a port, a bad webhook URL, a refusing server)."""


@dataclass(frozen=True)
class DemoOptions:
    """``bluemule demo`` flags."""

    devices: int = DEFAULT_DEVICES
    webhook_url: str | None = None
    """Deliver events to this URL instead of the demo's own receiver on 127.0.0.1."""
    keep: bool = False
    """After the summary, leave everything running until :meth:`DemoUI.keep` returns."""
    seed: int = 0
    """Device ids and sensor readings derive from it."""
    timeout: float | None = None
    """Give up on the rollout and the deliveries after this many seconds (default: 60
    plus 5 per device; 6 devices take about 10 s, 64 about 95 s on two cores)."""

    def __post_init__(self) -> None:
        if not 1 <= self.devices <= MAX_DEVICES:
            raise DemoError(f"--devices must be 1 to {MAX_DEVICES}, not {self.devices}")
        if self.webhook_url is not None and not self.webhook_url.startswith(
            ("http://", "https://")
        ):
            raise DemoError(f"webhook URL {self.webhook_url!r} must start with http(s)://")

    @property
    def seconds_allowed(self) -> float:
        """The effective timeout."""
        return 60.0 + 5.0 * self.devices if self.timeout is None else self.timeout


@dataclass
class DeviceRow:
    """One line of the live table."""

    device_id: str
    platform: str
    stage: int
    """Rollout stage the device is in (1-based)."""
    state: str = "starting"
    """``running v1``, ``waiting`` (for its stage), or the update state as the relay or
    the server knows it (``cached_on_relay``, ``transferring``, ``confirmed_running``, …)."""
    progress: float = 0.0
    """Fraction of the update transferred (1.0 once installed)."""
    published: int = 0
    delivered: int = 0
    """Events the webhook receiver got from this device (distinct)."""


@dataclass
class DemoStatus:
    """Everything the live display shows."""

    phase: str = "starting"
    devices: list[DeviceRow] = field(default_factory=list)
    rollouts: dict[str, str] = field(default_factory=dict)
    """Platform → ``stage 1/2 running`` and the like (the server's view)."""


@dataclass(frozen=True)
class DemoSummary:
    """The outcome; :meth:`to_json` is what ``bluemule demo --json`` prints."""

    devices: int
    updated: int
    """Devices the server counts ``confirmed_running`` with the new release."""
    failed: int
    events_published: int
    events_delivered: int
    """Distinct events that reached the webhook receiver."""
    duplicate_deliveries: int
    """Requests for an event already received."""
    seconds: float
    dashboard_url: str
    server_url: str = ""
    admin_token_path: Path | None = None
    """Where the admin token is (to log in to the dashboard while it runs)."""

    @property
    def ok(self) -> bool:
        """Every device updated and every event delivered exactly once."""
        return (
            self.updated == self.devices
            and self.failed == 0
            and self.events_delivered == self.events_published
            and self.duplicate_deliveries == 0
        )

    def to_json(self) -> dict[str, Any]:
        """The documented JSON fields only."""
        out = asdict(self)
        for extra in ("server_url", "admin_token_path"):
            del out[extra]
        return out


class DemoUI(Protocol):
    """What the demo tells its front end."""

    def show(self, status: DemoStatus) -> None:
        """The current state (called a few times a second; must not block)."""
        ...

    async def keep(self, summary: DemoSummary) -> None:
        """With ``keep``: return when the demo should shut down (the server, the receiver,
        the relay and the devices run meanwhile). Cancelled on Ctrl-C."""
        ...


class QuietUI:
    """Shows nothing; does not keep anything running."""

    def show(self, status: DemoStatus) -> None:
        """See :meth:`DemoUI.show`."""

    async def keep(self, summary: DemoSummary) -> None:
        """See :meth:`DemoUI.keep`."""

"""``bluemule demo``: the whole system on one machine, nothing to set up.

:func:`run_demo` starts the fleet server (SQLite in a temporary directory), a webhook
receiver, a relay agent and emulated Boron and M-SoM devices on Bumble's virtual link;
uploads a release bundle with assets, runs a staged rollout while the devices publish
events, waits until every event reached the webhook, and returns a
:class:`DemoSummary`. Nothing is left behind (``docs/demo.md``).
"""

from __future__ import annotations

from bluemule.demo.model import (
    DEFAULT_DEVICES,
    MAX_DEVICES,
    DemoError,
    DemoOptions,
    DemoStatus,
    DemoSummary,
    DemoUI,
    DeviceRow,
    QuietUI,
)


def run_demo(options: DemoOptions, ui: DemoUI | None = None) -> DemoSummary:
    """Run the demo; see :func:`bluemule.demo.run.run_demo` (imported on first use, so
    that ``bluemule --help`` does not load the server, Bumble and the emulator)."""
    from bluemule.demo.run import run_demo as run  # noqa: PLC0415

    return run(options, ui)


__all__ = [
    "DEFAULT_DEVICES",
    "MAX_DEVICES",
    "DemoError",
    "DemoOptions",
    "DemoStatus",
    "DemoSummary",
    "DemoUI",
    "DeviceRow",
    "QuietUI",
    "run_demo",
]

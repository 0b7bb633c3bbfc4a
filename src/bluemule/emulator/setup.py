"""What decides whether Device OS's BLE control channel is live, and the key it uses.

``control.json`` in the state directory holds what survives resets:

* ``mobile_secret``: the 15 printable characters of the DCT device-secret field, the
  EC-JPAKE passphrase (``shared/reference/particle.md`` §5.4); generated when the device
  is made, like the one printed on a real device's sticker;
* ``protected``: Device Protection (a SECURITY_MODE bootloader, §1.12);
* ``provisioning_mode``: the application calls ``BLE.provisioningMode(true)`` after
  ``System.enableFeature(FEATURE_DISABLE_LISTENING_MODE)`` (Device OS ≥ 3.3.0, §5.2);
* ``resets_disabled``: the application calls ``System.disableReset()``, so the reset
  Device OS schedules after an update stays pending (§3.7, §4.2);
* ``startup_listen``: SYSTEM_FLAG_STARTUP_LISTEN_MODE set by request 75 (kept; the
  emulator does not model the requested safe mode that honours it).

Listening mode itself is volatile: it lives in the device's RAM state and a reset leaves
it (:attr:`~bluemule.emulator.device.EmulatedDevice.listening`). The secret never appears
in a repr or an error message.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bluemule.emulator.errors import StateDirError, UsageError
from bluemule.emulator.storage import atomic_write

CONTROL_FILE: Final = "control.json"
MOBILE_SECRET_LENGTH: Final = 15
PROVISIONING_MODE_MIN_DEVICE_OS: Final = 3300
"""Device OS 3.3.0: the first with BLE provisioning mode (§5.2)."""
_UNAMBIGUOUS: Final = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def generate_mobile_secret() -> str:
    """15 random characters from an unambiguous upper-case alphabet."""
    return "".join(secrets.choice(_UNAMBIGUOUS) for _ in range(MOBILE_SECRET_LENGTH))


def check_mobile_secret(secret: str) -> str:
    """``secret`` if it is 15 printable ASCII characters (no spaces).

    Raises:
        UsageError: anything else (the message does not repeat the secret).
    """
    if len(secret) != MOBILE_SECRET_LENGTH or not all(33 <= ord(c) <= 126 for c in secret):
        raise UsageError(
            f"a mobile secret is {MOBILE_SECRET_LENGTH} printable ASCII characters without spaces"
        )
    return secret


@dataclass(frozen=True)
class ControlSettings:
    """``control.json``."""

    mobile_secret: str = dataclasses.field(repr=False)
    protected: bool = False
    provisioning_mode: bool = False
    resets_disabled: bool = False
    startup_listen: bool = False

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, obj: Any) -> ControlSettings:
        """Inverse of :meth:`to_json`."""
        if not isinstance(obj, dict):
            raise ValueError("not an object")
        flags = {f.name: bool(obj.get(f.name, False)) for f in dataclasses.fields(cls)[1:]}
        return cls(check_mobile_secret(str(obj["mobile_secret"])), **flags)


def new_settings(mobile_secret: str | None = None, *, protected: bool = False) -> ControlSettings:
    """Settings for a new device: ``mobile_secret`` checked, or a random one.

    Raises:
        UsageError: a mobile secret that is not 15 printable characters.
    """
    secret = generate_mobile_secret() if mobile_secret is None else mobile_secret
    return ControlSettings(check_mobile_secret(secret), protected=protected)


def load_settings(state_dir: Path) -> ControlSettings:
    """The settings of the device in ``state_dir``; a directory made before they existed
    gets a new mobile secret, saved.

    Raises:
        StateDirError: ``control.json`` is damaged.
    """
    path = state_dir / CONTROL_FILE
    if not path.exists():
        settings = ControlSettings(generate_mobile_secret())
        save_settings(state_dir, settings)
        return settings
    try:
        return ControlSettings.from_json(json.loads(path.read_bytes()))
    except (OSError, ValueError, KeyError) as exc:
        raise StateDirError(f"{path} is damaged: {type(exc).__name__}") from None


def save_settings(state_dir: Path, settings: ControlSettings) -> None:
    """Write ``control.json`` atomically (owner-only: it holds the secret)."""
    path = state_dir / CONTROL_FILE
    atomic_write(path, json.dumps(settings.to_json(), indent=2).encode())
    path.chmod(0o600)


def update_settings(state_dir: Path, **changes: bool | str) -> ControlSettings:
    """Change some fields (``mobile_secret`` is checked) and save."""
    if "mobile_secret" in changes:
        check_mobile_secret(str(changes["mobile_secret"]))
    settings = dataclasses.replace(load_settings(state_dir), **changes)  # type: ignore[arg-type]
    save_settings(state_dir, settings)
    return settings


def provisioning_active(settings: ControlSettings, device_os: int) -> bool:
    """BLE provisioning mode is on: the app asked and Device OS has it (≥ 3.3.0)."""
    return settings.provisioning_mode and device_os >= PROVISIONING_MODE_MIN_DEVICE_OS


def channel_report(
    settings: ControlSettings, *, listening: bool, device_os: int, show_secret: bool = False
) -> dict[str, Any]:
    """The control channel's state for ``emulator show`` (the secret only if asked)."""
    report: dict[str, Any] = {
        "mobile_secret": bool(settings.mobile_secret),
        "listening": listening,
        "provisioning_mode": provisioning_active(settings, device_os),
        "protected": settings.protected,
        "resets_disabled": settings.resets_disabled,
    }
    if show_secret:
        report["mobile_secret_value"] = settings.mobile_secret
    return report

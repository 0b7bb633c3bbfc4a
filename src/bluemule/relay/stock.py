"""Stock devices (no bluemule library): which site device a setup advertisement is, and
what may be sent to it over Device OS's control channel (pure; no I/O).

A stock device checks no signature, so the relay does it for the device: before a single
byte goes over the control channel, :func:`trusted_release` verifies the device's signed
manifest against the server's release key the relay pinned at its first sync, checks
that the manifest names this device, and checks every cached part's size and SHA-256
against the manifest. A part or manifest altered in the relay's cache (or a server key
that changed since the pin) is never sent.

What this does not protect against: someone holding the device's mobile secret can send
it anything over BLE (the secret is the only key Device OS checks), and a server whose
release key was stolen can sign anything the relay will pass on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from bluemule.image import ImageError, ModuleFunction, parse_module
from bluemule.particle_ctrl.client import DeviceInfo
from bluemule.particle_ctrl.plan import InputFile
from bluemule.protocol.errors import ProtocolError
from bluemule.protocol.manifest import Manifest, verify_manifest
from bluemule.relay.scan import StockSighting
from bluemule.relay.server_client import DesiredUpdate

MAX_GUESSES: Final = 3
"""Without a setup code from the server, try at most this many of the site's devices of
the sighted platform (each costs a handshake)."""


class TrustError(Exception):
    """The relay's copy of a release cannot be trusted: it is not sent to the device."""


def stock_candidates(
    sighting: StockSighting,
    desired: Mapping[str, DesiredUpdate],
    backed_off: Callable[[DesiredUpdate], bool],
    *,
    limit: int = MAX_GUESSES,
) -> tuple[list[DesiredUpdate], bool]:
    """The devices ``sighting`` may be, best first, and whether the setup code named it.

    The devices whose setup code (from the server) matches are the only candidates (two
    serials can end alike; the device's id tells them apart). Otherwise
    the devices of the same platform that have a sealed secret and no known setup code,
    at most ``limit``, in device-id order. Devices ``backed_off`` are left out.
    """
    same_platform = [
        u
        for _, u in sorted(desired.items())
        if u.platform_id == sighting.platform_id and u.mobile_secret_sealed is not None
    ]
    named = [u for u in same_platform if u.setup_code == sighting.setup_code]
    if named:
        return [u for u in named if not backed_off(u)][:limit], True
    unnamed = [u for u in same_platform if u.setup_code is None and not backed_off(u)]
    return unnamed[:limit], False


def trusted_release(
    update: DesiredUpdate, pinned_key: bytes | None, read_blob: Callable[[str], bytes]
) -> tuple[Manifest, list[InputFile]]:
    """The verified manifest and the parts to send, in the manifest's order.

    Raises:
        TrustError: no pinned key, a manifest that does not verify or names another
            device, or a part whose size or SHA-256 differs from the manifest's.
    """
    if pinned_key is None:
        raise TrustError("no release key is pinned yet (sync with the server first)")
    if hashlib.sha256(update.manifest).hexdigest() != update.manifest_sha256:
        raise TrustError("the manifest does not match its SHA-256 in the sync answer")
    try:
        manifest = verify_manifest(update.manifest, [pinned_key])
    except ProtocolError as exc:
        raise TrustError(f"the manifest does not verify against the pinned key: {exc}") from None
    if manifest.device_id.hex() != update.device_id:
        raise TrustError(f"the manifest is signed for device {manifest.device_id.hex()}")
    if len(manifest.parts) != len(update.parts):
        raise TrustError("the sync answer and the signed manifest list different parts")
    files = []
    for signed, desired in zip(manifest.parts, update.parts, strict=True):
        data = read_blob(desired.sha256)
        if len(data) != signed.size or hashlib.sha256(data).digest() != signed.sha256:
            raise TrustError(f"part {signed.name!r} does not match the signed manifest")
        files.append(InputFile(signed.name, data))
    return manifest, files


def device_os_files(
    update: DesiredUpdate, read_blob: Callable[[str], bytes], info: DeviceInfo, platform_id: int
) -> list[InputFile]:
    """The Device OS modules to send before the release, skipping what the device has.

    They are not in the signed manifest (Particle's modules, not the fleet's): each is
    checked against its SHA-256 in the sync answer and must be a bootloader or system part
    of the device's platform with an intact CRC-32.

    Raises:
        TrustError: a module that is anything else.
    """
    files = []
    for part in update.device_os_parts:
        data = read_blob(part.sha256)
        if hashlib.sha256(data).hexdigest() != part.sha256:
            raise TrustError(f"Device OS module {part.name!r} does not match its SHA-256")
        try:
            module = parse_module(data)
        except ImageError as exc:
            raise TrustError(f"Device OS module {part.name!r}: {exc}") from None
        if module.function not in (ModuleFunction.BOOTLOADER, ModuleFunction.SYSTEM_PART):
            raise TrustError(f"{part.name!r} is not a bootloader or system part")
        if module.prefix.platform_id != platform_id or not module.crc_ok:
            raise TrustError(f"{part.name!r} is not an intact module for platform {platform_id}")
        have = info.module(module.function, module.prefix.index)
        if have is None or have.version < module.prefix.module_version:
            files.append(InputFile(part.name, data))
    return files


def running_app_sha256(info: DeviceInfo) -> str | None:
    """The SHA-256 of the application the device reports (hex), if any."""
    app = next((x for x in info.modules if x.function == ModuleFunction.USER_PART), None)
    return None if app is None or app.hash is None else app.hash.hex()


def device_os_number(info: DeviceInfo) -> int | None:
    """The Device OS version as a number (system part 1's module version), if reported."""
    part = info.module(ModuleFunction.SYSTEM_PART, 1)
    return None if part is None else part.version


@dataclass(frozen=True)
class StockState:
    """What a sighting report carries for a stock device (from its module info)."""

    device_os_version: int | None
    app_sha256: str | None

    @classmethod
    def of(cls, info: DeviceInfo) -> StockState:
        """Read it from :func:`~bluemule.particle_ctrl.client.device_info`'s answer."""
        return cls(device_os_number(info), running_app_sha256(info))

    def to_json(self) -> dict[str, Any]:
        """The report's ``state`` (only what is known)."""
        out: dict[str, Any] = {}
        if self.device_os_version is not None:
            out["device_os_version"] = self.device_os_version
        if self.app_sha256 is not None:
            out["app_sha256"] = self.app_sha256
        return out

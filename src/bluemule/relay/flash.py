"""Flash one file (a bundle or an application ``.bin``) onto one device.

The development flow behind ``bluemule flash``: read the device's STATUS, sign a
manifest for it with the local key (release counter one above the device's unless
given), and push it. The fleet server signs manifests in production; the device
checks them the same way.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from bluemule.image import (
    ImageError,
    ModuleFunction,
    check_bundle,
    looks_like_zip,
    parse_module,
    read_bundle,
)
from bluemule.image.constants import function_label
from bluemule.protocol.constants import STATUS_UUID, Capability
from bluemule.protocol.manifest import SigningKey
from bluemule.protocol.messages import DeviceStatus, decode_status
from bluemule.protocol.release import Release, build_release
from bluemule.relay.update import ProgressCallback, UpdatePolicy, UpdateReport, push_update
from bluemule.transport.base import Connector, TransportError


@dataclass(frozen=True)
class FirmwareFile:
    """An application and its raw assets, from a bundle or a bare ``.bin``."""

    app: bytes
    assets: tuple[tuple[str, bytes], ...]


def load_firmware(data: bytes) -> FirmwareFile:
    """Read a bundle (checked: declared assets present with matching hashes) or a module."""
    if looks_like_zip(data):
        checked = check_bundle(read_bundle(data))
        if not checked.ok:
            raise ImageError("bundle is inconsistent: " + "; ".join(checked.problems))
        return FirmwareFile(checked.bundle.app, tuple(sorted(checked.bundle.assets.items())))
    module = parse_module(data)
    if module.function != ModuleFunction.USER_PART:
        raise ImageError(
            f"a {function_label(module.function)} module is not an application; "
            "Device OS and bootloader updates go through `bluemule particle flash`"
        )
    if not module.crc_ok:
        raise ImageError("application CRC-32 does not match its content")
    return FirmwareFile(data, ())


@dataclass(frozen=True)
class FlashReport:
    """What happened, for one device."""

    update: UpdateReport
    status: DeviceStatus
    release: Release


async def read_status(connect: Connector) -> DeviceStatus:
    """Connect once and read STATUS."""
    link = await connect()
    try:
        return decode_status(await link.read(STATUS_UUID))
    finally:
        with contextlib.suppress(TransportError, OSError):
            await link.disconnect()


async def flash_firmware(
    connect: Connector,
    firmware: FirmwareFile,
    key: SigningKey,
    *,
    release_counter: int | None = None,
    compress: bool = True,
    allow_downgrade: bool = False,
    policy: UpdatePolicy | None = None,
    on_progress: ProgressCallback | None = None,
) -> FlashReport:
    """Sign ``firmware`` for the device ``connect`` reaches and install it."""
    status = await read_status(connect)
    counter = status.release_counter + 1 if release_counter is None else release_counter
    release = build_release(
        key=key,
        device_id=status.device_id,
        app=firmware.app,
        assets=firmware.assets,
        release_counter=counter,
        compress=compress and bool(status.capabilities & Capability.COMPRESSED_MODULES),
        allow_downgrade=allow_downgrade,
    )
    report = await push_update(connect, release, policy=policy, on_progress=on_progress)
    return FlashReport(report, status, release)

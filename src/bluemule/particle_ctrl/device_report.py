"""What a stock device reports about itself: its modules, assets, mode and capabilities.

Pure data built from decoded control replies (GET_MODULE_INFO, GET_ASSET_INFO …), with
:meth:`DeviceInfo.state` for the planner and ``to_json`` for ``bluemule particle info``.
:func:`~bluemule.particle_ctrl.client.device_info` does the requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from bluemule.image import Dependency, ModuleFunction
from bluemule.particle_ctrl import messages as m
from bluemule.particle_ctrl.plan import DeviceAsset, DeviceModule, DeviceState

_LEGACY_FUNCTIONS: Final = {
    m.LegacyModuleType.BOOTLOADER: ModuleFunction.BOOTLOADER,
    m.LegacyModuleType.SYSTEM_PART: ModuleFunction.SYSTEM_PART,
    m.LegacyModuleType.USER_PART: ModuleFunction.USER_PART,
    m.LegacyModuleType.MONO_FIRMWARE: ModuleFunction.MONO_FIRMWARE,
    m.LegacyModuleType.NCP_FIRMWARE: ModuleFunction.NCP_FIRMWARE,
    m.LegacyModuleType.RADIO_STACK: ModuleFunction.RADIO_STACK,
}


@dataclass(frozen=True)
class ModuleReport:
    """One installed module as the device reports it."""

    function: int
    index: int
    version: int
    size: int = 0
    hash: bytes | None = None
    valid: bool = True
    dependencies: tuple[Dependency, ...] = ()
    asset_dependencies: tuple[m.AssetInfo, ...] = ()

    def dependency(self, position: int) -> Dependency:
        """The first (0) or second (1) dependency, or none."""
        return self.dependencies[position] if position < len(self.dependencies) else Dependency()

    @property
    def kind(self) -> str:
        """``system_part``, ``user_part`` …"""
        try:
            return ModuleFunction(self.function).label
        except ValueError:
            return f"unknown_{self.function}"

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "kind": self.kind,
            "index": self.index,
            "version": self.version,
            "size": self.size,
            "sha256": None if self.hash is None else self.hash.hex(),
            "valid": self.valid,
            "dependencies": [
                {"kind": ModuleFunction(d.function).label, "index": d.index, "version": d.version}
                for d in self.dependencies
                if d.function in tuple(ModuleFunction)
            ],
        }


@dataclass(frozen=True)
class DeviceInfo:
    """What :func:`~bluemule.particle_ctrl.client.device_info` read."""

    device_id: str | None
    device_os: str | None
    """Device OS version string (request 30)."""
    modules: tuple[ModuleReport, ...] = ()
    available_assets: tuple[m.AssetInfo, ...] = ()
    required_assets: tuple[m.AssetInfo, ...] = ()
    listening: bool | None = None
    capabilities: int | None = None
    protected: bool = False
    """The device answered SYSTEM_ERROR_PROTECTED (Device Protection)."""

    @property
    def compressed_ota(self) -> bool:
        """Capability COMPRESSED_OTA (assumed when the device does not say)."""
        return self.capabilities is None or bool(
            self.capabilities & m.SystemCapabilityFlag.COMPRESSED_OTA
        )

    def module(self, function: int, index: int) -> ModuleReport | None:
        """The installed module (function, index), if reported."""
        return next((x for x in self.modules if (x.function, x.index) == (function, index)), None)

    def has_asset(self, name: str, digest: bytes) -> bool:
        """An available asset with this name and SHA-256."""
        return any(a.name == name and a.hash == digest for a in self.available_assets)

    def state(self, platform_id: int) -> DeviceState:
        """What :func:`~bluemule.particle_ctrl.plan.make_plan` needs."""
        return DeviceState(
            platform_id=platform_id,
            modules=tuple(
                DeviceModule(
                    x.function,
                    x.index,
                    x.version,
                    dependency=x.dependency(0),
                    dependency2=x.dependency(1),
                    hash=x.hash or b"",
                    valid=x.valid,
                )
                for x in self.modules
            ),
            assets=tuple(DeviceAsset(a.name, a.hash) for a in self.available_assets),
            required_assets=tuple(DeviceAsset(a.name, a.hash) for a in self.required_assets),
            compressed_ota=self.compressed_ota,
            protected=self.protected,
        )

    def to_json(self) -> dict[str, Any]:
        """JSON form (``bluemule particle info --json``)."""
        return {
            "device_id": self.device_id,
            "device_os": self.device_os,
            "protected": self.protected,
            "mode": None
            if self.listening is None
            else ("listening" if self.listening else "normal"),
            "capabilities": {
                "flags": self.capabilities,
                "compressed_ota": self.compressed_ota,
            },
            "modules": [x.to_json() for x in self.modules],
            "assets": {
                "available": [_asset_json(a) for a in self.available_assets],
                "required": [_asset_json(a) for a in self.required_assets],
            },
        }


def _asset_json(a: m.AssetInfo) -> dict[str, Any]:
    return {"name": a.name, "sha256": a.hash.hex(), "size": a.size, "storage_size": a.storage_size}


def _legacy_function(legacy_type: int) -> int:
    """``particle.ctrl.FirmwareModuleType`` → ``module_function_t`` (0 when unknown)."""
    try:
        return int(_LEGACY_FUNCTIONS.get(m.LegacyModuleType(legacy_type), 0))
    except ValueError:
        return 0


def _deps(deps: tuple[m.ModuleDependency, ...], legacy: bool) -> tuple[Dependency, ...]:
    return tuple(
        Dependency(_legacy_function(d.type) if legacy else d.type, d.index, d.version) for d in deps
    )


def modules_from_reply(reply: m.GetModuleInfoReply) -> tuple[ModuleReport, ...]:
    """The modules of a GET_MODULE_INFO reply (new or legacy form) as reports."""
    if reply.modules or not reply.legacy_modules:
        return tuple(
            ModuleReport(
                x.type,
                x.index,
                x.version,
                x.size,
                x.hash,
                x.failed_flags == 0,
                _deps(x.dependencies, legacy=False),
                x.asset_dependencies,
            )
            for x in reply.modules
        )
    return tuple(
        ModuleReport(
            _legacy_function(x.type),
            x.index,
            x.version,
            x.size,
            None,
            x.validity == 0,
            _deps(x.dependencies, legacy=True),
        )
        for x in reply.legacy_modules
    )

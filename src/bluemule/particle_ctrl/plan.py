"""Which modules to send to a stock device over the control channel, and in what order (pure).

Given the files to flash (Particle modules, combined modules, application + asset bundles)
and what the device reports (request 90 GET_MODULE_INFO, 91 GET_ASSET_INFO, 32
capabilities), :func:`make_plan` returns the steps the way particle-cli's
``src/lib/flash-helper.js`` orders them (``shared/reference/particle.md`` §3.7): bootloader,
then the modules that live in internal flash ordered by their dependencies (radio stack,
system parts, application), then the assets; assets the device already has (same name and
hash) are skipped. Every module is one firmware-update session (START → DATA… → FINISH)
and Device OS resets after each FINISH unless the running application disabled resets
(§3.7, §4.2); a staged module (anything but an asset) needs that reboot before the next
session, because starting an update clears staged DCT slots (§3.1).

Anything that cannot work is refused up front with a :class:`PlanError` subclass naming
the reason, before a byte is sent: a file that is not a module, a bad CRC, the wrong
platform, a dependency neither the device nor the set satisfies (including the
application's Device OS dependency, which Device OS does not check at OTA time but at
boot, §1.2), a module or asset too large, a compressed module the platform or module kind
cannot take (§1.10), NCP firmware, a protected device (§1.12: firmware-update requests
are refused over BLE) and a protected bootloader before Device OS 6.1.1.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Final

from bluemule.image import (
    Bundle,
    Dependency,
    ImageError,
    Module,
    ModuleFunction,
    Platform,
    SecurityMode,
    SecurityModeExtension,
    check_bundle,
    create_asset_module,
    decompress_module,
    looks_like_zip,
    parse_combined,
    parse_module,
    platform_by_id,
    read_bundle,
    read_compressed_header,
    split_combined,
)
from bluemule.particle_ctrl.errors import ParticleCtrlError

PROTECTED_MIN_DEVICE_OS: Final = 6101
"""particle-cli refuses protected modules before Device OS 6.1.1 (``flash-helper.js``; §1.12)."""
_COMPRESSIBLE: Final = frozenset(
    {ModuleFunction.USER_PART, ModuleFunction.SYSTEM_PART, ModuleFunction.ASSET}
)
_ORDER: Final = {
    ModuleFunction.BOOTLOADER: 0,
    ModuleFunction.RADIO_STACK: 1,
    ModuleFunction.SYSTEM_PART: 2,
    ModuleFunction.USER_PART: 3,
    ModuleFunction.ASSET: 4,
}


# -- errors -------------------------------------------------------------------------------------


class PlanError(ParticleCtrlError):
    """The files cannot be flashed to this device; nothing was sent.

    ``reason`` is a stable snake-case name for scripts (``--json``).
    """

    reason = "plan_refused"


class BadFileError(PlanError, ValueError):
    """A file is not a Particle module or bundle, or is damaged (bad CRC, bad bundle)."""

    reason = "bad_file"


class WrongPlatformError(PlanError):
    """A module is built for another platform than the device's."""

    reason = "wrong_platform"


class UnsupportedModuleError(PlanError):
    """A module kind that cannot be installed this way (NCP firmware, two applications…)."""

    reason = "unsupported_module"


class DependencyError(PlanError):
    """A module's dependency is satisfied neither by the device nor by the files."""

    reason = "dependency_not_met"


class TooLargeError(PlanError):
    """A module or asset exceeds what the platform can take."""

    reason = "too_large"


class CompressionError(PlanError):
    """A compressed module the platform or the module kind does not support (§1.10)."""

    reason = "compression_not_supported"


class ProtectedDeviceError(PlanError):
    """Device Protection: firmware-update requests are refused, or the protection rules
    for bootloaders are not met (§1.12, §3.5)."""

    reason = "protected_device"


# -- what the device reports ----------------------------------------------------------------


@dataclass(frozen=True)
class DeviceModule:
    """One module of GET_MODULE_INFO (the fields planning needs)."""

    function: int
    index: int
    version: int
    dependency: Dependency = field(default_factory=Dependency)
    dependency2: Dependency = field(default_factory=Dependency)
    hash: bytes = b""
    """SHA-256 the device reports (the module's suffix SHA-256, §1.8); may be empty."""
    valid: bool = True


@dataclass(frozen=True)
class DeviceAsset:
    """An available asset of GET_ASSET_INFO: name and SHA-256 of its raw bytes."""

    name: str
    hash: bytes


@dataclass(frozen=True)
class DeviceState:
    """What the device reported before the update."""

    platform_id: int
    modules: tuple[DeviceModule, ...]
    assets: tuple[DeviceAsset, ...] = ()
    """Available assets."""
    required_assets: tuple[DeviceAsset, ...] = ()
    """Assets the installed application requires."""
    compressed_ota: bool = True
    """Capability flag COMPRESSED_OTA (request 32)."""
    protected: bool = False
    """Device Protection is on (the device answered SYSTEM_ERROR_PROTECTED)."""
    resets_disabled: bool = False
    """The running application called ``System.disableReset()``: FINISH does not reset."""

    @property
    def device_os_version(self) -> int | None:
        """Version of system part 1, if reported."""
        return _version_of(self.modules, ModuleFunction.SYSTEM_PART, 1)


def _version_of(modules: Iterable[DeviceModule], function: int, index: int) -> int | None:
    return next((m.version for m in modules if (m.function, m.index) == (function, index)), None)


# -- the plan ---------------------------------------------------------------------------------


class ResetAfter(enum.Enum):
    """What happens after a step's FINISH."""

    DEVICE = "device"
    """Device OS resets by itself (the default: every applied FINISH schedules a reset)."""
    REQUEST = "request"
    """Resets are disabled: send request 40 RESET to apply the staged module."""
    NONE = "none"
    """Resets are disabled and nothing is staged (an asset): go on in the same session."""


@dataclass(frozen=True)
class Step:
    """One firmware-update session: send ``data``, then what the device must report."""

    name: str
    """Where it came from: a file name, ``bundle.zip:app.bin``, ``bundle.zip:assets/x``."""
    function: int
    index: int
    version: int
    data: bytes = field(repr=False)
    """The module exactly as sent (START's size is ``len(data)``)."""
    sha256: bytes
    """The module's suffix SHA-256, which GET_MODULE_INFO reports for it (§1.8)."""
    reset: ResetAfter
    asset_name: str | None = None
    asset_hash: bytes | None = None
    """SHA-256 of the raw asset, which GET_ASSET_INFO reports."""

    @property
    def kind(self) -> str:
        """``bootloader``, ``system_part``, ``user_part``, ``asset`` …"""
        return ModuleFunction(self.function).label

    @property
    def size(self) -> int:
        """Bytes sent."""
        return len(self.data)

    @property
    def staged(self) -> bool:
        """Installed by the bootloader at the next boot (everything but an asset)."""
        return self.function != ModuleFunction.ASSET

    def describe(self) -> dict[str, object]:
        """JSON-ready summary (no module bytes)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "index": self.index,
            "version": self.version,
            "size": self.size,
            "sha256": self.sha256.hex(),
            "reset": self.reset.value,
            **({"asset": self.asset_name} if self.asset_name is not None else {}),
        }


@dataclass(frozen=True)
class SkippedAsset:
    """An asset the device already has (same name and hash)."""

    name: str
    hash: bytes


@dataclass(frozen=True)
class Plan:
    """The ordered steps for one device."""

    platform: Platform
    steps: tuple[Step, ...]
    skipped: tuple[SkippedAsset, ...] = ()

    @property
    def total_bytes(self) -> int:
        """Bytes of every module sent."""
        return sum(s.size for s in self.steps)

    @property
    def resets(self) -> int:
        """Reboots the plan costs."""
        return sum(s.reset is not ResetAfter.NONE for s in self.steps)


@dataclass(frozen=True)
class InputFile:
    """A file to flash: its name (for messages) and bytes."""

    name: str
    data: bytes = field(repr=False)


# -- reading the files ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Candidate:
    name: str
    module: Module


def _modules_of(file: InputFile) -> list[_Candidate]:
    """Every module a file holds: a bundle's app and asset modules, a combined file's parts."""
    if looks_like_zip(file.data):
        try:
            bundle = read_bundle(file.data)
            problems = check_bundle(bundle).problems
        except ImageError as exc:
            raise BadFileError(f"{file.name}: {exc}") from None
        if problems:
            raise BadFileError(f"{file.name}: {problems[0]}")
        return _bundle_modules(file.name, bundle)
    try:
        parts = parse_combined(file.data)
        if len(parts) > 1:
            return [
                _Candidate(f"{file.name}#{i + 1}", parse_module(p))
                for i, p in enumerate(split_combined(file.data))
            ]
        return [_Candidate(file.name, parse_module(file.data))]
    except ImageError as exc:
        raise BadFileError(f"{file.name}: {exc}") from None


def _bundle_modules(name: str, bundle: Bundle) -> list[_Candidate]:
    out = [_Candidate(f"{name}:{bundle.app_name}", parse_module(bundle.app))]
    for asset, content in sorted(bundle.assets.items()):
        try:
            module = parse_module(create_asset_module(content, asset))
        except ImageError as exc:
            raise BadFileError(f"{name}: asset {asset!r}: {exc}") from None
        out.append(_Candidate(f"{name}:assets/{asset}", module))
    return out


# -- checks -----------------------------------------------------------------------------------


def _check_module(c: _Candidate, platform: Platform, device: DeviceState) -> None:
    m = c.module
    if not m.crc_ok:
        raise BadFileError(f"{c.name}: CRC-32 does not match its content")
    try:
        function = ModuleFunction(m.function)
    except ValueError:
        raise UnsupportedModuleError(f"{c.name}: unknown module function {m.function}") from None
    if function not in _ORDER:
        raise UnsupportedModuleError(
            f"{c.name}: {function.label} modules cannot be installed over the control channel"
        )
    if function != ModuleFunction.ASSET and m.prefix.platform_id != platform.id:
        other = platform_by_id(m.prefix.platform_id)
        built = other.display_name if other else f"platform {m.prefix.platform_id}"
        raise WrongPlatformError(
            f"{c.name} is built for {built}; the device is {platform.display_name}"
        )
    _check_compression(c, platform, device)
    _check_size(c, platform)


def _check_compression(c: _Candidate, platform: Platform, device: DeviceState) -> None:
    m = c.module
    if not m.is_compressed:
        return
    if not (platform.supports_compressed_ota and device.compressed_ota):
        raise CompressionError(f"{c.name} is compressed; the device cannot inflate modules")
    if m.function not in _COMPRESSIBLE or m.prefix_offset > 0:
        raise CompressionError(
            f"{c.name}: Device OS inflates only application, system part and asset modules "
            "that start with their prefix"
        )


def _check_size(c: _Candidate, platform: Platform) -> None:
    size = len(c.module.data)
    if platform.ota_region_size is not None and size > platform.ota_region_size:
        raise TooLargeError(
            f"{c.name} is {size} B; the OTA region holds {platform.ota_region_size} B"
        )
    if c.module.function == ModuleFunction.USER_PART and c.module.is_compressed:
        try:
            size = read_compressed_header(c.module).original_size
        except ImageError as exc:
            raise BadFileError(f"{c.name}: {exc}") from None
    if (
        c.module.function == ModuleFunction.USER_PART
        and platform.max_app_size is not None
        and size > platform.max_app_size
    ):
        raise TooLargeError(
            f"{c.name} is {size} B; {platform.display_name} allows {platform.max_app_size}"
        )
    if c.module.is_asset:
        limits = platform.assets
        if limits is None:
            raise TooLargeError(f"{platform.display_name} has no asset storage")
        if size > limits.max_single_asset_size:
            raise TooLargeError(
                f"{c.name} is {size} B as a module; {platform.display_name} allows "
                f"{limits.max_single_asset_size} B per asset"
            )


def _is_protected_bootloader(m: Module) -> bool:
    return m.function == ModuleFunction.BOOTLOADER and any(
        isinstance(e, SecurityModeExtension) and e.mode == SecurityMode.PROTECTED
        for e in m.extensions
    )


# -- ordering and dependencies --------------------------------------------------------------


def _satisfied(dep: Dependency, state: dict[tuple[int, int], int]) -> bool:
    return dep.is_none or state.get((dep.function, dep.index), -1) >= dep.version


def _describe_dep(dep: Dependency) -> str:
    return f"{ModuleFunction(dep.function).label} {dep.index} >= {dep.version}"


def _order(cands: list[_Candidate]) -> list[_Candidate]:
    """Kind order first (bootloader, radio stack, system parts, application), then a stable
    topological order so a module follows any module of the set it depends on."""
    todo = sorted(cands, key=lambda c: (_ORDER[ModuleFunction(c.module.function)], c.name))
    done: list[_Candidate] = []
    while todo:
        for i, c in enumerate(todo):
            needs = [c.module.prefix.dependency, c.module.prefix.dependency2]
            waiting = any(
                (o.module.function, o.module.prefix.index) == (d.function, d.index)
                and o.module.prefix.module_version >= d.version
                for d in needs
                if not d.is_none
                for o in todo
                if o is not c
            )
            if not waiting:
                done.append(todo.pop(i))
                break
        else:  # a cycle: keep the kind order
            done.extend(todo)
            todo = []
    return done


def _check_dependencies(ordered: Sequence[_Candidate], device: DeviceState) -> None:
    """Walk the plan, installing each module into a copy of the device's module table."""
    state = {(m.function, m.index): m.version for m in device.modules}
    deps = {(m.function, m.index): (m.dependency, m.dependency2) for m in device.modules}
    for c in ordered:
        if c.module.is_asset:
            continue
        p = c.module.prefix
        for dep in (p.dependency, p.dependency2):
            if not _satisfied(dep, state):
                have = state.get((dep.function, dep.index))
                found = "none" if have is None else str(have)
                raise DependencyError(
                    f"{c.name} needs {_describe_dep(dep)}; the device has {found} and no "
                    "file provides it"
                )
        state[(p.function, p.index)] = p.module_version
        deps[(p.function, p.index)] = (p.dependency, p.dependency2)
    for (function, index), (d1, d2) in deps.items():  # nothing left behind broken
        for dep in (d1, d2):
            if not _satisfied(dep, state):
                raise DependencyError(
                    f"after the update the installed {ModuleFunction(function).label} {index} "
                    f"would need {_describe_dep(dep)}, which the files downgrade"
                )


def _check_asset_space(assets: Sequence[_Candidate], platform: Platform) -> None:
    limits = platform.assets
    if limits is None or not assets:
        return
    total = sum(limits.storage_size(len(c.module.data)) for c in assets)
    if total > limits.total_size:
        raise TooLargeError(
            f"the assets need {total} B of storage; {platform.display_name} has "
            f"{limits.total_size} B"
        )


# -- the planner ------------------------------------------------------------------------------


def make_plan(files: Sequence[InputFile], device: DeviceState) -> Plan:
    """Order ``files`` for ``device``, or refuse with a :class:`PlanError`.

    Raises:
        BadFileError, WrongPlatformError, UnsupportedModuleError, DependencyError,
        TooLargeError, CompressionError, ProtectedDeviceError.
    """
    platform = platform_by_id(device.platform_id)
    if platform is None:
        raise WrongPlatformError(f"the device reports unknown platform {device.platform_id}")
    if not files:
        raise BadFileError("no files to flash")
    cands = [c for f in files for c in _modules_of(f)]
    for c in cands:
        _check_module(c, platform, device)
    if device.protected:
        raise ProtectedDeviceError(
            "the device is protected (Device Protection): Device OS answers firmware-update "
            "requests over BLE with SYSTEM_ERROR_PROTECTED"
        )
    modules = [c for c in cands if not c.module.is_asset]
    apps = [c for c in modules if c.module.function == ModuleFunction.USER_PART]
    if len(apps) > 1:
        raise UnsupportedModuleError(f"two applications: {apps[0].name} and {apps[1].name}")
    seen: dict[tuple[int, int], str] = {}
    for c in modules:
        key = (c.module.function, c.module.prefix.index)
        if key in seen:
            raise UnsupportedModuleError(f"{seen[key]} and {c.name} are the same module slot")
        seen[key] = c.name
    ordered = _order(modules)
    _check_dependencies(ordered, device)
    final_os = max(
        [device.device_os_version or 0]
        + [
            c.module.prefix.module_version
            for c in modules
            if c.module.function == ModuleFunction.SYSTEM_PART
        ]
    )
    for c in modules:
        if _is_protected_bootloader(c.module) and final_os < PROTECTED_MIN_DEVICE_OS:
            raise ProtectedDeviceError(
                f"{c.name} is a protected bootloader; it needs Device OS >= 6.1.1"
            )
    assets, skipped = _assets_to_send(cands, device, apps[0].module if apps else None)
    _check_asset_space(assets, platform)
    steps = [_step(c, device) for c in (*ordered, *assets)]
    if device.resets_disabled and steps and steps[-1].reset is ResetAfter.NONE:
        steps[-1] = replace(steps[-1], reset=ResetAfter.REQUEST)
    return Plan(platform, tuple(steps), tuple(skipped))


def _assets_to_send(
    cands: Sequence[_Candidate], device: DeviceState, app: Module | None
) -> tuple[list[_Candidate], list[SkippedAsset]]:
    have = {(a.name, a.hash) for a in device.assets}
    send: list[_Candidate] = []
    skipped: list[SkippedAsset] = []
    names: dict[str, str] = {}
    for c in cands:
        if not c.module.is_asset:
            continue
        name, digest = c.module.asset_name, c.module.asset_hash
        if name is None or digest is None:
            raise BadFileError(f"{c.name}: an asset module without NAME and HASH extensions")
        if name in names:
            raise UnsupportedModuleError(f"{names[name]} and {c.name} are both asset {name!r}")
        names[name] = c.name
        if (name, digest) in have:
            skipped.append(SkippedAsset(name, digest))
        else:
            send.append(c)
    declared = (
        {(d.name, d.hash) for d in app.asset_dependencies}
        if app is not None
        else {(a.name, a.hash) for a in device.required_assets}
    )
    if app is not None or device.required_assets:
        for c in send:
            if (c.module.asset_name, c.module.asset_hash) not in declared:
                raise UnsupportedModuleError(
                    f"{c.name}: the application does not require asset "
                    f"{c.module.asset_name!r}; Device OS would delete it at the next store"
                )
    return send, skipped


def _installed_sha256(m: Module) -> bytes:
    """The suffix SHA-256 the device reports once ``m`` is installed: a compressed module's
    is its decompressed original's (the bootloader inflates it, §1.8). Assets are checked by
    their content hash (GET_ASSET_INFO), so theirs stays the module's own."""
    if not m.is_compressed or m.is_asset:
        return m.suffix.sha256
    try:
        return parse_module(decompress_module(m)).suffix.sha256
    except ImageError as exc:
        raise CompressionError(f"the compressed module does not inflate: {exc}") from None


def _step(c: _Candidate, device: DeviceState) -> Step:
    m = c.module
    if not device.resets_disabled:
        reset = ResetAfter.DEVICE
    else:
        reset = ResetAfter.NONE if m.is_asset else ResetAfter.REQUEST
    return Step(
        name=c.name,
        function=m.function,
        index=m.prefix.index,
        version=m.prefix.module_version,
        data=m.data,
        sha256=_installed_sha256(m),
        reset=reset,
        asset_name=m.asset_name if m.is_asset else None,
        asset_hash=m.asset_hash if m.is_asset else None,
    )


__all__ = [
    "PROTECTED_MIN_DEVICE_OS",
    "BadFileError",
    "CompressionError",
    "DependencyError",
    "DeviceAsset",
    "DeviceModule",
    "DeviceState",
    "InputFile",
    "Plan",
    "PlanError",
    "ProtectedDeviceError",
    "ResetAfter",
    "SkippedAsset",
    "Step",
    "TooLargeError",
    "UnsupportedModuleError",
    "WrongPlatformError",
    "make_plan",
]

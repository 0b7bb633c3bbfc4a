"""An emulated Particle device: hardware and Device OS, persisted in a state directory.

State directory::

    device.json    identity and the installed system modules (system part 1 as a record:
                   function 4, index 1, version = Device OS version; bootloader; radio stack;
                   record and checks: :mod:`.device_config`)
    control.json   mobile secret and control-channel settings (:mod:`.setup`)
    ram.json       volatile Device OS state, so another process can continue the same power
                   cycle (mode, open update, pending reset, assets seen at boot, listening)
    flash/         ota.bin and user.bin: the OTA region and user-part window, byte for byte,
                   plus the power-off marker
    lfs/           main LittleFS: sys/dct.bin (DCT module slots), bluemule/<key> (key-value)
    assets/        asset LittleFS: one file per asset module (assets.corrupt: Boron overlap)

Boot (:meth:`EmulatedDevice.power_on`, :meth:`EmulatedDevice.reset`) runs the bootloader
(§3.3) and then the system's checks (§2.3, §3.4): the asset storage is mounted (formatted
if the OTA tail clobbered it) and invalid asset files are deleted; the application is
"normal" only if its CRC is valid, its dependencies are met by the installed system part
and every ASSET_DEPENDENCY is present (same name and hash) — otherwise the device is in
safe mode and the application does not run. References are to
``shared/reference/particle.md``. One process at a time may use a state directory.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Final, NamedTuple

from bluemule.emulator.apps import LIBRARY_MARKER, make_app
from bluemule.emulator.bootloader import Bootloader, find_user_part, user_part_valid
from bluemule.emulator.dct import DCT_FILE, ERASED_DCT, Dct, ModuleSlot
from bluemule.emulator.device_config import (
    CONFIG_FILE,
    DEFAULT_BOOTLOADER_VERSION,
    DEFAULT_DEVICE_OS,
    DeviceConfig,
    check_app,
    check_device_id,
    system_modules,
)
from bluemule.emulator.deviceos import DeviceOs, OtaSession, Ram, UpdateResult
from bluemule.emulator.errors import StateDirError, UsageError
from bluemule.emulator.events import PublishedEvent, events_json, publish_event
from bluemule.emulator.flash import Flash
from bluemule.emulator.layout import Area, FlashDevice, FlashLayout, layout_for
from bluemule.emulator.setup import new_settings, save_settings
from bluemule.emulator.storage import (
    AssetStorage,
    FileStore,
    StoredAsset,
    atomic_write,
    raw_asset_sha256,
)
from bluemule.emulator.validation import InstalledModule
from bluemule.image import (
    AssetDependencyExtension,
    HashType,
    ImageError,
    Module,
    ModuleFunction,
    Platform,
    create_asset_module,
)

RAM_FILE: Final = "ram.json"
KV_PREFIX: Final = "bluemule"
_KV_KEY: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class InstalledAsset(NamedTuple):
    """An asset in the asset file system."""

    module: Module
    """The asset module as stored (usually compressed)."""
    sha256: bytes
    """SHA-256 of the raw asset content."""


def _regions(layout: FlashLayout) -> dict[str, Area]:
    return {"ota": layout.ota, "user": layout.user_window}


class EmulatedDevice:
    """A Particle device emulated at the level of Device OS and its flash.

    Use :meth:`create` or :meth:`open`. Every method needs the device to be on
    (:class:`~bluemule.emulator.errors.PoweredOff` otherwise); flash operations can be
    torn by :attr:`flash` fault injection (:class:`~bluemule.emulator.errors.PowerLoss`).
    """

    def __init__(
        self, state_dir: Path, config: DeviceConfig, *, sleep: Callable[[float], None]
    ) -> None:
        layout = layout_for(config.platform)
        if layout is None:
            raise StateDirError(f"{state_dir}: platform {config.platform!r} is not emulated")
        self._dir = state_dir
        self._config = config
        self._layout = layout
        self._flash = Flash(state_dir / "flash", _regions(layout), sleep=sleep)
        self._lfs = FileStore(state_dir / "lfs", self._flash)
        self._dct = Dct(self._lfs)
        self._assets = AssetStorage(state_dir / "assets", self._flash, layout.assets)
        if layout.ota_safe_length is not None:
            self._flash.watch(
                "ota", layout.ota_safe_length, layout.ota.length, self._assets.mark_corrupt
            )
        self._ram = Ram()
        self._load_ram()
        self._os = DeviceOs(
            layout=layout,
            flash=self._flash,
            dct=self._dct,
            assets=self._assets,
            ram=self._ram,
            installed=lambda: list(self._config.modules),
            save_ram=self._save_ram,
        )

    # -- creation --------------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        state_dir: str | Path,
        platform: str = "boron",
        *,
        device_id: str | None = None,
        device_os: int = DEFAULT_DEVICE_OS,
        app: bytes | None = None,
        assets: Mapping[str, bytes] | None = None,
        stock: bool = False,
        bootloader_version: int = DEFAULT_BOOTLOADER_VERSION,
        sleep: Callable[[float], None] = time.sleep,
        mobile_secret: str | None = None,
        protected: bool = False,
    ) -> EmulatedDevice:
        """Manufacture a device in an empty (or new) ``state_dir`` and power it on.

        Args:
            platform: ``boron``, ``bsom``, ``msom`` (alias ``muon``) or ``p2``.
            device_id: 24 hex digits; random when omitted.
            device_os: version of the installed system part 1 (e.g. 6200 = 6.2.0).
            app: user part to install (a compressed one is inflated). None: a generated
                app (:func:`~bluemule.emulator.apps.make_app`) depending on ``device_os``,
                with the bluemule library unless ``stock``, declaring ``assets``.
            assets: raw assets (name → bytes) to install as compressed asset modules. A
                given ``app`` keeps its own asset dependencies.
            stock: generate the app without the bluemule library.
            bootloader_version: module version of the installed bootloader record.
            sleep: see :meth:`Flash.slow`.
            mobile_secret: 15 printable characters (random when omitted), and
            protected: Device Protection; both kept in ``control.json``
                (:mod:`bluemule.emulator.setup`).

        Installing is manufacturing, not measured flash operations.

        Raises:
            UsageError: bad platform, device id, version, app or assets.
            StateDirError: ``state_dir`` exists and is not empty.
        """
        layout = layout_for(platform)
        if layout is None:
            raise UsageError(f"platform {platform!r} is not emulated")
        ident = check_device_id(device_id)
        settings = new_settings(mobile_secret, protected=protected)
        for what, v in (("device_os", device_os), ("bootloader_version", bootloader_version)):
            if not 0 <= v <= 0xFFFF:
                raise UsageError(f"{what} {v} is not a 16-bit module version")
        root = Path(state_dir)
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise StateDirError(f"{root} exists and is not an empty directory")
        try:
            asset_modules = {n: create_asset_module(d, n) for n, d in (assets or {}).items()}
        except ImageError as exc:
            raise UsageError(f"bad asset: {exc}") from None
        limits = layout.assets
        needed = sum(limits.storage_size(len(m)) for m in asset_modules.values())
        if needed > limits.total_size:
            raise UsageError(f"assets need {needed} B of storage, {limits.total_size} B exist")
        if app is None:
            app = make_app(layout.name, device_os=device_os, library=not stock, assets=assets)
        module = check_app(app, layout)

        regions = _regions(layout)
        Flash.format(root / "flash", regions)
        window = layout.user_window
        atomic_write(root / "lfs" / DCT_FILE, ERASED_DCT)
        (root / "assets").mkdir()
        config = DeviceConfig(
            ident, layout.name, system_modules(layout, device_os, bootloader_version)
        )
        atomic_write(root / CONFIG_FILE, json.dumps(config.to_json(), indent=2).encode())
        save_settings(root, settings)
        device = cls(root, config, sleep=sleep)
        device._flash.install("user", module.prefix.start_address - window.start, module.data)
        for name, data in asset_modules.items():
            device._assets.install(name, data)
        device._boot()
        return device

    @classmethod
    def open(
        cls, state_dir: str | Path, *, sleep: Callable[[float], None] = time.sleep
    ) -> EmulatedDevice:
        """Attach to an existing device, in whatever power state and boot it is in.

        Raises:
            StateDirError: not an emulator state directory, or damaged.
        """
        root = Path(state_dir)
        try:
            config = DeviceConfig.from_json(json.loads((root / CONFIG_FILE).read_bytes()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StateDirError(f"{root} is not a usable emulator state directory: {exc}") from None
        return cls(root, config, sleep=sleep)

    # -- volatile state --------------------------------------------------------------------------

    def _load_ram(self) -> None:
        path = self._dir / RAM_FILE
        try:
            loaded = Ram.from_json(json.loads(path.read_bytes())) if path.exists() else Ram()
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StateDirError(f"{path} is damaged: {exc}") from None
        for f in dataclasses.fields(Ram):
            setattr(self._ram, f.name, getattr(loaded, f.name))

    def _save_ram(self) -> None:
        atomic_write(self._dir / RAM_FILE, json.dumps(self._ram.to_json()).encode())

    def _load_config(self) -> None:
        path = self._dir / CONFIG_FILE
        try:
            self._config = DeviceConfig.from_json(json.loads(path.read_bytes()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StateDirError(f"{path} is damaged: {exc}") from None

    def _sync(self) -> None:
        """Power check, then pick up what another object or process changed."""
        self._flash.require_power()
        self._load_ram()
        self._load_config()

    # -- boot ------------------------------------------------------------------------------------

    def _install_record(self, record: InstalledModule) -> None:
        config = self._config.with_module(record)
        data = json.dumps(config.to_json(), indent=2).encode()
        self._flash.commit(
            f"install module {record.function}/{record.index}",
            lambda: atomic_write(self._dir / CONFIG_FILE, data),
        )
        self._config = config

    def _read_internal(self, address: int, length: int) -> bytes | None:
        where = self._flash.locate(FlashDevice.INTERNAL, address, length)
        return None if where is None else self._flash.read(where[0], where[1], length)

    def _boot(self) -> None:
        self._flash.require_power()
        self._load_config()
        blank = Ram()  # everything volatile is gone
        for f in dataclasses.fields(Ram):
            setattr(self._ram, f.name, getattr(blank, f.name))
        self._save_ram()
        Bootloader(self._layout, self._flash, self._dct, self._install_record).run()
        if self._assets.corrupt:
            self._assets.format()  # the mount fails, Device OS formats the storage
        valid, invalid = self._assets.scan()
        for file in invalid:
            self._assets.remove_file(file)
        app = find_user_part(self._read_internal, self._layout)
        required = [(d.name, d.hash) for d in _asset_deps(app)]
        available = [a.key for a in valid]
        normal = (
            app is not None
            and user_part_valid(app, list(self._config.modules))
            and all(r in available for r in required)
        )
        self._ram.mode = "normal" if normal else "safe"
        self._ram.available = available
        self._ram.required = required
        self._save_ram()

    # -- identity --------------------------------------------------------------------------------

    @property
    def state_dir(self) -> Path:
        """Where the device lives."""
        return self._dir

    @property
    def device_id(self) -> str:
        """24 lowercase hex digits."""
        return self._config.device_id

    @property
    def platform(self) -> Platform:
        """The platform (``.id``, ``.name``, limits)."""
        return self._layout.platform

    @property
    def platform_id(self) -> int:
        """``PLATFORM_ID``."""
        return self._layout.platform_id

    @property
    def layout(self) -> FlashLayout:
        """Flash layout: OTA region size, safe length, asset limits, module bounds."""
        return self._layout

    @property
    def flash(self) -> Flash:
        """The flash, for fault injection (``power_loss_at``, ``slow``, ``ops``)."""
        return self._flash

    @property
    def installed_modules(self) -> tuple[InstalledModule, ...]:
        """System part, bootloader (and radio stack) records."""
        self._sync()
        return self._config.modules

    @property
    def device_os_version(self) -> int:
        """Module version of the installed system part 1."""
        self._sync()
        return next(
            m.version
            for m in self._config.modules
            if (m.function, m.index) == (ModuleFunction.SYSTEM_PART, 1)
        )

    # -- state -----------------------------------------------------------------------------------

    @property
    def powered(self) -> bool:
        """Whether the device is on."""
        return self._flash.powered

    @property
    def mode(self) -> str:
        """``"normal"`` or ``"safe"``, decided at boot: ``safe`` when the app is missing,
        invalid, or lacks its Device OS or its assets (§2.3, §3.4)."""
        self._sync()
        return self._ram.mode

    @property
    def listening(self) -> bool:
        """Listening mode (volatile: a reset leaves it; §5.2)."""
        self._sync()
        return self._ram.listening

    def set_listening(self, on: bool) -> None:
        """Enter or leave listening mode (MODE button, ``Particle.listen()``, 70/71)."""
        self._sync()
        self._ram.listening = on
        self._save_ram()

    @property
    def reset_pending(self) -> bool:
        """Device OS has scheduled a reset (after an applied update) that has not happened."""
        self._sync()
        return self._ram.reset_pending

    @property
    def update_in_progress(self) -> bool:
        """An update is prepared and neither finished nor cancelled."""
        self._sync()
        return self._os.update_in_progress

    @property
    def installed_app(self) -> Module | None:
        """The application in flash if its CRC is valid (it may still not run: see mode)."""
        self._sync()
        return find_user_part(self._read_internal, self._layout)

    @property
    def running_app(self) -> Module | None:
        """The application that runs: the installed one, unless in safe mode."""
        return self.installed_app if self.mode == "normal" else None

    @property
    def has_bluemule_library(self) -> bool:
        """Whether the running application contains the bluemule library."""
        app = self.running_app
        return app is not None and LIBRARY_MARKER in app.data

    @property
    def required_assets(self) -> list[AssetDependencyExtension]:
        """ASSET_DEPENDENCY extensions of the installed application."""
        return _asset_deps(self.installed_app)

    @property
    def installed_assets(self) -> dict[str, InstalledAsset]:
        """Valid files of the asset storage now (name → module, raw SHA-256)."""
        self._sync()
        valid, _ = self._assets.scan()
        return {a.name: InstalledAsset(a.module, raw_asset_sha256(a.module)) for a in valid}

    @property
    def asset_storage(self) -> AssetStorage:
        """The asset file system (capacity, used bytes, corruption marker)."""
        return self._assets

    def stored_assets(self) -> list[StoredAsset]:
        """Valid asset files with the hash Device OS compares (the HASH extension)."""
        self._sync()
        return self._assets.scan()[0]

    def pending_slots(self) -> list[tuple[int, ModuleSlot]]:
        """DCT slots the bootloader will apply at the next boot."""
        self._sync()
        return [(i, s) for i, s in enumerate(self._dct.slots()) if s.pending]

    # -- power -----------------------------------------------------------------------------------

    def power_on(self) -> None:
        """Restore power and boot (the bootloader redoes an interrupted copy).

        Raises:
            UsageError: the device is already on (use :meth:`reset`).
        """
        if self._flash.powered:
            raise UsageError("the device is already on; use reset()")
        self._flash.power_on()
        self._boot()

    def power_off(self) -> None:
        """Cut power between flash operations."""
        self._flash.power_off()

    def reset(self) -> None:
        """``System.reset()``: volatile state is lost, the device boots."""
        self._flash.require_power()
        self._boot()

    # -- Device OS update API --------------------------------------------------------------------

    def prepare_update(self, size: int) -> OtaSession:
        """``Spark_Prepare_For_Firmware_Update`` (see :meth:`DeviceOs.prepare_update`)."""
        self._sync()
        return self._os.prepare_update(size)

    def save_chunk(self, offset: int, data: bytes) -> None:
        """``Spark_Save_Firmware_Chunk`` (see :meth:`DeviceOs.save_chunk`)."""
        self._sync()
        self._os.save_chunk(offset, data)

    def finish_update(self, *, validate_only: bool = False) -> UpdateResult:
        """``Spark_Finish_Firmware_Update`` (see :meth:`DeviceOs.finish_update`)."""
        self._sync()
        return self._os.finish_update(validate_only=validate_only)

    def cancel_update(self) -> None:
        """``Spark_Finish_Firmware_Update(ERROR)``."""
        self._sync()
        self._os.cancel_update()

    # -- key-value store -------------------------------------------------------------------------

    @staticmethod
    def _kv_name(key: str) -> str:
        if not _KV_KEY.fullmatch(key):
            raise UsageError(f"bad key {key!r}: 1–64 of [A-Za-z0-9_.-], not starting with . - _")
        return f"{KV_PREFIX}/{key}"

    def kv_get(self, key: str) -> bytes | None:
        """The library's stored value for ``key``."""
        self._sync()
        return self._lfs.read(self._kv_name(key))

    def kv_put(self, key: str, value: bytes | None) -> None:
        """Store ``value`` atomically (one flash operation); None deletes the key."""
        self._sync()
        name = self._kv_name(key)
        if value is None:
            self._lfs.remove(name)
        else:
            self._lfs.write(name, bytes(value))

    # -- events ----------------------------------------------------------------------------------

    def publish(
        self,
        name: str,
        data: str | None = None,
        captured_at: datetime | None = None,
        *,
        clock_set: bool = True,
    ) -> PublishedEvent:
        """The app publishes an event with no cloud: it is queued durably for relays
        (:func:`~bluemule.emulator.events.publish_event`; ``captured_at`` defaults to now,
        ``clock_set=False`` records an unknown time)."""
        return publish_event(self, self.device_id, name, data, captured_at, clock_set=clock_set)

    def queued_events(self) -> dict[str, Any]:
        """The event queue as JSON (counters and records)."""
        return events_json(self, self.device_id)

    # -- report ----------------------------------------------------------------------------------

    def show(self) -> dict[str, Any]:
        """The device as the phone would see it (JSON-ready)."""
        app = self.installed_app
        return {
            "device_id": self.device_id,
            "platform_id": self.platform_id,
            "device_os_version": self.device_os_version,
            "mode": self.mode,
            "app": None
            if app is None
            else {
                "module_version": app.prefix.module_version,
                "product_id": app.suffix.product_id,
                "product_version": app.suffix.product_version,
                "sha256": app.suffix.sha256.hex(),
            },
            "assets": [
                {"name": name, "sha256": asset.sha256.hex()}
                for name, asset in sorted(self.installed_assets.items())
            ],
        }


def _asset_deps(app: Module | None) -> list[AssetDependencyExtension]:
    """Required assets Device OS reads (SHA-256 ones only; others are skipped, §2.3)."""
    if app is None:
        return []
    return [d for d in app.asset_dependencies if d.hash_type == HashType.SHA256]

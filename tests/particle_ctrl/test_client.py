"""The client against the emulator's real control service: over the TCP control stream
(in process, the server ``bluemule emulator control-stream`` runs) and over Bumble's
virtual link with the emulated device's GATT control service."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bluemule.emulator import EmulatedDevice
from bluemule.emulator.apps import make_app
from bluemule.emulator.control import DeviceOsControl
from bluemule.emulator.control_link import serve_control_stream
from bluemule.emulator.setup import load_settings, update_settings
from bluemule.image import ModuleFunction, parse_module, write_bundle
from bluemule.particle_ctrl import messages as m
from bluemule.particle_ctrl.client import (
    DeviceUnreachableError,
    FlashEvent,
    NotAppliedError,
    OpenChannel,
    StepDone,
    StepProgress,
    UpdateRefusedError,
    WaitingForDevice,
    check_step,
    device_info,
    flash,
    flash_module,
    stream_opener,
)
from bluemule.particle_ctrl.errors import WrongMobileSecretError
from bluemule.particle_ctrl.plan import (
    DeviceModule,
    DeviceState,
    InputFile,
    ResetAfter,
    make_plan,
)
from bluemule.particle_ctrl.stream import ByteStream, open_tcp_stream
from bluemule.particle_ctrl.targets import open_control_target
from bluemule.transport.monikers import EmulatorTarget
from tests.particle_ctrl.test_plan import FIXTURES, boron_system_part

T = TypeVar("T")
BORON = 13
ASSETS = {"a.txt": b"alpha " * 300, "b.txt": b"bravo " * 200}


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def stock_boron(tmp_path: Path, device_os: int = 6200, **settings: bool) -> EmulatedDevice:
    device = EmulatedDevice.create(tmp_path / "dev", "boron", stock=True, device_os=device_os)
    if settings:
        update_settings(device.state_dir, **settings)
    return device


def secret_of(device: EmulatedDevice) -> bytes:
    return load_settings(device.state_dir).mobile_secret.encode()


@contextlib.asynccontextmanager
async def tcp_service(
    device: EmulatedDevice,
    secret: bytes | None = None,
    control: DeviceOsControl | None = None,
) -> AsyncIterator[tuple[OpenChannel, DeviceOsControl]]:
    control = control or DeviceOsControl(device)
    async with serve_control_stream(control, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        opener = stream_opener(
            lambda: open_tcp_stream("127.0.0.1", port), secret or secret_of(device)
        )
        yield opener, control


def bundle() -> bytes:
    app = make_app("boron", device_os=6300, library=False, assets=ASSETS, tag="new")
    return write_bundle("app.bin", app, sorted(ASSETS.items()))


# -- device_info -----------------------------------------------------------------------------


def test_device_info_reads_what_the_device_has(tmp_path: Path) -> None:
    device = stock_boron(tmp_path)

    async def go() -> None:
        async with tcp_service(device) as (opener, _), opener() as ch:
            info = await device_info(ch)
        assert info.device_id == device.device_id
        assert info.device_os == "6.2.0"
        assert info.protected is False
        assert info.listening is False
        assert info.compressed_ota
        system = info.module(ModuleFunction.SYSTEM_PART, 1)
        assert system is not None and system.version == 6200
        app = device.installed_app
        assert app is not None
        user = info.module(ModuleFunction.USER_PART, app.prefix.index)
        assert user is not None and user.hash == app.suffix.sha256
        state = info.state(BORON)
        assert state.device_os_version == 6200
        doc = info.to_json()
        assert doc["device_os"] == "6.2.0" and doc["mode"] == "normal"
        assert {x["kind"] for x in doc["modules"]} >= {"system_part", "bootloader", "user_part"}

    run(go())


def test_a_protected_device_says_so(tmp_path: Path) -> None:
    device = stock_boron(tmp_path, protected=True)

    async def go() -> None:
        async with tcp_service(device) as (opener, _), opener() as ch:
            info = await device_info(ch)
        assert info.protected is True
        assert info.device_id == device.device_id  # request 20 stays allowed
        assert info.to_json()["protected"] is True

    run(go())


# -- one module ------------------------------------------------------------------------------


def test_flash_module_stages_an_app_and_reports_progress(tmp_path: Path) -> None:
    device = stock_boron(tmp_path)
    app = make_app("boron", library=False, tag="next", body_size=5000)
    seen: list[tuple[int, int]] = []

    async def go() -> None:
        async with tcp_service(device) as (opener, control):
            async with opener() as ch:
                await flash_module(ch, app, lambda s, t: seen.append((s, t)))
            assert control.resets == 1

    run(go())
    assert len(app) == 5068
    assert seen == [(n, len(app)) for n in (1024, 2048, 3072, 4096, 5068)]
    assert device.installed_app is not None
    assert device.installed_app.data == app


def test_a_refusal_names_device_os_error_and_cancels(tmp_path: Path) -> None:
    device = stock_boron(tmp_path)
    argon_app = (FIXTURES / "binaries/argon-tinker-620.bin").read_bytes()
    before = device.installed_app

    async def go() -> None:
        async with tcp_service(device) as (opener, control), opener() as ch:
            with pytest.raises(UpdateRefusedError) as err:
                await flash_module(ch, argon_app, name="argon.bin")
            assert err.value.name == "OTA_INVALID_PLATFORM"
            assert err.value.request == "FINISH_FIRMWARE_UPDATE"
            assert "argon.bin: the device refused FINISH_FIRMWARE_UPDATE" in str(err.value)
            assert not control.transfer_open
            assert ch.is_open  # a refusal does not close the channel
            assert control.resets == 0

    run(go())
    assert before is not None and device.installed_app is not None
    assert device.installed_app.data == before.data
    assert not device.update_in_progress


def test_an_oversize_start_is_refused_by_name(tmp_path: Path) -> None:
    device = stock_boron(tmp_path)

    async def go() -> None:
        async with tcp_service(device) as (opener, _), opener() as ch:
            with pytest.raises(UpdateRefusedError) as err:
                await flash_module(ch, bytes(1_536_001))
            assert (err.value.name, err.value.request) == (
                "OTA_INVALID_SIZE",
                "START_FIRMWARE_UPDATE",
            )

    run(go())


# -- a whole plan -----------------------------------------------------------------------------


def test_flash_installs_device_os_then_the_app_then_its_assets(tmp_path: Path) -> None:
    device = stock_boron(tmp_path)
    files = [InputFile("sp.bin", boron_system_part(6300)), InputFile("b.zip", bundle())]
    events: list[FlashEvent] = []

    async def go() -> None:
        async with tcp_service(device) as (opener, control):
            async with opener() as ch:
                plan = make_plan(files, (await device_info(ch)).state(BORON))
            result = await flash(plan, opener, events.append)
            assert control.resets == 4
        assert [s.outcome for s in result.steps] == ["installed", "installed", "stored", "stored"]
        assert result.resets == 4
        assert result.device is not None and result.device.device_os == "6.3.0"

    run(go())
    shown = device.show()
    assert shown["device_os_version"] == 6300
    assert shown["mode"] == "normal"
    app = parse_module(write_bundle_app())
    assert shown["app"]["sha256"] == app.suffix.sha256.hex()
    assert {a["name"] for a in shown["assets"]} == set(ASSETS)
    assert sum(isinstance(e, WaitingForDevice) for e in events) == 4
    assert [e.result.name for e in events if isinstance(e, StepDone)] == [
        "sp.bin",
        "b.zip:app.bin",
        "b.zip:assets/a.txt",
        "b.zip:assets/b.txt",
    ]
    assert all(e.sent <= e.total for e in events if isinstance(e, StepProgress))


def write_bundle_app() -> bytes:
    return make_app("boron", device_os=6300, library=False, assets=ASSETS, tag="new")


def test_assets_already_present_are_not_sent_again(tmp_path: Path) -> None:
    app = write_bundle_app()
    device = EmulatedDevice.create(
        tmp_path / "dev", "boron", app=app, assets={"a.txt": ASSETS["a.txt"]}, device_os=6300
    )

    async def go() -> None:
        async with tcp_service(device) as (opener, _):
            async with opener() as ch:
                plan = make_plan(
                    [InputFile("b.zip", bundle())], (await device_info(ch)).state(BORON)
                )
            assert [s.asset_name for s in plan.steps] == [None, "b.txt"]
            assert [a.name for a in plan.skipped] == ["a.txt"]
            result = await flash(plan, opener)
            assert result.skipped_assets == ("a.txt",)

    run(go())
    assert {a["name"] for a in device.show()["assets"]} == set(ASSETS)


def test_with_resets_disabled_assets_share_a_session_and_reset_is_requested(tmp_path: Path) -> None:
    device = stock_boron(tmp_path, device_os=6300, resets_disabled=True)

    async def go() -> None:
        async with tcp_service(device) as (opener, control):
            async with opener() as ch:
                state = (await device_info(ch)).state(BORON)
            plan = make_plan([InputFile("b.zip", bundle())], replace(state, resets_disabled=True))
            assert [s.reset for s in plan.steps] == [
                ResetAfter.REQUEST,
                ResetAfter.NONE,
                ResetAfter.REQUEST,
            ]
            result = await flash(plan, opener)
            assert result.resets == 2
            assert control.resets == 2

    run(go())
    assert device.mode == "normal"


def test_a_module_the_bootloader_rejects_is_reported_as_not_applied(tmp_path: Path) -> None:
    """The staged copy in the OTA region is damaged before the reset (a bit flip): the
    bootloader's CRC check fails, the old app stays, and the client notices."""
    device = stock_boron(tmp_path, resets_disabled=True)
    before = device.installed_app
    app = make_app("boron", library=False, tag="flipped")
    plan = make_plan([InputFile("app.bin", app)], _state(device, resets_disabled=True))
    step = plan.steps[0]

    async def go() -> None:
        async with tcp_service(device) as (opener, _):
            async with opener() as ch:
                await flash_module(ch, step.data)
                assert device.pending_slots()
                device.flash.program("ota", 100, b"\x00")  # NOR: bits only go to 0
                await ch.request(m.RequestType.RESET, timeout=10)
            async with opener() as ch:
                info = await device_info(ch)
            with pytest.raises(NotAppliedError, match=r"app\.bin: the device did not take it"):
                check_step(step, info)

    run(go())
    assert before is not None and device.installed_app is not None
    assert device.installed_app.data == before.data


class BitFlipBeforeReboot(DeviceOsControl):
    """Fault injection: one bit of the staged copy in the OTA region flips just before the
    reboot (a flash fault), so the bootloader's CRC check refuses the slot (§3.3)."""

    def reset(self) -> None:
        if self.device.pending_slots():
            self.device.flash.program("ota", 100, b"\x00")  # NOR: bits only go to 0
        super().reset()


def test_flash_stops_when_the_device_keeps_its_old_image(tmp_path: Path) -> None:
    device = stock_boron(tmp_path)
    before = device.installed_app
    app = make_app("boron", library=False, tag="flipped-in-flight")
    events: list[FlashEvent] = []

    async def go() -> None:
        control = BitFlipBeforeReboot(device)
        async with tcp_service(device, control=control) as (opener, _):
            plan = make_plan([InputFile("app.bin", app)], _state(device))
            with pytest.raises(NotAppliedError, match=r"user_part 2 reports SHA-256"):
                await flash(plan, opener, events.append)
            assert control.resets == 1

    run(go())
    assert not any(isinstance(e, StepDone) for e in events)
    assert before is not None and device.installed_app is not None
    assert device.installed_app.data == before.data


def _state(device: EmulatedDevice, *, resets_disabled: bool = False) -> DeviceState:
    modules = tuple(DeviceModule(r.function, r.index, r.version) for r in device.installed_modules)
    return DeviceState(BORON, modules, resets_disabled=resets_disabled)


def test_a_wrong_secret_fails_once_with_a_named_error(tmp_path: Path) -> None:
    device = stock_boron(tmp_path)
    plan = make_plan([InputFile("app.bin", make_app("boron", library=False))], _state(device))

    async def go() -> None:
        async with tcp_service(device, b"WRONGSECRET0000") as (opener, control):
            with pytest.raises(WrongMobileSecretError):
                await flash(plan, opener, connect_timeout=30)
            assert control.resets == 0

    run(go())


def test_a_device_that_does_not_come_back_is_unreachable(tmp_path: Path) -> None:
    async def refuse() -> ByteStream:
        raise ConnectionRefusedError("nobody listens")

    opener = stream_opener(refuse, b"K7QX2M9PLR4TW8N")
    plan = make_plan(
        [InputFile("app.bin", make_app("boron", library=False))], _state(stock_boron(tmp_path))
    )

    async def go() -> None:
        with pytest.raises(DeviceUnreachableError, match=r"within 0\.5 s"):
            await flash(plan, opener, connect_timeout=0.5)

    run(go())


# -- over Bumble's virtual link (the emulated device's GATT control service) -----------------


def test_over_the_virtual_link_a_refusal_then_an_update(tmp_path: Path) -> None:
    """A device with the bluemule library also offers Device OS's control service; a wrong
    platform is refused by name, then the plan goes through with a reset per module."""
    device = EmulatedDevice.create(tmp_path / "dev", "boron", device_os=6300)
    argon_app = (FIXTURES / "binaries/argon-tinker-620.bin").read_bytes()

    async def go() -> None:
        target = EmulatorTarget(device.state_dir)
        async with open_control_target(target, secret_of(device)) as where:
            async with where.opener() as ch:
                info = await device_info(ch)
                assert info.device_id == device.device_id
                with pytest.raises(UpdateRefusedError) as err:
                    await flash_module(ch, argon_app)
                assert err.value.name == "OTA_INVALID_PLATFORM"
            assert where.platform_id == BORON
            plan = make_plan([InputFile("b.zip", bundle())], info.state(BORON))
            result = await flash(plan, where.opener, come_back_timeout=30)
            assert [s.outcome for s in result.steps] == ["installed", "stored", "stored"]

    run(go())
    assert device.mode == "normal"
    assert {a["name"] for a in device.show()["assets"]} == set(ASSETS)

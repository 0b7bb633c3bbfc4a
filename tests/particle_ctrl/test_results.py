"""Device OS result codes and the RequestError built from them (particle.md §5.3)."""

from __future__ import annotations

from bluemule.particle_ctrl.errors import RequestError
from bluemule.particle_ctrl.results import (
    SYSTEM_ERRORS,
    request_error,
    result_message,
    result_name,
)


def test_codes_named_in_the_reference() -> None:
    assert result_name(-130) == "NOT_ALLOWED"
    assert result_name(-210) == "INVALID_STATE"
    assert result_name(-260) == "NO_MEMORY"
    assert result_name(-270) == "INVALID_ARGUMENT"  # particle-android: INVALID_PARAM
    assert result_name(-1801) == "PROTECTED"
    assert result_name(-3000) == "HAL_RTC_INVALID_TIME"
    assert result_name(0) == "NONE"
    assert result_name(-999) == "UNKNOWN_RESULT(-999)"
    assert result_message(-260) == "Memory allocation error"
    assert result_message(-999) == ""


def test_table_is_device_os_s_whole_list() -> None:
    assert len(SYSTEM_ERRORS) == 101
    assert all(code < 0 for code in SYSTEM_ERRORS)
    names = [name for name, _ in SYSTEM_ERRORS.values()]
    assert len(set(names)) == len(names)


def test_request_error() -> None:
    error = request_error(250, -130)
    assert isinstance(error, RequestError)
    assert (error.request_type, error.code, error.name) == (250, -130, "NOT_ALLOWED")
    assert str(error) == "request 250 refused by the device: NOT_ALLOWED (-130)"


def test_the_emulators_error_codes_are_device_os_codes() -> None:
    """The emulator keeps the codes it raises as a typed enum; each is Device OS's own
    (same value, same name as this table), so the two lists cannot drift apart."""
    from bluemule.emulator.errors import SystemErrorCode  # noqa: PLC0415

    for code in SystemErrorCode:
        assert SYSTEM_ERRORS[code.value][0] == code.name, code

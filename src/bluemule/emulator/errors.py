"""Errors of the device emulator, and Device OS's ``system_error_t`` codes.

Tree::

    EmulatorError                 anything the emulator raises
    ├── PowerLoss                 an armed flash operation was torn; the device is now off
    ├── PoweredOff                a call reached a device that is off (call ``power_on()``)
    ├── DeviceOsError             Device OS refused a call; ``code`` is its system_error_t
    ├── StateDirError             the state directory is missing, foreign or corrupt
    └── UsageError (ValueError)   bad arguments to an emulator-only API (create, kv keys …)

:class:`PowerLoss` and :class:`PoweredOff` model the hardware; :class:`DeviceOsError`
models a Device OS return code, which on the device is a negative ``int``
(``services/inc/system_error.h``; ``shared/reference/particle.md`` §3.4, §5.3).
"""

from __future__ import annotations

import enum


class SystemErrorCode(enum.IntEnum):
    """Device OS ``system_error_t`` values the update path can return (names without
    the ``SYSTEM_ERROR_`` prefix; values from ``services/inc/system_error.h``). The full
    list is :data:`bluemule.particle_ctrl.results.SYSTEM_ERRORS`; a test checks that
    every member here agrees with it."""

    UNKNOWN = -100
    BUSY = -110
    NOT_SUPPORTED = -120
    NOT_ALLOWED = -130
    CANCELLED = -140
    ABORTED = -150
    TIMEOUT = -160
    NOT_FOUND = -170
    ALREADY_EXISTS = -180
    TOO_LARGE = -190
    NOT_ENOUGH_DATA = -191
    LIMIT_EXCEEDED = -200
    END_OF_STREAM = -201
    INVALID_STATE = -210
    FLASH_IO = -219
    IO = -220
    FILE = -225
    INTERNAL = -250
    NO_MEMORY = -260
    INVALID_ARGUMENT = -270
    BAD_DATA = -280
    OUT_OF_RANGE = -290
    OTA_MODULE_NOT_FOUND = -1300
    OTA_UNSUPPORTED_MODULE = -1310
    OTA_VALIDATION_FAILED = -1320
    OTA_INTEGRITY_CHECK_FAILED = -1330
    OTA_RESUMED_UPDATE_FAILED = -1331
    OTA_DEPENDENCY_CHECK_FAILED = -1340
    OTA_INVALID_ADDRESS = -1350
    OTA_INVALID_SIZE = -1351
    OTA_INVALID_PLATFORM = -1360
    OTA_INVALID_FORMAT = -1370
    OTA_UPDATES_DISABLED = -1380
    OTA = -1390
    PROTECTED = -1801
    FILESYSTEM = -1900
    FILESYSTEM_IO = -1901
    FILESYSTEM_CORRUPT = -1902
    FILESYSTEM_NOENT = -1903
    FILESYSTEM_INVAL = -1910
    FILESYSTEM_NOSPC = -1911

    @property
    def system_name(self) -> str:
        """The C name, e.g. ``SYSTEM_ERROR_OTA_INVALID_SIZE``."""
        return f"SYSTEM_ERROR_{self.name}"


class EmulatorError(Exception):
    """Root of every error the emulator raises."""


class PowerLoss(EmulatorError):  # noqa: N818 - an event, named as the hardware fault
    """Power failed during flash operation number ``op``; the operation was torn.

    The device is off afterwards; every call raises :class:`PoweredOff` until
    ``power_on()``.
    """

    def __init__(self, op: int, description: str) -> None:
        super().__init__(f"power lost during flash operation {op} ({description})")
        self.op = op
        self.description = description


class PoweredOff(EmulatorError):  # noqa: N818 - a state, named as such
    """The device is off (after :class:`PowerLoss` or ``power_off()``)."""


class DeviceOsError(EmulatorError):
    """A Device OS call failed with ``code`` (as the C function would return it)."""

    def __init__(self, code: SystemErrorCode, message: str = "") -> None:
        text = f"{code.system_name} ({int(code)})"
        super().__init__(f"{text}: {message}" if message else text)
        self.code = code
        self.message = message


class StateDirError(EmulatorError):
    """The state directory cannot be used (missing, not an emulator's, unreadable, in use)."""


class UsageError(EmulatorError, ValueError):
    """Invalid arguments to an emulator API that has no Device OS counterpart."""

"""Device OS result codes (``system_error_t``) and the error a refused request raises.

A reply's ``result`` is 0 or a negative ``system_error_t`` (particle.md §5.3). The table
is Device OS's ``SYSTEM_ERRORS`` list from ``services/inc/system_error.h`` (code →
name without the ``SYSTEM_ERROR_`` prefix, default message). particle-android's
ProtocolTransceiver.kt calls −270 ``INVALID_PARAM``; Device OS names it
``INVALID_ARGUMENT``, which is what this table uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from bluemule.particle_ctrl.errors import RequestError

OK: Final = 0

SYSTEM_ERRORS: Final[Mapping[int, tuple[str, str]]] = MappingProxyType(
    {
        -100: ("UNKNOWN", "Unknown error"),
        -110: ("BUSY", "Resource busy"),
        -120: ("NOT_SUPPORTED", "Not supported"),
        -130: ("NOT_ALLOWED", "Not allowed"),
        -140: ("CANCELLED", "Operation cancelled"),
        -150: ("ABORTED", "Operation aborted"),
        -160: ("TIMEOUT", "Timeout error"),
        -170: ("NOT_FOUND", "Not found"),
        -180: ("ALREADY_EXISTS", "Already exists"),
        -190: ("TOO_LARGE", "Too large data"),
        -191: ("NOT_ENOUGH_DATA", "Not enough data"),
        -200: ("LIMIT_EXCEEDED", "Limit exceeded"),
        -201: ("END_OF_STREAM", "End of stream"),
        -210: ("INVALID_STATE", "Invalid state"),
        -219: ("FLASH_IO", "Flash IO error"),
        -220: ("IO", "IO error"),
        -221: ("WOULD_BLOCK", "Would block"),
        -225: ("FILE", "File error"),
        -226: ("PATH_TOO_LONG", "Path is too long"),
        -230: ("NETWORK", "Network error"),
        -240: ("PROTOCOL", "Protocol error"),
        -250: ("INTERNAL", "Internal error"),
        -260: ("NO_MEMORY", "Memory allocation error"),
        -270: ("INVALID_ARGUMENT", "Invalid argument"),
        -280: ("BAD_DATA", "Invalid data format"),
        -281: ("ENCODING_FAILED", "Encoding error"),
        -290: ("OUT_OF_RANGE", "Out of range"),
        -300: ("DEPRECATED", "Deprecated"),
        -1000: ("COAP", "CoAP error"),
        -1001: ("COAP_CONNECTION_CLOSED", "Connection closed"),
        -1002: ("COAP_MESSAGE_RESET", "Received a RST message"),
        -1003: ("COAP_TIMEOUT", "CoAP timeout"),
        -1004: ("COAP_REQUEST_NOT_FOUND", "Request not found"),
        -1005: ("COAP_REQUEST_CANCELLED", "Request was cancelled"),
        -1100: ("COAP_4XX", "CoAP: 4xx"),
        -1132: ("COAP_5XX", "CoAP: 5xx"),
        -1200: ("AT_NOT_OK", "AT command failure"),
        -1210: ("AT_RESPONSE_UNEXPECTED", "Failed to parse AT response"),
        -1300: ("OTA_MODULE_NOT_FOUND", "Module not found"),
        -1310: ("OTA_UNSUPPORTED_MODULE", "Unsupported module"),
        -1320: ("OTA_VALIDATION_FAILED", "Module validation failed"),
        -1330: ("OTA_INTEGRITY_CHECK_FAILED", "Module integrity check failed"),
        -1331: ("OTA_RESUMED_UPDATE_FAILED", "Resumed update failed"),
        -1340: ("OTA_DEPENDENCY_CHECK_FAILED", "Module dependency check failed"),
        -1350: ("OTA_INVALID_ADDRESS", "Invalid module address"),
        -1351: ("OTA_INVALID_SIZE", "Invalid module size"),
        -1360: ("OTA_INVALID_PLATFORM", "Invalid module platform"),
        -1370: ("OTA_INVALID_FORMAT", "Invalid module format"),
        -1380: ("OTA_UPDATES_DISABLED", "Firmware updates are disabled"),
        -1390: ("OTA", "Firmware update error"),
        -1400: ("CRYPTO", "Crypto error"),
        -1600: ("I2C_BUS_BUSY", "Bus busy"),
        -1601: ("I2C_ARBITRATION_FAILED", "Arbitration failed"),
        -1602: ("I2C_TX_ADDR_TIMEOUT", "Send slave address timeout"),
        -1603: ("I2C_FILL_DATA_TIMEOUT", "Fill data timeout"),
        -1604: ("I2C_TX_DATA_TIMEOUT", "Send data timeout"),
        -1605: ("I2C_STOP_TIMEOUT", "Send stop timeout"),
        -1606: ("I2C_ABORT", "I2C transmission abort"),
        -1700: ("PPP_PARAM", "Invalid parameter"),
        -1701: ("PPP_OPEN", "Unable to open PPP session"),
        -1702: ("PPP_DEVICE", "Invalid I/O device for PPP"),
        -1703: ("PPP_ALLOC", "Unable to allocate resources"),
        -1704: ("PPP_USER", "User interrupt"),
        -1705: ("PPP_CONNECT", "Connection lost"),
        -1706: ("PPP_AUTH_FAIL", "Failed authentication challenge"),
        -1707: ("PPP_PROTOCOL", "Failed to meet protocol"),
        -1708: ("PPP_PEER_DEAD", "Connection timeout"),
        -1709: ("PPP_IDLE_TIMEOUT", "Idle timeout"),
        -1710: ("PPP_CONNECT_TIME", "Max connect time reached"),
        -1711: ("PPP_LOOPBACK", "Loopback detected"),
        -1712: ("PPP_NO_CARRIER_IN_NETWORK_PHASE", "Received NO CARRIER in network phase"),
        -1800: ("INVALID_SERVER_SETTINGS", "Server settings are invalid"),
        -1801: ("PROTECTED", "Device is in a protected state, action prohibited"),
        -1802: ("KEY_MISMATCH", "Unrecognized cryptographic key"),
        -1803: ("INVALID_SIGNATURE", "Signature validation failed"),
        -1900: ("FILESYSTEM", "Filesystem error"),
        -1901: ("FILESYSTEM_IO", "Filesystem IO error"),
        -1902: ("FILESYSTEM_CORRUPT", "Filesystem corrupted"),
        -1903: ("FILESYSTEM_NOENT", "No directory entry"),
        -1904: ("FILESYSTEM_EXIST", "Filesystem entry already exists"),
        -1905: ("FILESYSTEM_NOTDIR", "Filesystem entry is not a directory"),
        -1906: ("FILESYSTEM_ISDIR", "Filesystem entry is a directory"),
        -1907: ("FILESYSTEM_NOTEMPTY", "Directory is not empty"),
        -1908: ("FILESYSTEM_BADF", "Bad file number"),
        -1909: ("FILESYSTEM_FBIG", "File too large"),
        -1910: ("FILESYSTEM_INVAL", "Invalid parameter"),
        -1911: ("FILESYSTEM_NOSPC", "No space left in the filesystem"),
        -1912: ("FILESYSTEM_NOMEM", "Memory allocation error"),
        -2000: ("LEDGER_NOT_FOUND", "Ledger not found"),
        -2001: ("LEDGER_INVALID_FORMAT", "Invalid format of ledger data"),
        -2002: ("LEDGER_UNSUPPORTED_FORMAT", "Unsupported format of ledger data"),
        -2003: ("LEDGER_READ_ONLY", "Ledger is read only"),
        -2004: ("LEDGER_IN_USE", "Ledger is in use"),
        -2005: ("LEDGER_TOO_LARGE", "Ledger data is too large"),
        -2006: ("LEDGER_TOO_MANY", "Too many ledgers"),
        -2007: ("LEDGER_INCONSISTENT_STATE", "Inconsistent ledger state"),
        -2008: ("LEDGER_ENCODING_FAILED", "Ledger encoding error"),
        -2009: ("LEDGER_DECODING_FAILED", "Ledger decoding error"),
        -2010: ("LEDGER_REQUEST_FAILED", "Ledger request failed"),
        -2011: ("LEDGER_INVALID_RESPONSE", "Invalid response from server"),
        -3000: ("HAL_RTC_INVALID_TIME", "RTC time is invalid"),
    }
)
"""Every ``system_error_t`` code Device OS defines: code → (name, default message)."""


def result_name(code: int) -> str:
    """``"NONE"`` for 0, the ``system_error_t`` name, or ``"UNKNOWN_RESULT(<code>)"``."""
    if code == OK:
        return "NONE"
    entry = SYSTEM_ERRORS.get(code)
    return entry[0] if entry is not None else f"UNKNOWN_RESULT({code})"


def result_message(code: int) -> str:
    """Device OS's default message for ``code`` (empty for 0 and unknown codes)."""
    entry = SYSTEM_ERRORS.get(code)
    return entry[1] if entry is not None else ""


def request_error(request_type: int, code: int) -> RequestError:
    """The :class:`RequestError` for a request of ``request_type`` refused with ``code``."""
    return RequestError(request_type, code, result_name(code))

"""Every number of the bluemule BLE protocol, named once (see ``docs/protocol.md``).

This module is the single source of truth shared with the C++ device library:
``python -m bluemule.protocol.header`` renders it as ``device/bluemule_protocol.h`` and a
test fails when the committed header differs. Keep it plain: enums of ints and
string UUIDs, no logic.
"""

from __future__ import annotations

import enum
from typing import Final

PROTOCOL_VERSION: Final = 1
"""Bumped on any incompatible change; the device reports it in STATUS."""

UUID_BASE: Final = "6d75{:04x}-6c65-4b1e-8d3a-626c75656d75"
"""128-bit base: ``6d75`` "mu", ``6c65`` "le", ``626c75656d75`` "blueum"."""


def uuid(short: int) -> str:
    """A bluemule UUID from its 16-bit short form."""
    return UUID_BASE.format(short)


SERVICE_UUID: Final = uuid(0x0001)
STATUS_UUID: Final = uuid(0x0002)
"""Read (+notify on change): the device's identity, firmware, capabilities, transfer state."""
CONTROL_UUID: Final = uuid(0x0003)
"""Write with response: requests from the central."""
RESPONSE_UUID: Final = uuid(0x0004)
"""Notify + read: the response to the latest request (readable for polling clients)."""
DATA_UUID: Final = uuid(0x0005)
"""Write without response: manifest and part bytes, each write carrying stream and offset."""
PROGRESS_UUID: Final = uuid(0x0006)
"""Notify + read: cumulative acknowledgement (next expected offset of the open stream)."""

MANUFACTURER_ID: Final = 0xFFFF
"""Company id in advertising manufacturer data (0xFFFF: testing/unassigned, until assigned)."""
ADVERTISING_MAGIC: Final = b"BM"

DEVICE_ID_SIZE: Final = 12
SHA256_SIZE: Final = 32
ED25519_SIGNATURE_SIZE: Final = 64
ED25519_PUBLIC_KEY_SIZE: Final = 32
KEY_ID_SIZE: Final = 8
"""First 8 bytes of SHA-256 of the raw public key."""
MAX_MANIFEST_SIZE: Final = 2048
"""Device RAM for the manifest."""
MAX_PARTS: Final = 16
MAX_NAME_SIZE: Final = 64
DATA_HEADER_SIZE: Final = 5
"""DATA write header: stream u8, offset u32."""
MANIFEST_STREAM: Final = 0
"""DATA stream 0 carries the manifest; stream ``i + 1`` carries part ``i``."""
NO_PART: Final = 0xFF
ATT_HEADER_SIZE: Final = 3
MAX_ATT_MTU: Final = 247
DEFAULT_WINDOW: Final = 4096
"""Bytes the central may have in flight beyond the last acknowledged offset."""
DEFAULT_ACK_INTERVAL: Final = 1024
"""The device acknowledges each time its contiguous offset crosses a multiple of this."""
ASSETS_PER_PAGE: Final = 4
MAX_EVENT_NAME_SIZE: Final = 64
"""Particle's event name limit: 1–64 of A–Z a–z 0–9 _ - / (not starting with particle/spark)."""
MAX_EVENT_DATA_SIZE: Final = 1024
"""Particle's event data limit on Gen 3/4 Device OS (``Particle.publish``)."""
EVENT_QUEUE_CAPACITY: Final = 100
"""Records the device keeps unacknowledged; a publish beyond this is refused and counted."""
EVENT_QUEUE_BYTES: Final = 32768
"""Record bytes (on-flash encoding) the device keeps unacknowledged."""
EVENT_SEGMENT_SIZE: Final = 4096
"""Records are appended to segment files of at most this size (one LittleFS block)."""
EVENT_READ_HEADER_SIZE: Final = 12
"""EVENTS_READ OK response before the chunk: opcode, seq, status, sequence u32, total u16,
offset u16, chunk length u8."""


class Opcode(enum.IntEnum):
    """CONTROL request opcodes; the RESPONSE echoes them."""

    GET_ASSETS = 0x01
    """Page through installed assets (name, SHA-256 of the raw content)."""
    MANIFEST_BEGIN = 0x10
    """Announce a manifest (size, SHA-256); the device answers with its offset for it."""
    MANIFEST_COMMIT = 0x11
    """Verify the received manifest; answers which parts are needed. Nothing is erased."""
    PART_BEGIN = 0x20
    """Open part i: prepares (erases) the OTA region unless the part is already open."""
    PART_END = 0x21
    """Close part i: size, SHA-256, module integrity; stage it (assets are stored at once)."""
    APPLY = 0x30
    """All parts staged: reset into the new firmware after answering."""
    ABORT = 0x31
    """Forget the transfer (staged-but-unapplied modules are discarded on the next prepare)."""
    EVENTS_READ = 0x40
    """A chunk of the first queued event record whose sequence is ≥ the one asked for."""
    EVENTS_ACK = 0x41
    """The relay stored every record up to this sequence: the device deletes them."""


class Status(enum.IntEnum):
    """RESPONSE status codes. 0 is success; every other value names why."""

    OK = 0x00
    BAD_REQUEST = 0x01
    """Malformed request (length, unknown opcode, bad index)."""
    BAD_STATE = 0x02
    """Request out of order (e.g. PART_BEGIN before a manifest was accepted)."""
    BUSY = 0x03
    """Another firmware update is open on the device (e.g. a cloud OTA)."""
    BAD_MANIFEST = 0x10
    """Manifest malformed, unsupported version or signature algorithm."""
    UNKNOWN_KEY = 0x11
    """Signed by a key the device does not trust."""
    BAD_SIGNATURE = 0x12
    WRONG_DEVICE = 0x13
    WRONG_PLATFORM = 0x14
    WRONG_PRODUCT = 0x15
    OLD_RELEASE = 0x16
    """Release counter not greater than the device's, and downgrade not allowed."""
    DEVICE_OS_TOO_OLD = 0x17
    TOO_LARGE = 0x18
    """A part exceeds the OTA region, the app slot, or the asset storage limits."""
    ASSETS_UNSATISFIED = 0x19
    """The app needs an asset that is neither in the manifest nor installed."""
    UNSUPPORTED_PART = 0x1A
    """A compressed part for a device that cannot inflate, or an unknown part kind."""
    INCOMPLETE = 0x20
    """PART_END before every byte arrived."""
    HASH_MISMATCH = 0x21
    """The part's SHA-256 is not the manifest's."""
    INVALID_MODULE = 0x22
    """The part is not the module the manifest describes (CRC, kind, name, dependencies)."""
    DEVICE_OS_REFUSED = 0x23
    """Device OS refused the module; the response carries its system error code."""
    STORAGE_FULL = 0x24
    FLASH_ERROR = 0x25
    UPDATES_DISABLED = 0x26
    UNKNOWN_EVENT = 0x30
    """EVENTS_ACK of a sequence the device never assigned (detail: the last it assigned)."""


class PartKind(enum.IntEnum):
    """What a manifest part is; the install order is assets first, application last."""

    ASSET = 1
    APPLICATION = 2


class PartFlag(enum.IntFlag):
    """Per-part flags in the manifest."""

    COMPRESSED = 0x01
    """The part is a compressed module (the bootloader / asset reader inflates it)."""


class ManifestFlag(enum.IntFlag):
    """Manifest-wide flags."""

    ALLOW_DOWNGRADE = 0x01
    """Accept a release counter not greater than the device's (signed, so deliberate)."""


class SignatureAlgorithm(enum.IntEnum):
    """How the manifest is signed; a cheaper scheme may be added later."""

    ED25519 = 1


class StatusFlag(enum.IntFlag):
    """STATUS flags."""

    SAFE_MODE = 0x01
    APP_CONFIRMED = 0x02
    """The running app passed its own health check since boot."""
    TRANSFER_OPEN = 0x04
    UPDATE_PENDING = 0x08
    """A release was applied and awaits the app's confirmation."""


class Capability(enum.IntFlag):
    """STATUS capability bits."""

    COMPRESSED_MODULES = 0x01
    NOTIFICATIONS = 0x02
    EVENTS = 0x04
    """The device queues events for relays (EVENTS_READ / EVENTS_ACK, STATUS event fields)."""


class EventFlag(enum.IntFlag):
    """Per-record flags in an event record."""

    HAS_DATA = 0x01
    """The event carries data (possibly empty); without it the data is null."""


class ProgressFlag(enum.IntFlag):
    """PROGRESS flags."""

    GAP = 0x01
    """A write arrived past the expected offset and was dropped: resend from ``offset``."""
    COMPLETE = 0x02
    """Every byte of the stream has arrived."""


class AdvertisingFlag(enum.IntFlag):
    """Flags in the advertised manufacturer data."""

    SAFE_MODE = 0x01
    TRANSFER_OPEN = 0x02
    UPDATE_PENDING = 0x04
    EVENTS_QUEUED = 0x08
    """At least one event record waits for a relay."""

"""Module info extensions: ``{u16 type, u16 length}`` TLVs, length counting the header.

Pure encode/decode, no I/O. Layouts from Device OS ``dynalib/inc/module_info.h`` and
binary-version-reader ``encodeModuleExtension`` / ``_readExtension``; see
``shared/reference/particle.md`` §1.9. Decoding is strict: a record that runs past
its region, is shorter than its header, or whose payload does not match its type's
layout raises :class:`~bluemule.image.errors.ExtensionError`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar, Final

from bluemule.image.constants import EXTENSION_HEADER_SIZE, ExtensionType, HashType
from bluemule.image.errors import ExtensionError

_HEADER: Final = struct.Struct("<HH")  # type, length (header included)
assert _HEADER.size == EXTENSION_HEADER_SIZE
_PRODUCT_DATA: Final = struct.Struct("<HHH")  # id high half (0xFFFF), product id, product version
_DYNAMIC_LOCATION: Final = struct.Struct("<III")  # module start, dynalib load, dynalib start
_DEPENDENCY: Final = struct.Struct("<BBHI")  # function, index, version, target id
_MAX_LENGTH: Final = 0xFFFF


def _frame(ext_type: int, payload: bytes) -> bytes:
    length = EXTENSION_HEADER_SIZE + len(payload)
    if length > _MAX_LENGTH:
        raise ExtensionError(f"extension 0x{ext_type:04x} payload of {len(payload)} B is too long")
    return _HEADER.pack(ext_type, length) + payload


@dataclass(frozen=True)
class EndExtension:
    """END: terminates prefix extensions; its length may cover zero padding."""

    TYPE: ClassVar = ExtensionType.END
    padding: int = 0

    def encode(self) -> bytes:
        """Header plus ``padding`` zero bytes."""
        return _frame(self.TYPE, bytes(self.padding))


@dataclass(frozen=True)
class ProductDataExtension:
    """PRODUCT_DATA: ``u16 0xFFFF, u16 product_id, u16 product_version`` (as binary-version-reader).

    Device OS declares the first 4 bytes as a 32-bit id; only ``product_version`` is read
    on device. ``id_high`` keeps the first half as found.
    """

    TYPE: ClassVar = ExtensionType.PRODUCT_DATA
    product_id: int
    product_version: int
    id_high: int = 0xFFFF

    def encode(self) -> bytes:
        """Encode as 10 bytes."""
        return _frame(
            self.TYPE, _PRODUCT_DATA.pack(self.id_high, self.product_id, self.product_version)
        )


@dataclass(frozen=True)
class DynamicLocationExtension:
    """DYNAMIC_LOCATION: where an RTL872x user part starts and where its dynalib table lives."""

    TYPE: ClassVar = ExtensionType.DYNAMIC_LOCATION
    module_start_address: int
    dynalib_load_address: int
    dynalib_start_address: int

    def encode(self) -> bytes:
        """Encode as 16 bytes."""
        return _frame(
            self.TYPE,
            _DYNAMIC_LOCATION.pack(
                self.module_start_address, self.dynalib_load_address, self.dynalib_start_address
            ),
        )


@dataclass(frozen=True)
class DependencyExtension:
    """DEPENDENCY: an extra module dependency with an MCU target id."""

    TYPE: ClassVar = ExtensionType.DEPENDENCY
    function: int
    index: int
    version: int
    target_id: int = 0

    def encode(self) -> bytes:
        """Encode as 12 bytes."""
        return _frame(
            self.TYPE, _DEPENDENCY.pack(self.function, self.index, self.version, self.target_id)
        )


@dataclass(frozen=True)
class HashExtension:
    """HASH: the asset module's content hash (SHA-256 of the raw asset bytes)."""

    TYPE: ClassVar = ExtensionType.HASH
    hash: bytes
    hash_type: int = HashType.SHA256

    def encode(self) -> bytes:
        """Encode as header, type, length and hash."""
        return _frame(self.TYPE, bytes((self.hash_type, len(self.hash))) + self.hash)


@dataclass(frozen=True)
class NameExtension:
    """NAME: the asset's name, UTF-8 without a terminator."""

    TYPE: ClassVar = ExtensionType.NAME
    name: str

    def encode(self) -> bytes:
        """Encode the UTF-8 name."""
        return _frame(self.TYPE, self.name.encode("utf-8"))


@dataclass(frozen=True)
class AssetDependencyExtension:
    """ASSET_DEPENDENCY: an asset the application needs, by name and SHA-256 of its raw bytes."""

    TYPE: ClassVar = ExtensionType.ASSET_DEPENDENCY
    name: str
    hash: bytes
    hash_type: int = HashType.SHA256

    def encode(self) -> bytes:
        """Encode as hash type, hash length, hash, name."""
        payload = bytes((self.hash_type, len(self.hash))) + self.hash + self.name.encode("utf-8")
        return _frame(self.TYPE, payload)


@dataclass(frozen=True)
class SecurityModeExtension:
    """SECURITY_MODE: Device Protection marker in a bootloader, maybe with a DER certificate."""

    TYPE: ClassVar = ExtensionType.SECURITY_MODE
    mode: int
    certificate: bytes = b""

    def encode(self) -> bytes:
        """Encode mode byte and certificate."""
        return _frame(self.TYPE, bytes((self.mode,)) + self.certificate)


@dataclass(frozen=True)
class AssetTypeExtension:
    """ASSET_TYPE: 0 default, 1 env-vars app, 2 env-vars snapshot; one reserved byte."""

    TYPE: ClassVar = ExtensionType.ASSET_TYPE
    asset_type: int
    reserved: int = 0

    def encode(self) -> bytes:
        """Encode as 6 bytes."""
        return _frame(self.TYPE, bytes((self.asset_type, self.reserved)))


@dataclass(frozen=True)
class UnknownExtension:
    """An extension type this library does not interpret; kept byte for byte."""

    type: int
    payload: bytes

    def encode(self) -> bytes:
        """Re-frame the payload unchanged."""
        return _frame(self.type, self.payload)


Extension = (
    EndExtension
    | ProductDataExtension
    | DynamicLocationExtension
    | DependencyExtension
    | HashExtension
    | NameExtension
    | AssetDependencyExtension
    | SecurityModeExtension
    | AssetTypeExtension
    | UnknownExtension
)


def extension_type(ext: Extension) -> int:
    """Numeric type code of any extension."""
    return ext.type if isinstance(ext, UnknownExtension) else int(ext.TYPE)


def encode_extensions(exts: tuple[Extension, ...] | list[Extension]) -> bytes:
    """Concatenate encoded extensions."""
    return b"".join(ext.encode() for ext in exts)


def _utf8(raw: bytes, what: str, offset: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ExtensionError(f"{what} is not valid UTF-8", offset=offset) from None


def _hashed(payload: bytes, what: str, offset: int) -> tuple[int, bytes, bytes]:
    """Split ``hash type u8, hash length u8, hash, rest``."""
    if len(payload) < 2:
        raise ExtensionError(f"{what} extension too short", offset=offset)
    hash_type, hash_len = payload[0], payload[1]
    if 2 + hash_len > len(payload):
        raise ExtensionError(f"{what} hash of {hash_len} B runs past the extension", offset=offset)
    return hash_type, payload[2 : 2 + hash_len], payload[2 + hash_len :]


def _fixed(payload: bytes, size: int, what: str, offset: int) -> None:
    if len(payload) != size:
        raise ExtensionError(
            f"{what} extension payload is {len(payload)} B, expected {size}", offset=offset
        )


def decode_extension(ext_type: int, payload: bytes, offset: int = 0) -> Extension:  # noqa: PLR0911, PLR0912 - one case per type
    """Decode one extension's payload (the bytes after its 4-byte header)."""
    match ext_type:
        case ExtensionType.END:
            if any(payload):
                return UnknownExtension(ext_type, payload)  # padding that is not zero: keep it
            return EndExtension(len(payload))
        case ExtensionType.PRODUCT_DATA:
            _fixed(payload, _PRODUCT_DATA.size, "PRODUCT_DATA", offset)
            high, pid, pver = _PRODUCT_DATA.unpack(payload)
            return ProductDataExtension(pid, pver, high)
        case ExtensionType.DYNAMIC_LOCATION:
            _fixed(payload, _DYNAMIC_LOCATION.size, "DYNAMIC_LOCATION", offset)
            return DynamicLocationExtension(*_DYNAMIC_LOCATION.unpack(payload))
        case ExtensionType.DEPENDENCY:
            _fixed(payload, _DEPENDENCY.size, "DEPENDENCY", offset)
            return DependencyExtension(*_DEPENDENCY.unpack(payload))
        case ExtensionType.HASH:
            hash_type, digest, rest = _hashed(payload, "HASH", offset)
            if rest:
                raise ExtensionError("HASH extension has bytes after its hash", offset=offset)
            return HashExtension(digest, hash_type)
        case ExtensionType.NAME:
            return NameExtension(_utf8(payload, "NAME extension", offset))
        case ExtensionType.ASSET_DEPENDENCY:
            hash_type, digest, rest = _hashed(payload, "ASSET_DEPENDENCY", offset)
            return AssetDependencyExtension(
                _utf8(rest, "asset dependency name", offset), digest, hash_type
            )
        case ExtensionType.SECURITY_MODE:
            if not payload:
                raise ExtensionError("SECURITY_MODE extension has no mode byte", offset=offset)
            return SecurityModeExtension(payload[0], payload[1:])
        case ExtensionType.ASSET_TYPE:
            _fixed(payload, 2, "ASSET_TYPE", offset)
            return AssetTypeExtension(payload[0], payload[1])
        case _:
            return UnknownExtension(ext_type, payload)


def decode_extensions(data: bytes, start: int, stop: int) -> tuple[list[Extension], int]:
    """Decode extensions in ``data[start:stop]`` up to and including the first END.

    Returns the extensions and the offset just past the last one. Every record must
    lie wholly inside the region; INVALID (0xFFFF, erased flash) is an error.
    """
    exts: list[Extension] = []
    pos = start
    while pos < stop:
        if stop - pos < EXTENSION_HEADER_SIZE:
            raise ExtensionError(
                f"{stop - pos} stray bytes where an extension header should be", offset=pos
            )
        ext_type, length = _HEADER.unpack_from(data, pos)
        if ext_type == ExtensionType.INVALID:
            raise ExtensionError("INVALID (0xFFFF) extension type", offset=pos)
        if length < EXTENSION_HEADER_SIZE:
            raise ExtensionError(f"extension 0x{ext_type:04x} declares length {length}", offset=pos)
        if pos + length > stop:
            raise ExtensionError(
                f"extension 0x{ext_type:04x} of {length} B runs {pos + length - stop} B past "
                "its region",
                offset=pos,
            )
        exts.append(
            decode_extension(ext_type, bytes(data[pos + EXTENSION_HEADER_SIZE : pos + length]), pos)
        )
        pos += length
        if ext_type == ExtensionType.END:
            break
    return exts, pos

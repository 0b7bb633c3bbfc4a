"""Compressed modules: ``[prefix][8-byte header][raw Deflate][suffix][CRC]``.

Without DROP_MODULE_INFO the Deflate stream holds the whole original module; with it
(assets) only the body. Only the bootloader inflates, with the default 32 KiB window
(``shared/reference/particle.md`` §1.10). Inflating is bounded: the declared original
size is checked against a limit before any work and the output may not exceed it.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Final

from bluemule.image.constants import COMPRESSED_HEADER_SIZE, CRC_SIZE, ModuleFlag, ModuleFunction
from bluemule.image.errors import CompressionError, LimitExceededError, UnsupportedOperationError
from bluemule.image.module import (
    Module,
    parse_module,
    set_end_and_flags,
    update_checksums,
)

_HEADER: Final = struct.Struct("<HBBI")  # header size, method, window bits, original size
assert _HEADER.size == COMPRESSED_HEADER_SIZE
METHOD_RAW_DEFLATE: Final = 0
MAX_DECOMPRESSED_SIZE: Final = 8 * 1024 * 1024
"""No Particle flash holds more than 8 MiB, so no module inflates to more."""
_COMPRESSIBLE: Final = frozenset(
    {ModuleFunction.USER_PART, ModuleFunction.SYSTEM_PART, ModuleFunction.ASSET}
)


@dataclass(frozen=True)
class CompressedHeader:
    """``compressed_module_header`` of a compressed module."""

    size: int
    method: int
    window_bits: int
    original_size: int


def read_compressed_header(module: Module) -> CompressedHeader:
    """Read and check the header in front of a compressed module's Deflate stream."""
    lo, hi = module.body_range
    if hi - lo < COMPRESSED_HEADER_SIZE:
        raise CompressionError("compressed module too short for its header", offset=lo)
    header = CompressedHeader(*_HEADER.unpack_from(module.data, lo))
    if header.size < COMPRESSED_HEADER_SIZE or lo + header.size > hi:
        raise CompressionError(f"compressed header declares {header.size} bytes", offset=lo)
    if header.method != METHOD_RAW_DEFLATE:
        raise CompressionError(f"unknown compression method {header.method}", offset=lo + 2)
    if header.window_bits != 0 and not 8 <= header.window_bits <= 15:
        raise CompressionError(f"window bits {header.window_bits} out of range", offset=lo + 3)
    return header


def compress_module(module: Module, *, level: int = 9) -> bytes:
    """Compress a user part, system part or asset module as Device OS expects.

    Raises:
        UnsupportedOperationError: already compressed, combined, a function the device
            does not inflate, or a prefix behind a vector table (Device OS refuses those).
    """
    if module.is_compressed:
        raise UnsupportedOperationError("module is already compressed")
    if module.is_combined:
        raise UnsupportedOperationError("combined modules are compressed part by part")
    if module.function not in _COMPRESSIBLE:
        raise UnsupportedOperationError(
            "Device OS inflates only user parts, system parts and assets"
        )
    if module.prefix_offset:
        raise UnsupportedOperationError(
            "Device OS refuses compressed modules whose prefix is behind a vector table"
        )
    data = module.data
    lo, hi = module.body_range
    suffix_at = hi
    payload = memoryview(data)[lo:hi] if module.flags & ModuleFlag.DROP_MODULE_INFO else data
    deflater = zlib.compressobj(level, zlib.DEFLATED, -15)
    stream = deflater.compress(payload) + deflater.flush()
    buf = bytearray()
    buf += data[:lo]
    buf += _HEADER.pack(COMPRESSED_HEADER_SIZE, METHOD_RAW_DEFLATE, 0, len(payload))
    buf += stream
    buf += data[suffix_at:]
    set_end_and_flags(
        buf,
        0,
        end=module.prefix.start_address + len(buf) - CRC_SIZE,
        flags=module.flags | ModuleFlag.COMPRESSED,
    )
    return update_checksums(buf)


def inflate_stream(
    stream: bytes | memoryview, header: CompressedHeader, *, max_size: int = MAX_DECOMPRESSED_SIZE
) -> bytes:
    """Inflate a raw-Deflate stream to exactly ``header.original_size`` bytes, bounded."""
    if header.original_size > max_size:
        raise LimitExceededError(
            f"compressed module declares {header.original_size} bytes, limit is {max_size}",
            limit=max_size,
            actual=header.original_size,
        )
    inflater = zlib.decompressobj(-(header.window_bits or 15))
    try:
        out = inflater.decompress(stream, header.original_size + 1)
    except zlib.error as exc:
        raise CompressionError(f"Deflate stream is corrupt: {exc}") from None
    if len(out) > header.original_size or inflater.unconsumed_tail:
        raise CompressionError(
            f"Deflate stream inflates past the declared {header.original_size} bytes"
        )
    if not inflater.eof:
        raise CompressionError("Deflate stream is truncated")
    if len(out) != header.original_size:
        raise CompressionError(
            f"Deflate stream inflates to {len(out)} bytes, header says {header.original_size}"
        )
    if inflater.unused_data:
        raise CompressionError(f"{len(inflater.unused_data)} bytes after the Deflate stream")
    return out


def decompress_module(module: Module, *, max_size: int = MAX_DECOMPRESSED_SIZE) -> bytes:
    """The original module of a compressed one (bounded by ``max_size``)."""
    if not module.is_compressed:
        raise UnsupportedOperationError("module is not compressed")
    if module.is_combined:
        raise UnsupportedOperationError("combined modules are decompressed part by part")
    header = read_compressed_header(module)
    lo, hi = module.body_range
    out = inflate_stream(memoryview(module.data)[lo + header.size : hi], header, max_size=max_size)
    if not module.flags & ModuleFlag.DROP_MODULE_INFO:
        inner = parse_module(out)  # the stream holds the whole original module
        if inner.is_compressed:
            raise CompressionError("a compressed module nested in a compressed module")
        return out
    data = module.data
    buf = bytearray()
    buf += data[:lo]
    buf += out
    buf += data[hi:]
    set_end_and_flags(
        buf,
        module.prefix_offset,
        end=module.prefix.start_address + len(buf) - CRC_SIZE,
        flags=module.flags & ~ModuleFlag.COMPRESSED,
    )
    return update_checksums(buf)

"""Errors of ``bluemule.image``.

Tree::

    ImageError                       anything this package refuses
    ├── NotAModuleError              no Particle module prefix where one must be
    ├── MalformedModuleError         a module whose structure contradicts itself
    │   ├── ExtensionError           a TLV extension runs past its region, is too short …
    │   └── CompressionError         bad compressed header or Deflate stream
    ├── LimitExceededError           bigger than allowed (platform limits, zip bombs)
    ├── BundleError                  a bundle zip that cannot be used as one
    └── UnsupportedOperationError    valid input, but not for this operation

Each subclass also derives from ``ValueError`` so callers that only know the
builtins still catch them. Integrity failures (CRC, SHA-256, asset hashes) are not
errors: parsing reports them, and callers decide.
"""

from __future__ import annotations


class ImageError(ValueError):
    """Root of every error this package raises on bad input or misuse."""


class NotAModuleError(ImageError):
    """The bytes are not a Particle module (no plausible prefix, empty, too short)."""


class MalformedModuleError(ImageError):
    """A module whose declared sizes, addresses or layout do not hold.

    Attributes:
        offset: byte offset in the input where the problem was seen, when known.
    """

    def __init__(self, message: str, *, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset


class ExtensionError(MalformedModuleError):
    """A TLV extension is malformed (zero or short length, past its region, bad payload)."""


class CompressionError(MalformedModuleError):
    """A compressed module's header or Deflate stream is invalid or lies about its size."""


class LimitExceededError(ImageError):
    """Something is larger than a platform or safety limit allows.

    Attributes:
        limit: the limit in bytes.
        actual: the size seen or declared, in bytes (may be a lower bound).
    """

    def __init__(self, message: str, *, limit: int, actual: int) -> None:
        super().__init__(message)
        self.limit = limit
        self.actual = actual


class BundleError(ImageError):
    """A bundle zip that is unreadable, unsafe (path traversal, duplicates) or lacks an app."""


class UnsupportedOperationError(ImageError):
    """The input is valid but the operation does not apply (e.g. compressing twice)."""

"""Errors of ``bluemule.protocol``.

Tree::

    ProtocolError                 anything the protocol layer refuses
    ├── DecodeError               bytes that are not a valid message (from a peer)
    ├── ManifestError             a manifest that cannot be built, parsed or trusted
    │   └── SignatureError        signature does not verify / key unknown
    └── SessionError              an outcome the session cannot continue from
        └── RemoteRejectionError       the device answered a request with a non-OK status

Every subclass also derives from ``ValueError`` except ``SessionError``.
"""

from __future__ import annotations

from bluemule.protocol.constants import Opcode, Status


class ProtocolError(Exception):
    """Root of the protocol package's errors."""


class DecodeError(ProtocolError, ValueError):
    """Malformed bytes from the peer. ``offset`` is where decoding stopped, when known."""

    def __init__(self, message: str, *, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset


class ManifestError(ProtocolError, ValueError):
    """A manifest that cannot be built or parsed; ``status`` is what a device answers."""

    def __init__(self, message: str, status: Status = Status.BAD_MANIFEST) -> None:
        super().__init__(message)
        self.status = status


class SignatureError(ManifestError):
    """The manifest's signature does not verify, or its key is not trusted."""


class SessionError(ProtocolError):
    """The session cannot continue."""


class RemoteRejectionError(SessionError):
    """The device refused a request; ``status`` names why and ``detail`` adds a number."""

    def __init__(self, opcode: Opcode, status: Status, detail: int = 0) -> None:
        super().__init__(f"{opcode.name}: {status.name}" + (f" ({detail})" if detail else ""))
        self.opcode = opcode
        self.status = status
        self.detail = detail

"""Errors of ``bluemule.particle_ctrl``.

Tree::

    ParticleCtrlError            anything the control-channel layer refuses
    ├── HandshakeError           EC-JPAKE failed: a malformed message, an invalid point
    │   │                        or proof, or a key confirmation that does not match
    │   └── WrongMobileSecretError   the peer's key confirmation does not match ours
    ├── ChannelError             the encrypted channel must close: bad framing, a tag that
    │   │                        does not verify (tampering), a replayed or skipped counter
    │   └── RequestTimeoutError  no reply in time (the channel is closed after it)
    ├── PayloadTooLargeError     a payload does not fit its u16 size field (also ValueError)
    ├── MessageError             a request or reply payload is not the protobuf it should be
    └── RequestError             the device answered a request with a negative result
                                 (``code`` is Device OS's ``system_error_t``)
"""

from __future__ import annotations


class ParticleCtrlError(Exception):
    """Root of the control-channel package's errors."""


class HandshakeError(ParticleCtrlError):
    """EC-JPAKE could not complete."""


class WrongMobileSecretError(HandshakeError):
    """Key confirmation failed: the two sides do not share the mobile secret."""


class ChannelError(ParticleCtrlError):
    """The encrypted channel is broken and must be closed."""


class RequestTimeoutError(ChannelError, TimeoutError):
    """No reply arrived in time; the device may still be working, so the channel closes."""


class PayloadTooLargeError(ParticleCtrlError, ValueError):
    """A request or reply payload longer than 65,535 bytes (particle.md §5.3)."""


class RequestError(ParticleCtrlError):
    """The device refused a request; ``code`` is the negative ``system_error_t``."""

    def __init__(self, request_type: int, code: int, name: str) -> None:
        super().__init__(f"request {request_type} refused by the device: {name} ({code})")
        self.request_type = request_type
        self.code = code
        self.name = name


class MessageError(ParticleCtrlError):
    """A control-request payload is not a valid protobuf message of the expected type
    (truncated, a bad varint, a field of the wrong wire type or out of range)."""

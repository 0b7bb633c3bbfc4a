"""Sans-IO sessions of the control channel: bytes in, typed events out (particle.md §5).

API (stable; the emulator's device side and the firmware-update client build on it)::

    # events (frozen dataclasses)
    Send(data: bytes)             bytes to put on the stream (client: RX writes;
                                  server: TX notifications), in order
    HandshakeComplete()           the channel is open
    Reply(request_id, result, payload)           client side
    IncomingRequest(request_id, type, payload)   server side

    class ClientSession:          the phone
        __init__(mobile_secret: bytes, *, rng=os.urandom, first_request_id=1)
        start() -> list[Send]                         client round one
        receive(data: bytes) -> list[Event]           any chunking
        request(type: int, payload: bytes = b"") -> tuple[int, list[Send]]
        connection_lost() -> ParticleCtrlError        what a dropped stream means now
        close(); is_open; pending_requests

    class ServerSession:          the device
        __init__(mobile_secret: bytes, *, rng=os.urandom)
        receive(data: bytes) -> list[Event]
        reply(request_id: int, result: int, payload: bytes = b"") -> list[Send]
        close(); is_open

Handshake order on the stream (§5.4): C→S round 1; S→C round 1 and round 2 back to back;
C→S round 2; C→S confirm; S→C confirm. The transcript hash covers the four round
payloads (without length prefixes) in the order cli_r1, srv_r1, srv_r2, cli_r2; the
server's confirm covers the client's confirm too. Then records (§5.3, §5.5).

Errors: :class:`HandshakeError` (its subclass :class:`WrongMobileSecretError` when a
confirm does not match), :class:`ChannelError` for broken framing or records. After any
error the session is dead: every later call raises :class:`ChannelError`. A usage error
(a reply to an unknown request, a request before the handshake) raises without killing.

A device with the wrong mobile secret never answers the client's confirm: Device OS
disconnects. A driver that sees the stream end calls :meth:`ClientSession.connection_lost`,
which returns :class:`WrongMobileSecretError` when the client was waiting for the
device's confirm, :class:`HandshakeError` earlier in the handshake and
:class:`ChannelError` once open.
"""

from __future__ import annotations

import enum
import hashlib
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, NoReturn, TypeAlias

from bluemule.particle_ctrl.cipher import (
    CLIENT_ID,
    CONFIRM_SIZE,
    SERVER_ID,
    ChannelCipher,
    confirmation,
    confirmations_match,
)
from bluemule.particle_ctrl.ecjpake import EcJpake, Role
from bluemule.particle_ctrl.errors import (
    ChannelError,
    HandshakeError,
    ParticleCtrlError,
    WrongMobileSecretError,
)
from bluemule.particle_ctrl.framing import (
    ReplyPlaintext,
    RequestPlaintext,
    SealedRecord,
    StreamReader,
    encode_handshake_packet,
    size_field,
)

MOBILE_SECRET_LENGTH: Final = 15
"""Device OS keys EC-JPAKE with exactly 15 bytes of the device secret (§5.4)."""
MAX_REQUEST_ID: Final = 0xFFFF

Rng: TypeAlias = Callable[[int], bytes]


@dataclass(frozen=True)
class Send:
    """Bytes to write to the stream, in the order given."""

    data: bytes


@dataclass(frozen=True)
class HandshakeComplete:
    """Key confirmation succeeded; requests and replies can flow."""


@dataclass(frozen=True)
class Reply:
    """The device answered request ``request_id`` (client side)."""

    request_id: int
    result: int
    """0 or a negative ``system_error_t`` (see :mod:`bluemule.particle_ctrl.results`)."""
    payload: bytes


@dataclass(frozen=True)
class IncomingRequest:
    """The phone sent a request (server side); answer it with :meth:`ServerSession.reply`."""

    request_id: int
    type: int
    payload: bytes


Event: TypeAlias = Send | HandshakeComplete | Reply | IncomingRequest


class _State(enum.Enum):
    NEW = "new"
    ROUND_ONE = "awaiting round one"
    ROUND_TWO = "awaiting round two"
    CONFIRM = "awaiting key confirmation"
    OPEN = "open"
    DEAD = "dead"


def _check_secret(mobile_secret: bytes) -> None:
    if len(mobile_secret) != MOBILE_SECRET_LENGTH:
        raise ValueError(
            f"a mobile secret has {MOBILE_SECRET_LENGTH} characters, not {len(mobile_secret)}"
        )


def _handshake(payload: bytes) -> Send:
    return Send(encode_handshake_packet(payload))


def _take(pending: Counter[int], request_id: int) -> bool:
    """Remove one pending ``request_id``; ``False`` if there was none."""
    count = pending.get(request_id, 0)
    if count == 0:
        return False
    if count == 1:
        del pending[request_id]
    else:
        pending[request_id] = count - 1
    return True


class _Session:
    """What both ends share: the stream reader, the transcript, the dead state."""

    _role: Role

    def __init__(self, mobile_secret: bytes, rng: Rng) -> None:
        _check_secret(mobile_secret)
        self._jpake: EcJpake | None = EcJpake(self._role, bytes(mobile_secret), rng=rng)
        self._reader = StreamReader()
        self._transcript = hashlib.sha256()
        self._cipher: ChannelCipher | None = None
        self._state = _State.NEW
        self._death: ParticleCtrlError | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(state={self._state.value!r})"

    @property
    def is_open(self) -> bool:
        """Whether the handshake completed and no error has closed the session."""
        return self._state is _State.OPEN

    def close(self) -> None:
        """End the session; later calls raise :class:`ChannelError`."""
        if self._state is not _State.DEAD:
            self._kill(ChannelError("the session was closed"))

    def _kill(self, error: ParticleCtrlError) -> None:
        self._state = _State.DEAD
        self._death = error
        self._jpake = None
        self._cipher = None

    def _check_alive(self) -> None:
        if self._state is _State.DEAD:
            raise ChannelError(f"the session is closed: {self._death}") from self._death

    def _fail(self, error: ParticleCtrlError) -> NoReturn:
        self._kill(error)
        raise error

    def _ecjpake(self) -> EcJpake:
        assert self._jpake is not None, "EC-JPAKE is only used during the handshake"
        return self._jpake

    def _open_cipher(self) -> ChannelCipher:
        assert self._cipher is not None, "records flow only once the channel is open"
        return self._cipher

    def receive(self, data: bytes) -> list[Event]:
        """Feed bytes from the stream (any chunking); return what they produced.

        Raises :class:`HandshakeError` or :class:`ChannelError` (then the session is dead).
        """
        self._check_alive()
        if self._state is _State.NEW:
            raise HandshakeError("start() the handshake before feeding bytes")
        self._reader.feed(data)
        events: list[Event] = []
        try:
            while self._step(events):
                pass
        except ParticleCtrlError as error:
            self._fail(error)
        return events

    def _step(self, events: list[Event]) -> bool:
        """Consume one message if complete; ``False`` when more bytes are needed."""
        if self._state is _State.OPEN:
            record = self._reader.next_record()
            if record is None:
                return False
            events.append(self._on_record(record))
            return True
        payload = self._reader.next_handshake_payload()
        if payload is None:
            return False
        events.extend(self._on_handshake(payload))
        return True

    def _on_handshake(self, payload: bytes) -> list[Event]:
        raise NotImplementedError

    def _on_record(self, record: SealedRecord) -> Event:
        raise NotImplementedError

    def _finish(self, secret: bytes) -> None:
        self._cipher = ChannelCipher(secret)
        self._jpake = None
        self._state = _State.OPEN


class ClientSession(_Session):
    """The phone's end of the channel (EC-JPAKE client)."""

    _role = Role.CLIENT

    def __init__(
        self, mobile_secret: bytes, *, rng: Rng = os.urandom, first_request_id: int = 1
    ) -> None:
        super().__init__(mobile_secret, rng)
        if not 0 <= first_request_id <= MAX_REQUEST_ID:
            raise ValueError(f"request id {first_request_id} does not fit a u16")
        self._next_id = first_request_id
        self._pending: Counter[int] = Counter()
        self._expected_confirm = b""
        self._secret = b""

    @property
    def pending_requests(self) -> int:
        """Requests sent and not answered yet."""
        return self._pending.total()

    def start(self) -> list[Send]:
        """Begin the handshake: the client's round one."""
        self._check_alive()
        if self._state is not _State.NEW:
            raise HandshakeError("the handshake has already started")
        round_one = self._ecjpake().write_round_one()
        self._transcript.update(round_one)
        self._state = _State.ROUND_ONE
        return [_handshake(round_one)]

    def _on_handshake(self, payload: bytes) -> list[Event]:
        jpake = self._ecjpake()
        if self._state is _State.ROUND_ONE:
            jpake.read_round_one(payload)
            self._transcript.update(payload)
            self._state = _State.ROUND_TWO
            return []
        if self._state is _State.ROUND_TWO:
            jpake.read_round_two(payload)
            self._transcript.update(payload)
            round_two = jpake.write_round_two()
            self._transcript.update(round_two)
            self._secret = jpake.derive_secret()
            confirm = confirmation(self._secret, CLIENT_ID, SERVER_ID, self._transcript.digest())
            self._transcript.update(confirm)
            self._expected_confirm = confirmation(
                self._secret, SERVER_ID, CLIENT_ID, self._transcript.digest()
            )
            self._state = _State.CONFIRM
            return [_handshake(round_two), _handshake(confirm)]
        # CONFIRM
        if len(payload) != CONFIRM_SIZE:
            raise HandshakeError(f"key confirmation of {len(payload)} bytes (32 expected)")
        if not confirmations_match(payload, self._expected_confirm):
            raise WrongMobileSecretError(
                "the device's key confirmation does not match: wrong mobile secret"
            )
        self._finish(self._secret)
        self._secret = b""
        return [HandshakeComplete()]

    def _on_record(self, record: SealedRecord) -> Event:
        plaintext = self._open_cipher().replies.open(record.aad, record.sealed)
        reply = ReplyPlaintext.decode(plaintext)
        if not _take(self._pending, reply.request_id):
            raise ChannelError(f"reply to request {reply.request_id}, which is not pending")
        return Reply(reply.request_id, reply.result, reply.payload)

    def request(self, type: int, payload: bytes = b"") -> tuple[int, list[Send]]:
        """Seal a request of ``type`` (a ``CTRL_REQUEST_*`` number); return its id and bytes.

        Ids count up from ``first_request_id`` (1 by default) and wrap from 65,535 to 0.
        Raises :class:`ChannelError` before the handshake completes or once dead,
        :class:`PayloadTooLargeError` above 65,535 bytes.
        """
        self._check_alive()
        if self._state is not _State.OPEN:
            raise ChannelError("the channel is not open: finish the handshake first")
        if not 0 <= type <= 0xFFFF:
            raise ValueError(f"request type {type} does not fit a u16")
        aad = size_field(len(payload))
        request_id = self._next_id
        try:
            sealed = self._open_cipher().requests.seal(
                aad, RequestPlaintext(request_id, type, bytes(payload)).encode()
            )
        except ChannelError as error:  # counter exhausted
            self._fail(error)
        self._next_id = (request_id + 1) % (MAX_REQUEST_ID + 1)
        self._pending[request_id] += 1
        return request_id, [Send(aad + sealed)]

    def connection_lost(self) -> ParticleCtrlError:
        """The stream ended: kill the session and return the error that explains it."""
        if self._state is _State.DEAD:
            assert self._death is not None
            return self._death
        error: ParticleCtrlError
        if self._state is _State.CONFIRM:
            error = WrongMobileSecretError(
                "the device closed the connection after our key confirmation: "
                "the mobile secret is most likely wrong"
            )
        elif self._state is _State.OPEN:
            error = ChannelError("the device closed the connection")
        else:
            error = HandshakeError(
                f"the device closed the connection during the handshake ({self._state.value})"
            )
        self._kill(error)
        return error


class ServerSession(_Session):
    """The device's end of the channel (EC-JPAKE server), as Device OS runs it."""

    _role = Role.SERVER

    def __init__(self, mobile_secret: bytes, *, rng: Rng = os.urandom) -> None:
        super().__init__(mobile_secret, rng)
        self._state = _State.ROUND_ONE
        self._pending: Counter[int] = Counter()

    def _on_handshake(self, payload: bytes) -> list[Event]:
        jpake = self._ecjpake()
        if self._state is _State.ROUND_ONE:
            jpake.read_round_one(payload)
            self._transcript.update(payload)
            round_one = jpake.write_round_one()
            self._transcript.update(round_one)
            round_two = jpake.write_round_two()
            self._transcript.update(round_two)
            self._state = _State.ROUND_TWO
            return [_handshake(round_one), _handshake(round_two)]
        if self._state is _State.ROUND_TWO:
            jpake.read_round_two(payload)
            self._transcript.update(payload)
            self._state = _State.CONFIRM
            return []
        # CONFIRM
        if len(payload) != CONFIRM_SIZE:
            raise HandshakeError(f"key confirmation of {len(payload)} bytes (32 expected)")
        secret = jpake.derive_secret()
        expected = confirmation(secret, CLIENT_ID, SERVER_ID, self._transcript.digest())
        if not confirmations_match(payload, expected):
            raise WrongMobileSecretError(
                "the phone's key confirmation does not match: wrong mobile secret"
            )
        self._transcript.update(payload)
        confirm = confirmation(secret, SERVER_ID, CLIENT_ID, self._transcript.digest())
        self._finish(secret)
        return [_handshake(confirm), HandshakeComplete()]

    def _on_record(self, record: SealedRecord) -> Event:
        plaintext = self._open_cipher().requests.open(record.aad, record.sealed)
        request = RequestPlaintext.decode(plaintext)
        self._pending[request.request_id] += 1
        return IncomingRequest(request.request_id, request.type, request.payload)

    def reply(self, request_id: int, result: int, payload: bytes = b"") -> list[Send]:
        """Seal the reply to a received request (``result`` 0 or a negative error code).

        Raises ``ValueError`` for a request that is not pending or a result outside
        i32, :class:`PayloadTooLargeError` above 65,535 bytes, :class:`ChannelError`
        when dead.
        """
        self._check_alive()
        if request_id not in self._pending:
            raise ValueError(f"request {request_id} is not pending")
        if not -(2**31) <= result < 2**31:
            raise ValueError(f"result {result} does not fit an i32")
        aad = size_field(len(payload))
        try:
            sealed = self._open_cipher().replies.seal(
                aad, ReplyPlaintext(request_id, result, bytes(payload)).encode()
            )
        except ChannelError as error:  # counter exhausted
            self._fail(error)
        _take(self._pending, request_id)
        return [Send(aad + sealed)]

"""The device role's answers to EVENTS_READ and EVENTS_ACK (``docs/protocol.md`` §11).

:class:`~bluemule.protocol.device_session.DeviceSession` dispatches these two opcodes
here; they share nothing with an update transfer, so events can be drained before or
after an update on the same connection.
"""

from __future__ import annotations

from typing import Final

from bluemule.protocol.constants import (
    ATT_HEADER_SIZE,
    EVENT_READ_HEADER_SIZE,
    MAX_ATT_MTU,
    Opcode,
    Status,
)
from bluemule.protocol.events import EventError, EventQueue, UnknownEventError
from bluemule.protocol.messages import Request, Response

EVENT_OPCODES: Final = frozenset({Opcode.EVENTS_READ, Opcode.EVENTS_ACK})
_MAX_CHUNK: Final = 0xFF


def max_chunk(mtu: int) -> int:
    """Record bytes per EVENTS_READ response at this ATT MTU (233 at 247, 8 at 23)."""
    return min(_MAX_CHUNK, min(mtu, MAX_ATT_MTU) - ATT_HEADER_SIZE - EVENT_READ_HEADER_SIZE)


def answer_event_request(queue: EventQueue, request: Request, mtu: int) -> Response:
    """The RESPONSE to an event request (``request.opcode`` in :data:`EVENT_OPCODES`)."""
    op, seq = request.opcode, request.seq
    try:
        if op == Opcode.EVENTS_ACK:
            left = queue.ack(int(request.args[0]))
            return Response(op, seq, Status.OK, (min(left, 0xFFFF),))
        from_sequence, offset = (int(a) for a in request.args)
        found = queue.read(from_sequence)
    except UnknownEventError as exc:
        return Response(op, seq, Status.UNKNOWN_EVENT, detail=exc.last)
    except EventError:
        return Response(op, seq, Status.FLASH_ERROR)
    if found is None:
        return Response(op, seq, Status.OK, (0, 0, 0))
    sequence, body = found
    if sequence != from_sequence:
        offset = 0  # another record than asked for: it is read from its start
    if offset > len(body):
        return Response(op, seq, Status.BAD_REQUEST, detail=len(body))
    chunk = body[offset : offset + max_chunk(mtu)]
    return Response(op, seq, Status.OK, (sequence, len(body), offset), chunk=chunk)

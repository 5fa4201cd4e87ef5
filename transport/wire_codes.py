"""Where each error meets the wire: its HTTP status (REST) and WebSocket close code.

The core (actors/errors.py) names a refusal and gives it a wire ``code``; what an HTTP
client or a WebSocket sees for it is decided here, in one table, and read by rest.py,
ws.py and openapi.py. docs/protocol.md documents every code (tests/test_docs.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from actors import errors
from actors.errors import CLOSE_GOING_AWAY as CLOSE_GOING_AWAY
from actors.errors import CLOSE_REPLACED as CLOSE_REPLACED
from actors.errors import CLOSE_ROOM_FAILED as CLOSE_ROOM_FAILED
from actors.errors import CLOSE_ROOM_MOVED as CLOSE_ROOM_MOVED

# Closes the transport makes without a refusal behind them (the core's own, which it
# hands to a ClientSink, are imported above so that this module lists every close code).
CLOSE_POLICY = 1008  # sustained flooding
CLOSE_TOO_BIG = 1009  # Tornado's own, for a frame over the hard cap
CLOSE_TRY_AGAIN = 1013  # slow reader


@dataclass(frozen=True, slots=True)
class WireCodes:
    http_status: int
    close_code: int


REFUSALS: dict[type[errors.JoinRefused], WireCodes] = {
    errors.InvalidRequest: WireCodes(400, 4400),
    errors.Unauthorized: WireCodes(401, 4401),
    errors.Forbidden: WireCodes(403, 4403),
    errors.ClientIdTaken: WireCodes(409, 4409),
    errors.RoomFull: WireCodes(409, 4429),
    errors.ServerFull: WireCodes(503, 4503),
    errors.ShuttingDown: WireCodes(503, CLOSE_GOING_AWAY),
    errors.RoomUnavailable: WireCodes(503, CLOSE_ROOM_FAILED),
    errors.RoomMoved: WireCodes(503, CLOSE_ROOM_MOVED),
    errors.TooManyRequests: WireCodes(429, CLOSE_POLICY),
}

# Every close code the service sends (tests/test_docs.py holds docs/protocol.md to it).
CLOSE_CODES: frozenset[int] = frozenset(
    {
        CLOSE_GOING_AWAY,
        CLOSE_REPLACED,
        CLOSE_ROOM_FAILED,
        CLOSE_ROOM_MOVED,
        CLOSE_POLICY,
        CLOSE_TOO_BIG,
        CLOSE_TRY_AGAIN,
    }
    | {codes.close_code for codes in REFUSALS.values()}
)


def wire_codes(error: type[errors.JoinRefused] | errors.JoinRefused) -> WireCodes:
    """The status and close code for a refusal (its nearest listed class: a subclass
    made later answers as its parent until it gets a row of its own)."""
    cls = error if isinstance(error, type) else type(error)
    for klass in cls.__mro__:
        if klass in REFUSALS:
            return REFUSALS[klass]
    return WireCodes(400, 4400)  # a bare JoinRefused: the client's request was refused


def http_status(error: type[errors.JoinRefused] | errors.JoinRefused) -> int:
    return wire_codes(error).http_status


def close_code(error: type[errors.JoinRefused] | errors.JoinRefused) -> int:
    return wire_codes(error).close_code

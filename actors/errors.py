"""Every error the service reports, with its wire code.

The tree::

    SignalingError                      code, message
    +-- FrameError                      answered with an error frame; the socket stays open
    |   +-- InvalidJson                 invalid-json
    |   +-- InvalidMessage              invalid-message (schema failure)
    |   +-- BinaryFrame                 binary-not-supported
    |   +-- FrameTooLarge               frame-too-large
    |   +-- FromMismatch                from-mismatch
    |   +-- UnknownPeer                 unknown-peer
    |   +-- PeerQueueFull               peer-queue-full (held messages for a stub at cap)
    |   +-- RateLimited                 rate-limited (closes with 1008 when sustained)
    +-- JoinRefused                     a join refused: REST answers a JSON error, WS closes
        +-- InvalidRequest              invalid-request
        +-- Unauthorized                unauthorized
        +-- Forbidden                   forbidden
        +-- ClientIdTaken               client-id-taken
        +-- RoomFull                    room-full
        +-- ServerFull                  server-full
        +-- ShuttingDown                shutting-down
        +-- RoomUnavailable             room-failed (retry)
        +-- RoomMoved                   room-moved (retry; cluster mode)
        +-- TooManyRequests             rate-limited

Which HTTP status and WebSocket close code each refusal is answered with is the
transport's business: transport/wire_codes.py, one table. The core keeps only the
close codes it hands a ClientSink itself (whose contract is a WebSocket close code):
the constants at the end. docs/protocol.md lists every code.
"""

from __future__ import annotations

from typing import ClassVar


class SignalingError(Exception):
    code: ClassVar[str] = "internal-error"
    message: ClassVar[str] = "internal error"

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or self.message
        super().__init__(self.detail)

    def to_wire(self) -> dict[str, str]:
        return {"code": self.code, "message": self.detail}


class FrameError(SignalingError):
    pass


class InvalidJson(FrameError):
    code = "invalid-json"
    message = "frame is not valid JSON"


class InvalidMessage(FrameError):
    code = "invalid-message"
    message = "frame does not match the message schema"


class BinaryFrame(FrameError):
    code = "binary-not-supported"
    message = "binary frames are not supported; send JSON text"


class FrameTooLarge(FrameError):
    code = "frame-too-large"
    message = "frame is larger than the configured limit"


class FromMismatch(FrameError):
    code = "from-mismatch"
    message = "'from' must be your own clientId or left out"


class UnknownPeer(FrameError):
    code = "unknown-peer"
    message = "no member with that clientId in this room"


class PeerQueueFull(FrameError):
    code = "peer-queue-full"
    message = "the peer has not connected yet and its held-message queue is full"


class RateLimited(FrameError):
    code = "rate-limited"
    message = "too many frames; slow down"


class JoinRefused(SignalingError):
    pass


class InvalidRequest(JoinRefused):
    code = "invalid-request"
    message = "invalid request"


class Unauthorized(JoinRefused):
    code = "unauthorized"
    message = "missing or invalid credentials"


class Forbidden(JoinRefused):
    code = "forbidden"
    message = "credentials do not grant this room or client"


class ClientIdTaken(JoinRefused):
    code = "client-id-taken"
    message = "that clientId is already in the room"


class RoomFull(JoinRefused):
    code = "room-full"
    message = "the room has reached its member limit"


class ServerFull(JoinRefused):
    code = "server-full"
    message = "the server has reached its room limit"


class ShuttingDown(JoinRefused):
    code = "shutting-down"
    message = "the server is shutting down; retry on another backend"


class RoomUnavailable(JoinRefused):
    code = "room-failed"
    message = "the room failed; retry"


class RoomMoved(JoinRefused):
    code = "room-moved"
    message = "the room moved to another backend or the cluster link is down; rejoin"


class TooManyRequests(JoinRefused):
    code = "rate-limited"
    message = "too many requests or connections from this address"


# Closes the core decides itself, through ClientSink.close (transport/wire_codes.py
# has the rest). Shutdown's 1001 is passed in by the transport (Shutdown, CloseAll) and
# named here only because the cluster relay closes with it too.
CLOSE_GOING_AWAY = 1001
CLOSE_REPLACED = 4410
CLOSE_ROOM_FAILED = 4500
CLOSE_ROOM_MOVED = 4502

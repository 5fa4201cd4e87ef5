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
    +-- JoinRefused                     REST: JSON error with http_status; WS: close_code
        +-- InvalidRequest              invalid-request   400 / 4400
        +-- Unauthorized                unauthorized      401 / 4401
        +-- Forbidden                   forbidden         403 / 4403
        +-- ClientIdTaken               client-id-taken   409 / 4409
        +-- RoomFull                    room-full         409 / 4429
        +-- ServerFull                  server-full       503 / 4503
        +-- ShuttingDown                shutting-down     503 / 1001
        +-- RoomUnavailable             room-failed       503 / 4500 (retry)
        +-- RoomMoved                   room-moved        503 / 4502 (retry; cluster mode)
        +-- TooManyRequests             rate-limited      429 / 1008

Close codes used without an error frame: 1001 server shutting down, 4410 replaced
by a newer connection of the same client, 4500 room failed (reconnect), 1013 slow
reader, 1009 frame over the hard cap, 4502 room moved to another backend or
the cluster link was lost (cluster mode; rejoin). docs/protocol.md lists them all.
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
    http_status: ClassVar[int] = 400
    close_code: ClassVar[int] = 4400


class InvalidRequest(JoinRefused):
    code = "invalid-request"
    message = "invalid request"


class Unauthorized(JoinRefused):
    code = "unauthorized"
    message = "missing or invalid credentials"
    http_status = 401
    close_code = 4401


class Forbidden(JoinRefused):
    code = "forbidden"
    message = "credentials do not grant this room or client"
    http_status = 403
    close_code = 4403


class ClientIdTaken(JoinRefused):
    code = "client-id-taken"
    message = "that clientId is already in the room"
    http_status = 409
    close_code = 4409


class RoomFull(JoinRefused):
    code = "room-full"
    message = "the room has reached its member limit"
    http_status = 409
    close_code = 4429


class ServerFull(JoinRefused):
    code = "server-full"
    message = "the server has reached its room limit"
    http_status = 503
    close_code = 4503


class ShuttingDown(JoinRefused):
    code = "shutting-down"
    message = "the server is shutting down; retry on another backend"
    http_status = 503
    close_code = 1001


class RoomUnavailable(JoinRefused):
    code = "room-failed"
    message = "the room failed; retry"
    http_status = 503
    close_code = 4500


class RoomMoved(JoinRefused):
    code = "room-moved"
    message = "the room moved to another backend or the cluster link is down; rejoin"
    http_status = 503
    close_code = 4502


class TooManyRequests(JoinRefused):
    code = "rate-limited"
    message = "too many requests or connections from this address"
    http_status = 429
    close_code = 1008


CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN = 1013
CLOSE_REPLACED = 4410
CLOSE_ROOM_FAILED = 4500
CLOSE_ROOM_MOVED = 4502

"""Every mailbox message the Hub and Room actors accept, and the replies they give.

Messages are frozen dataclasses (``actors.frozen``) sent with ``tell``; where the
sender needs an answer the message carries a ``reply`` future (a
``runtime.LoopFuture``) that the Room sets, so a join is answered by the Room itself
after the Hub forwarded it.
"""

from __future__ import annotations

from dataclasses import field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from actors.frozen import frozen
from actors.ids import ClientId, RoomId
from actors.sink import ClientSink

if TYPE_CHECKING:
    import pykka

    from actors.runtime import LoopFuture

T = TypeVar("T")


class Asking(Protocol[T]):
    """A message that carries a reply future (Reserve, Connect, Shutdown, GetRoom): what
    it is answered with, ``T``, is its ``reply``'s type, which ``ask_hub`` returns."""

    @property
    def reply(self) -> LoopFuture[T]: ...


class RoomRef(Protocol):
    """Where the transport tells a joined client's Relay and Disconnect: the Room's
    ActorRef, or in cluster mode a relay to the room's owner (transport/cluster_relay.py)."""

    def tell(self, message: Relay | Disconnect) -> None: ...


# -- joins and leaves: the transport tells the Hub, the Hub forwards to the Room --


@frozen
class Reserve:
    """REST join: hold ``client_id`` as a stub until its WebSocket arrives."""

    room_id: RoomId
    client_id: ClientId
    reply: LoopFuture[None] = field(repr=False)
    proof: int | None = None  # ``exp`` of the token issued with it


@frozen
class Connect:
    """A WebSocket arrived for ``client_id``; reply is ``Joined`` or a JoinRefused.

    ``proof``: the ``exp`` of the valid token the client showed, if any; it decides
    whether it may claim a reserved seat or take over its own open connection
    (see RoomState.connect).
    """

    room_id: RoomId
    client_id: ClientId
    sink: ClientSink = field(repr=False)
    reply: LoopFuture[Joined] = field(repr=False)
    proof: int | None = None


@frozen
class Disconnect:
    """The connection behind ``sink`` closed (only that connection: not a replacement).

    ``abnormal``: it dropped without a close handshake, so the member keeps its seat
    for the reconnect grace period.
    """

    room_id: RoomId
    client_id: ClientId
    sink: ClientSink = field(repr=False)
    abnormal: bool = False


@frozen
class Joined:
    """Reply to Connect: where to send this client's frames from now on."""

    room: RoomRef
    peers: tuple[ClientId, ...]


# -- room traffic: the transport tells the Room directly --


@frozen
class Relay:
    """A validated signaling frame from ``sender`` (``to`` None: every other member).

    ``data`` is the frame's ``data`` as encoded JSON, forwarded untouched.
    """

    sender: ClientId
    sink: ClientSink = field(repr=False)
    type: str
    to: ClientId | None
    data: bytes = field(repr=False)
    received_at: float = 0.0


@frozen
class ExpireStubs:
    """Timer tick: drop REST stubs whose WebSocket never came."""


@frozen
class CloseAll:
    """Close every client of the room (shutdown) and forget them."""

    code: int
    reason: str


# -- room to Hub --


@frozen
class RoomIdle:
    """The room has no members; ``joins_seen`` lets the Hub see a join still in flight."""

    room_id: RoomId
    room: pykka.ActorRef[Any]
    joins_seen: int


@frozen
class RoomFailed:
    room_id: RoomId
    room: pykka.ActorRef[Any]


# -- to the Hub from the server --


@frozen
class Shutdown:
    """Close every client with ``code``, stop every room; reply when done."""

    code: int
    reason: str
    reply: LoopFuture[None] = field(repr=False)


@frozen
class GetRoom:
    """Reply with the room's ref, or None (diagnostics and tests; never on a hot path)."""

    room_id: RoomId
    reply: LoopFuture[pykka.ActorRef[Any] | None] = field(repr=False)

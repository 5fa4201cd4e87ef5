"""The room's routing core: who is in the room and who receives what.

Plain code with no threads, timers or sockets (the sans-I/O idea): every method
takes the current time where it matters and returns the deliveries to make, so tests
drive it directly. ``room.Room`` is the actor shell that owns one of these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import orjson

from actors.errors import ClientIdTaken, FrameError, PeerQueueFull, RoomFull, UnknownPeer
from actors.frozen import frozen
from actors.ids import ClientId, RoomId
from actors.messages import Relay
from actors.seats import Take, claim_seat
from actors.sink import ClientSink


@dataclass(frozen=True, slots=True)
class RoomLimits:
    max_members: int = 16  # connected clients plus REST stubs
    stub_ttl: float = 30.0  # seconds a REST stub waits for its WebSocket
    max_held: int = 64  # frames held for one seat without a socket
    max_held_bytes: int = 128 * 1024  # and their bytes: a real call's held frames are ~20 KB
    reconnect_grace: float = 10.0  # seconds a dropped member keeps its seat before peer-left


@dataclass(slots=True)
class Member:
    client_id: ClientId
    # None while a REST stub waits for its WebSocket, or while a dropped client is
    # within its reconnect grace: frames addressed to it are held meanwhile.
    sink: ClientSink | None
    expires_at: float = math.inf
    # Emptied into the socket by connect(); dropped with the member (expire, close_all).
    # A list, not a deque: only appended, read whole and cleared, and an empty deque
    # costs 760 bytes per member (a 64-slot block) against a list's 56.
    held: list[bytes] = field(default_factory=list)
    held_bytes: int = 0
    announced: bool = False  # the others were sent peer-joined for it
    # ``exp`` of the token that established the seat (None: joined without one). A seat
    # with a proof is only claimed or taken over with a token at least as new.
    proof: int | None = None


@frozen
class Delivery:
    sink: ClientSink
    frame: bytes


@frozen
class RelayResult:
    """What became of one relayed frame: ``outcome`` is delivered, held or rejected.

    ``held`` copies were kept for seats without a socket (a broadcast keeps one for
    each member within its reconnect grace); ``overflow`` copies were refused because
    such a seat's queue was full.
    """

    deliveries: list[Delivery]
    outcome: str
    reason: str = ""
    held: int = 0
    overflow: int = 0


def encode(frame: dict[str, Any]) -> bytes:
    return orjson.dumps(frame)


def error_frame(error: FrameError) -> bytes:
    return encode({"type": "error", "data": error.to_wire()})


def signal_frame(type_: str, sender: str, data: bytes) -> bytes:
    """``{"type":..,"from":..,"data":..}`` spliced from parts that need no escaping: the
    type is one of three names, the sender a validated id (A-Z a-z 0-9 _ -), and
    ``data`` JSON the transport already encoded. Saves re-encoding every relayed SDP."""
    return b'{"type":"%s","from":"%s","data":%s}' % (type_.encode(), sender.encode(), data)


class RoomState:
    def __init__(self, room_id: RoomId, limits: RoomLimits) -> None:
        self.room_id = room_id
        self.limits = limits
        # Removed by disconnect() (a clean leave), expire() (a stub's TTL or a dropped
        # member's grace ran out: Room tells itself ExpireStubs for both) and close_all()
        # (shutdown, room failure). The Hub reaps the room once this is empty.
        self.members: dict[ClientId, Member] = {}

    @property
    def is_empty(self) -> bool:
        return not self.members

    def connected(self) -> list[Member]:
        return [m for m in self.members.values() if m.sink is not None]

    def reserve(self, client_id: ClientId, now: float, proof: int | None = None) -> None:
        """REST join: hold the id for ``stub_ttl`` seconds for the holder of the token
        that expires at ``proof``. Raises JoinRefused."""
        self._admit(client_id)
        self.members[client_id] = Member(client_id, None, now + self.limits.stub_ttl, proof=proof)

    def connect(
        self, client_id: ClientId, sink: ClientSink, proof: int | None = None
    ) -> tuple[list[ClientId], list[Delivery], ClientSink | None]:
        """A WebSocket arrived: returns the other connected peers, the frames to send,
        and the connection it replaced (to close) if any.

        ``proof`` is the expiry of the token the client showed, if any; whether it may
        claim a reserved or held seat, or take over a connected one (a reconnect the
        server has not noticed yet), is decided by ``seats.claim_seat``.

        The newcomer gets ``joined`` then, in order, whatever was held for it. The
        others get ``peer-joined`` only for a member they have not seen yet: a client
        coming back within its grace, or replacing its own connection, causes no
        presence churn.
        """
        member = self.members.get(client_id)
        claim = claim_seat(
            member is not None,
            member is not None and member.sink is not None,
            member.proof if member is not None else None,
            proof,
        )
        replaced = member.sink if member is not None and claim.take is Take.TAKE_OVER else None
        if member is None:
            self._admit(client_id)
            member = self.members[client_id] = Member(client_id, None)
        member.proof = claim.proof
        others = [m for m in self.connected() if m is not member]
        peers = [m.client_id for m in others]
        member.sink = sink
        member.expires_at = math.inf
        joined = {"roomId": self.room_id, "clientId": client_id, "peers": peers}
        out = [Delivery(sink, encode({"type": "joined", "data": joined}))]
        out.extend(Delivery(sink, frame) for frame in member.held)
        member.held.clear()
        member.held_bytes = 0
        if not member.announced:
            member.announced = True
            peer_joined = encode({"type": "peer-joined", "data": {"clientId": client_id}})
            out.extend(Delivery(m.sink, peer_joined) for m in others if m.sink is not None)
        return peers, out, replaced

    def disconnect(self, client_id: ClientId, sink: ClientSink, now: float, abnormal: bool) -> list[Delivery] | None:
        """The connection ``sink`` closed: ``peer-left`` for the others.

        After an ``abnormal`` drop (no close handshake) the member keeps its seat for
        ``reconnect_grace`` seconds, since its WebRTC session may well be alive; frames
        for it are held and ``peer-left`` waits for ``expire``. None when ``sink`` is not
        (or no longer) the member's connection: a newer connection is left alone.
        """
        member = self.members.get(client_id)
        if member is None or member.sink is not sink:
            return None
        if abnormal and self.limits.reconnect_grace > 0:
            member.sink = None
            member.expires_at = now + self.limits.reconnect_grace
            return []
        del self.members[client_id]
        return self._peer_left(client_id)

    def relay(self, msg: Relay) -> RelayResult:
        sender = self.members.get(msg.sender)
        if sender is None or sender.sink is not msg.sink:
            # The connection was replaced or has left; its frames in flight go nowhere.
            return RelayResult([], "rejected", "stale-sender")
        frame = signal_frame(msg.type, msg.sender, msg.data)
        if msg.to is None:
            return self._broadcast(sender, frame)
        target = self.members.get(msg.to)
        if target is None or target is sender:
            return self._reject(msg.sink, UnknownPeer(f"no other member {msg.to!r} in this room"))
        if target.sink is not None:
            return RelayResult([Delivery(target.sink, frame)], "delivered")
        if not self._hold(target, frame):
            return self._reject(msg.sink, PeerQueueFull())
        return RelayResult([], "held", held=1)

    def _broadcast(self, sender: Member, frame: bytes) -> RelayResult:
        out: list[Delivery] = []
        held = overflow = 0
        for member in self.members.values():
            if member is sender:
                continue
            if member.sink is not None:
                out.append(Delivery(member.sink, frame))
            elif member.announced:  # within its reconnect grace: it will want this
                if self._hold(member, frame):
                    held += 1
                else:
                    overflow += 1
        if out or held:
            return RelayResult(out, "delivered" if out else "held", held=held, overflow=overflow)
        return RelayResult([], "rejected", "peer-queue-full" if overflow else "no-recipients")

    def _hold(self, member: Member, frame: bytes) -> bool:
        """Keep ``frame`` for a seat without a socket, within its count and byte caps."""
        if len(member.held) >= self.limits.max_held or member.held_bytes + len(frame) > self.limits.max_held_bytes:
            return False
        member.held.append(frame)
        member.held_bytes += len(frame)
        return True

    def expire(self, now: float) -> tuple[list[ClientId], int, list[Delivery]]:
        """Drop stubs and dropped members past their time: returns their ids, how many
        held frames died with them, and ``peer-left`` for members the others had seen."""
        expired = [m for m in self.members.values() if m.sink is None and m.expires_at <= now]
        out: list[Delivery] = []
        for member in expired:
            del self.members[member.client_id]
        for member in expired:
            if member.announced:
                out.extend(self._peer_left(member.client_id))
        return [m.client_id for m in expired], sum(len(m.held) for m in expired), out

    def next_expiry(self) -> float | None:
        times = [m.expires_at for m in self.members.values() if m.sink is None]
        return min(times) if times else None

    def close_all(self) -> list[ClientSink]:
        """Forget every member; returns the sinks to close."""
        sinks = [m.sink for m in self.members.values() if m.sink is not None]
        self.members.clear()
        return sinks

    def _peer_left(self, client_id: ClientId) -> list[Delivery]:
        peer_left = encode({"type": "peer-left", "data": {"clientId": client_id}})
        return [Delivery(m.sink, peer_left) for m in self.connected() if m.sink is not None]

    def _admit(self, client_id: ClientId) -> None:
        if client_id in self.members:
            raise ClientIdTaken()
        if len(self.members) >= self.limits.max_members:
            raise RoomFull()

    @staticmethod
    def _reject(sink: ClientSink, error: FrameError) -> RelayResult:
        return RelayResult([Delivery(sink, error_frame(error))], "rejected", error.code)

"""The room's routing core: who is in the room and who receives what.

Plain code with no threads, timers or sockets (the sans-I/O idea): every method
takes the current time where it matters and returns the deliveries to make, so tests
drive it directly. ``room.Room`` is the actor shell that owns one of these.
"""

from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from actors.errors import ClientIdTaken, FrameError, PeerQueueFull, RoomFull, UnknownPeer
from actors.ids import ClientId, RoomId
from actors.messages import Relay
from actors.sink import ClientSink


@dataclass(frozen=True, slots=True)
class RoomLimits:
    max_members: int = 16  # connected clients plus REST stubs
    stub_ttl: float = 30.0  # seconds a REST stub waits for its WebSocket
    max_held: int = 64  # frames held for one stub


@dataclass(slots=True)
class Member:
    client_id: ClientId
    sink: ClientSink | None  # None while a REST stub waits for its WebSocket
    expires_at: float = math.inf
    held: deque[str] = field(default_factory=deque)


@dataclass(frozen=True, slots=True)
class Delivery:
    sink: ClientSink
    frame: str


@dataclass(frozen=True, slots=True)
class RelayResult:
    """What became of one relayed frame: ``outcome`` is delivered, held or rejected."""

    deliveries: list[Delivery]
    outcome: str
    reason: str = ""


def encode(frame: dict[str, Any]) -> str:
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


def error_frame(error: FrameError) -> str:
    return encode({"type": "error", "data": error.to_wire()})


class RoomState:
    def __init__(self, room_id: RoomId, limits: RoomLimits) -> None:
        self.room_id = room_id
        self.limits = limits
        self.members: dict[ClientId, Member] = {}

    @property
    def is_empty(self) -> bool:
        return not self.members

    def connected(self) -> list[Member]:
        return [m for m in self.members.values() if m.sink is not None]

    def reserve(self, client_id: ClientId, now: float) -> None:
        """REST join: hold the id for ``stub_ttl`` seconds. Raises JoinRefused."""
        self._admit(client_id)
        self.members[client_id] = Member(client_id, None, now + self.limits.stub_ttl)

    def connect(self, client_id: ClientId, sink: ClientSink) -> tuple[list[ClientId], list[Delivery]]:
        """A WebSocket arrived: returns the other connected peers and the frames to send.

        The newcomer gets ``joined`` then, in order, whatever was held for its stub;
        every other connected member gets ``peer-joined``.
        """
        member = self.members.get(client_id)
        if member is None:
            self._admit(client_id)
            member = self.members[client_id] = Member(client_id, None)
        elif member.sink is not None:
            raise ClientIdTaken()
        others = [m for m in self.connected() if m is not member]
        peers = [m.client_id for m in others]
        member.sink = sink
        member.expires_at = math.inf
        joined = {"roomId": self.room_id, "clientId": client_id, "peers": peers}
        out = [Delivery(sink, encode({"type": "joined", "data": joined}))]
        out.extend(Delivery(sink, frame) for frame in member.held)
        member.held.clear()
        peer_joined = encode({"type": "peer-joined", "data": {"clientId": client_id}})
        out.extend(Delivery(m.sink, peer_joined) for m in others if m.sink is not None)
        return peers, out

    def disconnect(self, client_id: ClientId, sink: ClientSink) -> list[Delivery] | None:
        """The connection ``sink`` closed: ``peer-left`` for the others.

        None when ``sink`` is not (or no longer) the member's connection: a newer
        connection of the same id is left alone.
        """
        member = self.members.get(client_id)
        if member is None or member.sink is not sink:
            return None
        del self.members[client_id]
        peer_left = encode({"type": "peer-left", "data": {"clientId": client_id}})
        return [Delivery(m.sink, peer_left) for m in self.connected() if m.sink is not None]

    def relay(self, msg: Relay) -> RelayResult:
        sender = self.members.get(msg.sender)
        if sender is None or sender.sink is not msg.sink:
            # The connection was replaced or has left; its frames in flight go nowhere.
            return RelayResult([], "rejected", "stale-sender")
        frame = encode({"type": msg.type, "from": msg.sender, "data": msg.data})
        if msg.to is None:
            out = [Delivery(m.sink, frame) for m in self.connected() if m is not sender and m.sink is not None]
            return RelayResult(out, "delivered" if out else "rejected", "" if out else "no-recipients")
        target = self.members.get(msg.to)
        if target is None or target is sender:
            return self._reject(msg.sink, UnknownPeer(f"no other member {msg.to!r} in this room"))
        if target.sink is not None:
            return RelayResult([Delivery(target.sink, frame)], "delivered")
        if len(target.held) >= self.limits.max_held:
            return self._reject(msg.sink, PeerQueueFull())
        target.held.append(frame)
        return RelayResult([], "held")

    def expire(self, now: float) -> tuple[list[ClientId], int]:
        """Drop stubs past their time: returns their ids and how many held frames died with them."""
        expired = [m for m in self.members.values() if m.sink is None and m.expires_at <= now]
        for member in expired:
            del self.members[member.client_id]
        return [m.client_id for m in expired], sum(len(m.held) for m in expired)

    def next_expiry(self) -> float | None:
        times = [m.expires_at for m in self.members.values() if m.sink is None]
        return min(times) if times else None

    def close_all(self) -> list[ClientSink]:
        """Forget every member; returns the sinks to close."""
        sinks = [m.sink for m in self.members.values() if m.sink is not None]
        self.members.clear()
        return sinks

    def _admit(self, client_id: ClientId) -> None:
        if client_id in self.members:
            raise ClientIdTaken()
        if len(self.members) >= self.limits.max_members:
            raise RoomFull()

    @staticmethod
    def _reject(sink: ClientSink, error: FrameError) -> RelayResult:
        return RelayResult([Delivery(sink, error_frame(error))], "rejected", error.code)

"""The Hub actor: the directory of live rooms and their supervisor.

It creates a Room on first use, forwards joins and leaves to it, reaps it when it
reports itself idle, and replaces it when it fails. Its mailbox orders joins against
reaps: a room is reaped only if every join the Hub forwarded to it has been handled
(``RoomIdle.joins_seen``), so a join that arrives at the same moment as the last
leave is never lost in a stopping room.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import pykka

from actors.errors import RoomMoved, RoomUnavailable, ServerFull, ShuttingDown
from actors.ids import RoomId
from actors.messages import (
    CloseAll,
    Connect,
    Disconnect,
    GetRoom,
    Reserve,
    RoomFailed,
    RoomIdle,
    Shutdown,
)
from actors.room import Room
from actors.room_state import RoomLimits
from actors.runtime import LoopActor, LoopInbox
from metrics.signaling import SignalingMetrics

if TYPE_CHECKING:
    from actors.cluster_room import LeaseGate

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _Entry:
    ref: pykka.ActorRef[Any]
    joins_sent: int = 0


class Hub(LoopActor):
    def __init__(
        self,
        metrics: SignalingMetrics,
        limits: RoomLimits | None = None,
        max_rooms: int = 10_000,
        room_class: type[Room] = Room,
        gate: LeaseGate | None = None,
    ) -> None:
        super().__init__()
        self.metrics = metrics
        self.limits = limits if limits is not None else RoomLimits()
        self.max_rooms = max_rooms
        self.room_class = room_class
        # Cluster mode: a room is created only under this backend's lease on it.
        self.gate = gate
        # Our own directory: Pykka's ActorRegistry is a global list with O(n) lookups.
        # Removed by _remove() only: when the room reports itself idle (then stopped),
        # when it failed, on shutdown, or when a join finds it dead.
        self.rooms: dict[RoomId, _Entry] = {}
        self.shutting_down = False
        metrics.watch_mailboxes(self.deepest_mailbox, lambda: len(self.actor_inbox))

    def deepest_mailbox(self) -> int:
        # Called at scrape time on the loop thread; reads sizes only, never the messages.
        # (Rooms are LoopActors: their inbox is a LoopInbox, which has a size.)
        return max((len(cast(LoopInbox, entry.ref.actor_inbox)) for entry in list(self.rooms.values())), default=0)

    def on_receive(self, message: object) -> None:
        match message:
            case Connect() | Reserve():
                self._forward_join(message)
            case Disconnect(room_id=room_id):
                entry = self.rooms.get(room_id)
                if entry is not None:  # else the room already failed or was shut down
                    entry.ref.tell(message)
            case RoomIdle(room_id=room_id, room=ref, joins_seen=seen):
                entry = self.rooms.get(room_id)
                if entry is not None and entry.ref is ref and entry.joins_sent == seen:
                    self._remove(room_id)
                    ref.tell(pykka.messages._ActorStop())  # after anything still queued there
            case RoomFailed(room_id=room_id, room=ref):
                logger.error("room failed; its clients were told to reconnect", extra={"room": room_id})
                self.metrics.room_failed()
                entry = self.rooms.get(room_id)
                if entry is not None and entry.ref is ref:
                    self._remove(room_id)
            case GetRoom(room_id=room_id, reply=reply):
                entry = self.rooms.get(room_id)
                reply.set(entry.ref if entry else None)
            case Shutdown(code=code, reason=reason, reply=reply):
                self.shutting_down = True
                for room_id in list(self.rooms):
                    ref = self.rooms[room_id].ref
                    self._remove(room_id)
                    ref.tell(CloseAll(code, reason))
                    ref.tell(pykka.messages._ActorStop())
                reply.set(None)
            case _:
                raise TypeError(f"Hub got an unexpected message {type(message).__name__}")

    def _forward_join(self, message: Connect | Reserve) -> None:
        if self.shutting_down:
            message.reply.set_exception((ShuttingDown, ShuttingDown(), None))
            return
        entry = self.rooms.get(message.room_id)
        if entry is not None and not entry.ref.is_alive():
            # The room failed and its RoomFailed is still behind us in the mailbox.
            self._remove(message.room_id)
            entry = None
        if entry is None:
            if len(self.rooms) >= self.max_rooms:
                message.reply.set_exception((ServerFull, ServerFull(), None))
                return
            if self.gate is not None and not self.gate.may_open(message.room_id):
                message.reply.set_exception((RoomMoved, RoomMoved(), None))
                return
            entry = self._create(message.room_id)
        entry.joins_sent += 1
        try:
            entry.ref.tell(message)
        except pykka.ActorDeadError:
            message.reply.set_exception((RoomUnavailable, RoomUnavailable(), None))

    def _create(self, room_id: RoomId) -> _Entry:
        ref = self.room_class.start(room_id, self.actor_ref, self.limits, self.metrics)
        entry = self.rooms[room_id] = _Entry(ref)
        self.metrics.room_opened()
        return entry

    def _remove(self, room_id: RoomId) -> None:
        entry = self.rooms.pop(room_id)
        self.metrics.room_closed()
        if self.gate is not None:
            self.gate.room_closed(room_id, entry.ref)

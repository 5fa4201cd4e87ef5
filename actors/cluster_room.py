"""Cluster mode's Room: the same actor, fenced by this backend's lease on the room.

A Room created in cluster mode delivers only while ``gate.may_deliver`` says the lease
is certainly ours (actors/ownership.py). Otherwise (the lease was lost, expired while the
process was paused, or is being released) it closes every member, local or remote,
with 4502 so they rejoin wherever the room lives now, refuses joins with ``room-moved``,
and reports itself idle so the Hub reaps it. No Redis here: the gate is a plain object
that transport/cluster.py implements.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar, NoReturn, Protocol

import pykka

from actors.errors import CLOSE_ROOM_MOVED, RoomMoved
from actors.ids import RoomId
from actors.messages import CloseAll, Connect, Relay, Reserve
from actors.room import Room

logger = logging.getLogger(__name__)


class LeaseGate(Protocol):
    def may_deliver(self, room_id: RoomId) -> bool:
        """Is this backend's lease on the room certainly valid right now?"""

    def may_open(self, room_id: RoomId) -> bool:
        """May the Hub create a Room for ``room_id`` (its lease was just claimed)?"""

    def room_started(self, room_id: RoomId, room: pykka.ActorRef[Any]) -> None:
        """A Room for ``room_id`` is live: where to tell ``LeaseLost``."""

    def room_closed(self, room_id: RoomId, room: pykka.ActorRef[Any]) -> None:
        """The Hub reaped (or lost) the room: release its lease."""


@dataclass(frozen=True, slots=True)
class LeaseLost:
    """The lease moved or could not be renewed: close everyone, deliver nothing more."""


class ClusterRoom(Room):
    gate: ClassVar[LeaseGate]

    def on_start(self) -> None:
        super().on_start()
        self.gate.room_started(self.room_id, self.actor_ref)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, LeaseLost):
            self._lose()
            return None
        if not isinstance(message, CloseAll) and not self.gate.may_deliver(self.room_id):
            # Checked before every message, presence (a leave, an expiry) included: a
            # backend waking from a pause finds its mailbox full of work for a room it
            # may no longer own, and its renewal timer has not run yet.
            self._lose()
            if isinstance(message, Relay):
                self.metrics.message(message.type, "rejected", "room-moved")
                return None
            if isinstance(message, (Connect, Reserve)):
                self._join(message, self._refuse)
                return None
            # Anything else (a leave, an expiry) finds the room empty now. (CloseAll, at
            # shutdown after the leases were released, closes with its own code: 1001.)
        return super().on_receive(message)

    @staticmethod
    def _refuse(message: Connect | Reserve) -> NoReturn:
        raise RoomMoved()

    def _lose(self) -> None:
        sinks = self.state.close_all()
        if sinks:
            logger.warning(
                "lease lost: closing %d members with %d", len(sinks), CLOSE_ROOM_MOVED, extra={"room": self.room_id}
            )
        for sink in sinks:
            sink.close(CLOSE_ROOM_MOVED, "room-moved: the room moved; rejoin")
        self.offers.clear()
        self._report_if_idle()


def bind(gate: LeaseGate) -> type[ClusterRoom]:
    """A ClusterRoom class bound to ``gate`` (the Hub starts rooms as ``cls.start(...)``)."""
    return type("ClusterRoom", (ClusterRoom,), {"gate": gate})

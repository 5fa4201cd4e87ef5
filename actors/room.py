"""The Room actor: owns one room's RoomState and delivers what it decides through sinks.

The Hub forwards joins and leaves here; the transport tells ``Relay`` frames here
directly. A Room never stops itself (a tell to a stopping actor would be dropped):
when it has no members it tells the Hub, and the Hub alone reaps it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, overload

import pykka

from actors.errors import CLOSE_REPLACED, CLOSE_ROOM_FAILED, JoinRefused, RoomUnavailable
from actors.ids import RoomId
from actors.messages import (
    CloseAll,
    Connect,
    Disconnect,
    ExpireStubs,
    Joined,
    Relay,
    Reserve,
    RoomFailed,
    RoomIdle,
)
from actors.room_state import Delivery, RoomLimits, RoomState
from actors.runtime import LoopActor, LoopFuture
from metrics.signaling import SignalingMetrics

logger = logging.getLogger(__name__)


class Room(LoopActor):
    def __init__(
        self,
        room_id: RoomId,
        hub: pykka.ActorRef[Any],
        limits: RoomLimits,
        metrics: SignalingMetrics,
    ) -> None:
        super().__init__()
        self.room_id = room_id
        self.state = RoomState(room_id, limits)
        self.hub = hub
        self.metrics = metrics
        # Joins (Reserve/Connect) handled so far: the Hub compares it with the joins it
        # forwarded before reaping, so a join in flight never lands in a stopped room.
        self.joins_seen = 0
        self.peak_members = 0
        # (offerer, answerer) -> when the offer was relayed: call-setup time per pair.
        # Popped by the answer; a leaving member's pairs are dropped on its Disconnect;
        # capped at max_members**2; gone with the Room.
        self.offers: dict[tuple[str, str], float] = {}

    def on_start(self) -> None:
        logger.info("room opened", extra={"room": self.room_id})

    def on_stop(self) -> None:
        self.metrics.room_peak_members(self.peak_members)
        logger.info("room closed", extra={"room": self.room_id})

    def on_receive(self, message: object) -> None:
        match message:
            case Relay():
                self._relay(message)
            case Connect():
                self._join(message, self._connect)
            case Reserve():
                self._join(message, self._reserve)
            case Disconnect(client_id=client_id, sink=sink, abnormal=abnormal):
                left = self.state.disconnect(client_id, sink, time.monotonic(), abnormal)
                if left is not None:
                    self.offers = {pair: t for pair, t in self.offers.items() if client_id not in pair}
                    if client_id in self.state.members:
                        logger.info("peer dropped; holding its seat", extra={"room": self.room_id, "client": client_id})
                        self.metrics.abnormal_disconnect()
                        self.tell_later(self.state.limits.reconnect_grace, ExpireStubs())
                    else:
                        logger.info("peer disconnected", extra={"room": self.room_id, "client": client_id})
                    self._deliver(left)
                self._report_if_idle()
            case ExpireStubs():
                self._expire()
            case CloseAll(code=code, reason=reason):
                for sink in self.state.close_all():
                    sink.close(code, reason)
            case _:
                # Only our own code sends here: anything else is a bug, so let it fail the room.
                raise TypeError(f"Room got an unexpected message {type(message).__name__}")

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # The room's state can no longer be trusted: close its clients with a code that
        # tells them to reconnect, fail the joins still queued here, tell the Hub.
        self.metrics.room_peak_members(self.peak_members)
        for sink in self.state.close_all():
            sink.close(CLOSE_ROOM_FAILED, "room failed; reconnect")
        while not self.actor_inbox.empty():
            pending = self.actor_inbox.get().message
            if isinstance(pending, (Connect, Reserve)):
                pending.reply.set_exception((RoomUnavailable, RoomUnavailable(), None))
            elif isinstance(pending, Relay):
                self.metrics.message(pending.type, "rejected", "room-failed")
                self.metrics.frame_relayed("rejected")
        self.hub.tell(RoomFailed(self.room_id, self.actor_ref))

    @overload
    def _join(self, message: Connect, handler: Callable[[Connect], Joined]) -> None: ...

    @overload
    def _join(self, message: Reserve, handler: Callable[[Reserve], None]) -> None: ...

    def _join(self, message: Connect | Reserve, handler: Callable[[Any], Joined | None]) -> None:
        """Answer a join with what ``handler`` decides (the overloads tie each message to
        the reply its ``reply`` future takes), or with the refusal it raised."""
        self.joins_seen += 1
        reply: LoopFuture[Any] = message.reply
        try:
            result = handler(message)
        except JoinRefused as refused:
            reply.set_exception((type(refused), refused, None))
            self._report_if_idle()
            return
        except BaseException:
            # A bug: the caller gets a retryable refusal, then the room fails as usual.
            reply.set_exception((RoomUnavailable, RoomUnavailable(), None))
            raise
        reply.set(result)

    def _connect(self, message: Connect) -> Joined:
        seat = self.state.members.get(message.client_id)
        resumed = seat is not None and seat.sink is None and seat.announced
        peers, deliveries, replaced = self.state.connect(message.client_id, message.sink, message.proof)
        if resumed:
            self.metrics.held_seat_ended("resumed")
        if replaced is not None:
            self.metrics.connection_replaced()
        self.peak_members = max(self.peak_members, len(peers) + 1)
        logger.info(
            "peer %s",
            "reconnected" if replaced or resumed else "connected",
            extra={"room": self.room_id, "client": message.client_id},
        )
        if replaced is not None:
            replaced.close(CLOSE_REPLACED, "replaced: a newer connection of this client took over")
        self._deliver(deliveries)
        return Joined(self.actor_ref, tuple(peers))

    def _reserve(self, message: Reserve) -> None:
        self.state.reserve(message.client_id, time.monotonic(), message.proof)
        self.tell_later(self.state.limits.stub_ttl, ExpireStubs())

    def _relay(self, message: Relay) -> None:
        result = self.state.relay(message)
        self._deliver(result.deliveries)
        if result.deliveries and result.outcome == "delivered":
            self.metrics.message(message.type, "delivered", "", len(result.deliveries))
        if result.held:
            self.metrics.message(message.type, "held", "", result.held)
        if result.overflow:
            self.metrics.message(message.type, "rejected", "peer-queue-full", result.overflow)
        if result.outcome == "rejected":
            self.metrics.message(message.type, "rejected", result.reason)
        self.metrics.frame_relayed(result.outcome)
        if result.outcome == "delivered" and message.received_at:
            self.metrics.relay_latency(time.perf_counter() - message.received_at)
            if message.to is not None:
                self._time_call_setup(message)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "relay %s %s -> %s: %s%s",
                message.type,
                message.sender,
                message.to or "*",
                result.outcome,
                f" ({result.reason})" if result.reason else "",
                extra={"room": self.room_id, "client": message.sender},
            )

    def _time_call_setup(self, message: Relay) -> None:
        if message.type == "offer":
            if len(self.offers) < self.state.limits.max_members**2:  # bounded by the pairs possible
                self.offers[(message.sender, message.to)] = message.received_at  # type: ignore[index]
        elif message.type == "answer":
            offered = self.offers.pop((message.to, message.sender), None)  # type: ignore[arg-type]
            if offered is not None:
                self.metrics.call_setup(time.perf_counter() - offered)

    def _expire(self) -> None:
        now = time.monotonic()
        held_seats = {m.client_id for m in self.state.members.values() if m.sink is None and m.announced}
        expired, dropped, left = self.state.expire(now)
        due = self.state.next_expiry()
        if not expired and due is not None and due > now:
            # Early: the loop's clock can trail time.monotonic() (uvloop's is cached per
            # iteration, in whole ms), so a timer may fire just before its seat is due.
            # Without another look that seat (a ghost member, a stub keeping its room
            # alive) would never expire.
            self.tell_later(due - now, ExpireStubs())
        for _ in held_seats.intersection(expired):
            self.metrics.held_seat_ended("expired")
        self._deliver(left)
        if expired:
            logger.info(
                "seats expired without a socket: %s (%d held frames dropped)",
                ",".join(expired),
                dropped,
                extra={"room": self.room_id},
            )
            self.metrics.held_expired(dropped)
        self._report_if_idle()

    def _report_if_idle(self) -> None:
        if self.state.is_empty:
            self.hub.tell(RoomIdle(self.room_id, self.actor_ref, self.joins_seen))

    @staticmethod
    def _deliver(deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            delivery.sink.send(delivery.frame)

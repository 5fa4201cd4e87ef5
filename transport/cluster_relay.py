"""Cluster mode's cross-backend relay: remote attachments, both ends. No Redis import.

A backend plays two roles, for different rooms. As the *edge* (a socket here, its room
owned elsewhere) it keeps an ``EdgeAttachment`` per socket and hands the WebSocket
handler a ``RemoteRoom`` to tell instead of a Room actor. As the *owner* it keeps an
``OwnedAttachment`` per remote member, whose sink in the Room is a ``RemoteSink``.
Messages travel as envelopes (actors/ownership.py) through a ``Link``: in production
transport/cluster.py, which publishes them to Redis in order and feeds ``handle`` with
what arrives on this backend's channel.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import pykka

from actors import errors
from actors.errors import JoinRefused, RoomMoved
from actors.ids import ClientId, RoomId
from actors.messages import Connect, Disconnect, Joined, Relay, Reserve
from actors.ownership import (
    CLOSE,
    CONNECT,
    FRAME,
    JOINED,
    LEAVE,
    REFUSED,
    RELAY,
    RESERVE,
    Remote,
    accept_from_owner,
    channel,
    envelope,
    superseded,
)
from actors.remote_sink import RemoteSink
from actors.runtime import LoopFuture
from actors.sink import ClientSink
from metrics.signaling import ClusterMetrics, SignalingMetrics

# How long an edge waits for the owner to answer a remote join or reservation, and how
# long an owner waits for its Room to answer one.
REMOTE_JOIN_TIMEOUT = 5.0
JOIN_TIMEOUT = 10.0
# Unknown attachments answered (LEAVE or CLOSE) that are remembered, so that one is
# answered once per burst of frames.
ANSWERED_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class _JoinIn:
    """A join or reserve from another backend's client, as the owner reads it."""

    edge: str
    att_id: str
    room_id: RoomId
    client_id: ClientId
    epoch: int
    proof: int | None
    reply_to: str


class SocketClosed(RoomMoved):
    """The socket was closed (4502) while its join was being answered: the join must not
    be retried with it (transport/cluster.py), the client rejoins."""


class Link(Protocol):
    """What the relay needs of the Redis link."""

    @property
    def up(self) -> bool:
        """Is the link up (else every publish is dropped and counted)?"""

    def publish(self, to_channel: str, message: bytes) -> None:
        """Queue ``message`` for ``to_channel``, in order, without blocking."""

    def open_epoch(self, room_id: RoomId) -> int | None:
        """The epoch of our lease on ``room_id`` if it may admit members now, else None."""


@dataclass(slots=True, eq=False)
class EdgeAttachment:
    """A socket on this backend whose room is owned by ``owner`` under ``epoch``."""

    id: str
    room_id: RoomId
    client_id: ClientId
    owner: str
    epoch: int
    sink: ClientSink
    active: bool = True
    delivered: bool = False  # a frame reached the socket (the owner's `joined` precedes its answer)


@dataclass(slots=True, eq=False)
class OwnedAttachment:
    """A member of one of our rooms whose socket is on backend ``edge``."""

    room_id: RoomId
    client_id: ClientId
    sink: RemoteSink
    room: pykka.ActorRef[Any] | None = None  # set when the Room answered the Connect


class RemoteRoom:
    """What the WebSocket handler tells instead of a Room actor when the room is
    elsewhere: its Relay and Disconnect go to the owner's channel, in order."""

    def __init__(self, relays: Relays, attachment: EdgeAttachment) -> None:
        self.relays = relays
        self.attachment = attachment

    def tell(self, message: Any) -> None:
        self.relays.edge_message(self.attachment, message)


class Relays:
    """Both ends of every remote attachment of this backend, on the loop thread."""

    def __init__(self, backend_id: str, link: Link, metrics: SignalingMetrics, cm: ClusterMetrics) -> None:
        self.backend_id = backend_id
        self.link = link
        self.metrics = metrics
        self.cm = cm
        self.hub: pykka.ActorRef[Any] | None = None
        self.edge: dict[str, EdgeAttachment] = {}
        self.edge_rooms: dict[RoomId, set[str]] = {}  # room -> its edge attachments (claims scan one room)
        self.pending: dict[str, tuple[asyncio.Future[Any], str]] = {}  # attachment -> (answer, owner)
        self.owned: dict[tuple[str, str], OwnedAttachment] = {}  # (edge backend, attachment) ->
        self.tasks: set[asyncio.Task[Any]] = set()
        # Remote attachments dropped while our link was down, to announce when it is back:
        # (owner, attachment) we closed as the edge, (edge, attachment) we dropped as owner.
        self.unsent_leaves: list[tuple[str, str]] = []
        self.unsent_closes: list[tuple[str, str]] = []
        self.answered: dict[tuple[str, str], None] = {}  # unknown attachments told, oldest first
        self.seq = itertools.count(1)
        self._handlers: dict[str, Callable[[dict[str, Any], bytes], None]] = {
            FRAME: self._frame_in,
            CLOSE: self._close_in,
            JOINED: self._answer_in,
            REFUSED: self._answer_in,
            CONNECT: self._connect_in,
            RESERVE: self._reserve_in,
            RELAY: self._relay_in,
            LEAVE: self._leave_in,
        }

    def handle(self, header: dict[str, Any], payload: bytes) -> bool:
        """One envelope from our channel; False if its kind is unknown. Raises KeyError,
        TypeError or ValueError for a malformed one."""
        handler = self._handlers.get(header["k"])
        if handler is None:
            return False
        handler(header, payload)
        return True

    # -- the link's events --

    def link_lost(self) -> None:
        """Frames may have been lost both ways: fail the joins waiting for an owner, close
        the sockets of rooms owned elsewhere (4502), drop remote members (abnormally: their
        seats are held for the reconnect grace). The other side's link may well be up and
        it has no way to notice: link_restored tells it."""
        self.unsent_leaves += [(a.owner, a.id) for a in self.edge.values() if a.active]
        self.close_all(errors.CLOSE_ROOM_MOVED, "room-moved: cluster link lost; rejoin")
        for att_id, (future, _) in list(self.pending.items()):  # reservations, and joins failed above
            if not future.done():
                future.set_exception(RoomMoved("cluster link lost; retry"))
            self.pending.pop(att_id, None)
        self.unsent_closes += list(self.owned)
        for key in list(self.owned):
            self.drop_owned(key)

    def link_restored(self) -> None:
        """The link is back: an abnormal LEAVE to the owner of every socket we closed (its
        Room holds the seat for the reconnect grace, then says peer-left), and a 4502
        CLOSE to the edge of every remote member we dropped (its client rejoins)."""
        leaves, self.unsent_leaves = self.unsent_leaves, []
        closes, self.unsent_closes = self.unsent_closes, []
        for owner, att_id in leaves:
            self._leave_to(owner, att_id, abnormal=True)
        for edge, att_id in closes:
            self._close_to(edge, att_id)

    def _first_answer(self, backend: str, att_id: str) -> bool:
        """Answer a burst of frames for one unknown attachment once, not once per frame
        (the answer is idempotent; the memory of it is bounded)."""
        key = (backend, att_id)
        if key in self.answered:
            return False
        self.answered[key] = None
        if len(self.answered) > ANSWERED_LIMIT:
            del self.answered[next(iter(self.answered))]
        return True

    def _leave_to(self, owner: str, att_id: str, abnormal: bool) -> None:
        self.link.publish(channel(owner), envelope({"k": LEAVE, "b": self.backend_id, "a": att_id, "ab": abnormal}))

    def _close_to(self, edge: str, att_id: str) -> None:
        """A 4502 for an attachment the owner no longer knows (no epoch: not a fenced frame)."""
        self.link.publish(
            channel(edge),
            envelope(
                {
                    "k": CLOSE,
                    "a": att_id,
                    "code": errors.CLOSE_ROOM_MOVED,
                    "reason": "room-moved: the room's owner lost track of you; rejoin",
                }
            ),
        )

    def close_all(self, code: int, reason: str) -> None:
        for attachment in list(self.edge.values()):
            self.close_edge(attachment, code, reason)

    def room_claimed(self, room_id: RoomId) -> None:
        """We own the room now: attachments of ours to its previous owner are stale."""
        for attachment in self._in_room(room_id):
            self.close_edge(attachment, errors.CLOSE_ROOM_MOVED, "room-moved: the room moved here; rejoin")

    def _add_edge(self, attachment: EdgeAttachment) -> None:
        self.edge[attachment.id] = attachment
        self.edge_rooms.setdefault(attachment.room_id, set()).add(attachment.id)

    def _pop_edge(self, att_id: str) -> EdgeAttachment | None:
        attachment = self.edge.pop(att_id, None)
        if attachment is not None:
            ids = self.edge_rooms.get(attachment.room_id)
            if ids is not None:
                ids.discard(att_id)
                if not ids:
                    del self.edge_rooms[attachment.room_id]
        return attachment

    def _in_room(self, room_id: RoomId) -> list[EdgeAttachment]:
        return [self.edge[i] for i in self.edge_rooms.get(room_id, ())]

    def peers(self) -> list[str]:
        """Backends we exchange frames with: owners of our sockets' rooms, edges of our members."""
        return sorted({a.owner for a in self.edge.values()} | {edge for edge, _ in self.owned})

    def owner_seen(self, room_id: RoomId, owner: str, epoch: int) -> None:
        """A claim answer named the room's owner: attachments made under an older epoch
        (or another owner under the same one) are stale."""
        for attachment in self._in_room(room_id):
            if superseded(attachment.owner, attachment.epoch, owner, epoch):
                self.close_edge(attachment, errors.CLOSE_ROOM_MOVED, "room-moved: the room's owner changed; rejoin")

    def check_owners(self, attachments: list[EdgeAttachment], holders: dict[RoomId, tuple[str, int] | None]) -> None:
        """Close every attachment whose room's lease (read after it was made) names
        another holder or epoch: the owner died, drained, or lost the room."""
        for attachment in attachments:
            if holders[attachment.room_id] != (attachment.owner, attachment.epoch):
                self.close_edge(attachment, errors.CLOSE_ROOM_MOVED, "room-moved: the room's owner changed; rejoin")

    def peer_gone(self, backend: str) -> None:
        """Nobody listens on a backend's channel: it died or lost its link. Its frames
        can no longer arrive, nor ours reach it."""
        for attachment in list(self.edge.values()):  # joins among them fail (close_edge)
            if attachment.owner == backend:
                self.close_edge(attachment, errors.CLOSE_ROOM_MOVED, "room-moved: the room's owner is gone; rejoin")
        for future, owner in list(self.pending.values()):  # reservations
            if owner == backend and not future.done():
                future.set_exception(RoomMoved("the room's owner is unreachable; retry"))
        for key in [k for k in self.owned if k[0] == backend]:
            self.drop_owned(key)

    # -- edge side: sockets here, rooms elsewhere --

    async def reserve_remote(self, route: Remote, room_id: RoomId, client_id: ClientId, proof: int | None) -> None:
        att_id = f"s{next(self.seq)}"
        header = {
            "k": RESERVE,
            "b": self.backend_id,
            "a": att_id,
            "r": room_id,
            "c": client_id,
            "e": route.epoch,
            "p": proof,
        }
        await self.request(att_id, route.owner, header)

    async def join_remote(
        self, route: Remote, room_id: RoomId, client_id: ClientId, sink: ClientSink, proof: int | None
    ) -> Joined:
        att_id = str(next(self.seq))
        attachment = EdgeAttachment(att_id, room_id, client_id, route.owner, route.epoch, sink)
        # Registered before asking: the owner's `joined` frame comes before its answer.
        self._add_edge(attachment)
        header = {
            "k": CONNECT,
            "b": self.backend_id,
            "a": att_id,
            "r": room_id,
            "c": client_id,
            "e": route.epoch,
            "p": proof,
        }
        try:
            await self.request(att_id, route.owner, header)
        except BaseException:
            if self._pop_edge(att_id) is not None and self.link.up:
                # It may still land at the owner: undo it there, in order.
                self.link.publish(channel(route.owner), envelope({"k": LEAVE, "b": self.backend_id, "a": att_id}))
            raise
        if not attachment.active:  # closed between the answer and here (link lost, owner gone)
            raise SocketClosed("the room's owner changed; rejoin")
        return Joined(RemoteRoom(self, attachment), ())

    async def request(self, att_id: str, owner: str, header: dict[str, Any]) -> None:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[att_id] = (future, owner)
        try:
            self.link.publish(channel(owner), envelope(header))
            if not self.link.up:
                raise RoomMoved("cluster link down; retry")
            try:
                await asyncio.wait_for(future, REMOTE_JOIN_TIMEOUT)
            except TimeoutError:
                raise RoomMoved("the room's owner did not answer; retry") from None
        finally:
            self.pending.pop(att_id, None)

    def edge_message(self, attachment: EdgeAttachment, message: Any) -> None:
        """From the WebSocket handler, through RemoteRoom.tell."""
        match message:
            case Relay():
                if not attachment.active:
                    self.metrics.message(message.type, "rejected", "room-moved")
                    return
                header = {"k": RELAY, "b": self.backend_id, "a": attachment.id, "t": message.type, "to": message.to}
                self.link.publish(channel(attachment.owner), envelope(header, message.data))
            case Disconnect(abnormal=abnormal):
                if attachment.active:
                    attachment.active = False
                    self._pop_edge(attachment.id)
                    self.link.publish(
                        channel(attachment.owner),
                        envelope({"k": LEAVE, "b": self.backend_id, "a": attachment.id, "ab": abnormal}),
                    )
            case _:
                raise TypeError(f"RemoteRoom got an unexpected message {type(message).__name__}")

    def close_edge(self, attachment: EdgeAttachment, code: int, reason: str) -> None:
        """Close a socket whose room is elsewhere, and tell the owner it left."""
        if not attachment.active:
            return
        attachment.active = False
        self._pop_edge(attachment.id)
        if self.link.up:
            self._leave_to(attachment.owner, attachment.id, abnormal=False)
        entry = self.pending.get(attachment.id)
        if entry is not None and not entry[0].done():
            if not attachment.delivered:
                # Still joining and the client has seen nothing: fail the join instead;
                # Cluster.join retries it (the room moved) or answers the socket. Closing
                # the socket too would race that retry, which could then join the room
                # with a closed socket.
                entry[0].set_exception(RoomMoved("the room's owner changed; retry"))
                return
            # The client already has the owner's `joined` frame: close it; not retried.
            entry[0].set_exception(SocketClosed("the room's owner changed; rejoin"))
        attachment.sink.close(code, reason)

    def _frame_in(self, header: dict[str, Any], payload: bytes) -> None:
        attachment = self.edge.get(header["a"])
        if attachment is None:
            # The socket left (the owner has its LEAVE, or will), or we dropped it while our
            # link was down and the owner never heard: tell it (again) so it keeps no ghost.
            self.cm.dropped("unknown-attachment")
            owner = header.get("o")
            if owner is not None and self._first_answer(str(owner), str(header["a"])):
                self._leave_to(str(owner), str(header["a"]), abnormal=True)
            return
        if not accept_from_owner(attachment.epoch, int(header["e"])):
            self.cm.dropped("stale-epoch")
            self.close_edge(attachment, errors.CLOSE_ROOM_MOVED, "room-moved: frame from a former owner; rejoin")
            return
        attachment.delivered = True
        attachment.sink.send(payload)

    def _close_in(self, header: dict[str, Any], payload: bytes = b"") -> None:
        attachment = self.edge.get(header["a"])
        if attachment is None:
            self.cm.dropped("unknown-attachment")
            return
        attachment.active = False
        self._pop_edge(attachment.id)
        if self.link.up:  # so the owner forgets the attachment (the Room already has)
            self._leave_to(attachment.owner, attachment.id, abnormal=False)
        code, reason = int(header["code"]), str(header["reason"])
        epoch = header.get("e")  # absent: the owner answers for an attachment it lost
        if epoch is not None and not accept_from_owner(attachment.epoch, int(epoch)):
            self.cm.dropped("stale-epoch")
            code = errors.CLOSE_ROOM_MOVED
        elif code == errors.CLOSE_GOING_AWAY:
            # The owner is shutting down, not this backend: the room moves, the client
            # rejoins here or anywhere (docs/cluster.md).
            code, reason = errors.CLOSE_ROOM_MOVED, "room-moved: the room's owner is shutting down; rejoin"
        if not 1000 <= code <= 4999:
            code = errors.CLOSE_ROOM_MOVED
        attachment.sink.close(code, reason)

    def _answer_in(self, header: dict[str, Any], payload: bytes = b"") -> None:
        entry = self.pending.get(header["a"])
        if entry is None or entry[0].done():
            self.cm.dropped("unknown-attachment")  # we gave up waiting; our LEAVE undoes it
            return
        future = entry[0]
        if header["k"] == JOINED:
            future.set_result(None)
        else:
            future.set_exception(_refusal(str(header["code"]), str(header.get("message", ""))))

    # -- owner side: our rooms, sockets elsewhere --

    def _join_in(self, header: dict[str, Any]) -> _JoinIn | None:
        """A remote join or reserve, read from its header; None (the edge refused with
        room-moved) if the room is not, or no longer, ours under the epoch it names."""
        edge, att_id = str(header["b"]), str(header["a"])
        room_id, epoch, proof = RoomId(header["r"]), int(header["e"]), header.get("p")
        reply_to = channel(edge)
        if self.link.open_epoch(room_id) != epoch:
            self.link.publish(reply_to, envelope({"k": REFUSED, "a": att_id, "code": RoomMoved.code}))
            return None
        return _JoinIn(
            edge, att_id, room_id, ClientId(header["c"]), epoch, int(proof) if proof is not None else None, reply_to
        )

    def _connect_in(self, header: dict[str, Any], payload: bytes = b"") -> None:
        join = self._join_in(header)
        if join is None:
            return
        key = (join.edge, join.att_id)
        sink = RemoteSink(self.link.publish, join.reply_to, join.att_id, join.epoch, join.client_id, self.backend_id)
        owned = self.owned[key] = OwnedAttachment(join.room_id, join.client_id, sink)
        reply: LoopFuture[Joined] = LoopFuture()
        if not self._tell_hub(
            Connect(join.room_id, join.client_id, sink, reply, join.proof), join.reply_to, join.att_id
        ):
            self.owned.pop(key, None)
            return
        self._answer_when_done(reply, join.reply_to, join.att_id, key, owned)

    def _reserve_in(self, header: dict[str, Any], payload: bytes = b"") -> None:
        join = self._join_in(header)
        if join is None:
            return
        reply: LoopFuture[None] = LoopFuture()
        if not self._tell_hub(Reserve(join.room_id, join.client_id, reply, join.proof), join.reply_to, join.att_id):
            return
        self._answer_when_done(reply, join.reply_to, join.att_id, None, None)

    def _tell_hub(self, message: Connect | Reserve, reply_to: str, att_id: str) -> bool:
        """False (and the edge refused with shutting-down) if the Hub has stopped."""
        try:
            assert self.hub is not None
            self.hub.tell(message)
        except pykka.ActorDeadError:  # this backend is shutting down: the client rejoins elsewhere
            self.link.publish(reply_to, envelope({"k": REFUSED, "a": att_id, "code": errors.ShuttingDown.code}))
            return False
        return True

    def _answer_when_done(
        self,
        reply: LoopFuture[Any],
        reply_to: str,
        att_id: str,
        key: tuple[str, str] | None,
        owned: OwnedAttachment | None,
    ) -> None:
        async def answer() -> None:
            try:
                result = await reply.result(JOIN_TIMEOUT)
            except JoinRefused as refused:
                if key is not None:
                    self.owned.pop(key, None)
                self.link.publish(
                    reply_to, envelope({"k": REFUSED, "a": att_id, "code": refused.code, "message": refused.detail})
                )
                return
            except TimeoutError:
                if key is not None and self.owned.get(key) is owned:
                    self.drop_owned(key)
                self.link.publish(reply_to, envelope({"k": REFUSED, "a": att_id, "code": errors.RoomUnavailable.code}))
                return
            if owned is not None and key is not None:
                if self.owned.get(key) is not owned:  # it left (or the link dropped) meanwhile
                    if isinstance(result, Joined):
                        try:
                            result.room.tell(Disconnect(owned.room_id, owned.client_id, owned.sink))
                        except pykka.ActorDeadError:
                            pass  # the room is gone, and the member with it
                    return
                owned.room = result.room
            self.link.publish(reply_to, envelope({"k": JOINED, "a": att_id}))

        task = asyncio.get_running_loop().create_task(answer())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _relay_in(self, header: dict[str, Any], payload: bytes) -> None:
        edge, att_id = str(header["b"]), str(header["a"])
        owned = self.owned.get((edge, att_id))
        if owned is None:
            # Not (or no longer) a member here: we dropped it while our link was down, or
            # its room moved. Its socket must not stay open talking to nobody.
            self.cm.dropped("unknown-attachment")
            if self._first_answer(edge, att_id):
                self._close_to(edge, att_id)
            return
        if owned.room is None:  # cannot happen: the edge waits for our JOINED first
            self.cm.dropped("unknown-attachment")
            return
        to = header.get("to")
        relay = Relay(
            owned.client_id,
            owned.sink,
            str(header["t"]),
            ClientId(to) if to is not None else None,
            payload,
            time.perf_counter(),
        )
        try:
            owned.room.tell(relay)
        except pykka.ActorDeadError:
            self.metrics.message(relay.type, "rejected", "room-failed")

    def _leave_in(self, header: dict[str, Any], payload: bytes = b"") -> None:
        key = (str(header["b"]), str(header["a"]))
        if key in self.owned:
            self.drop_owned(key, abnormal=bool(header.get("ab")))

    def drop_owned(self, key: tuple[str, str], abnormal: bool = True) -> None:
        """A remote member left, or its backend is unreachable (abnormal: its seat is
        held for the reconnect grace, as for a dropped socket)."""
        owned = self.owned.pop(key, None)
        if owned is None:
            return
        owned.sink.closed = True  # nothing more can reach it
        message = Disconnect(owned.room_id, owned.client_id, owned.sink, abnormal=abnormal)
        try:
            if owned.room is not None:
                owned.room.tell(message)
            elif self.hub is not None:
                self.hub.tell(message)  # behind its Connect, through the Hub
        except pykka.ActorDeadError:
            pass


def _refusal(code: str, message: str) -> JoinRefused:
    for cls in (
        errors.InvalidRequest,
        errors.Unauthorized,
        errors.Forbidden,
        errors.ClientIdTaken,
        errors.RoomFull,
        errors.ServerFull,
        errors.ShuttingDown,
        errors.RoomUnavailable,
        errors.RoomMoved,
        errors.TooManyRequests,
    ):
        if cls.code == code:
            return cls(message or None)
    return errors.RoomUnavailable(message or None)

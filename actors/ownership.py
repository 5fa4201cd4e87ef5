"""Cluster mode's decisions, without Redis or sockets: leases, routes, fencing, envelopes.

transport/cluster.py does the I/O (claim/renew/release scripts, pub/sub) and asks this
module what its results mean; every method takes ``now`` (``time.monotonic()``) where
time matters, so the tests drive it with plain numbers. See docs/cluster.md.

A lease is *certainly* ours until the moment we sent the last successful claim or
renewal plus ``VALID_SHARE`` of the TTL: Redis started counting the TTL later than
we started ours. Past that point the room must not deliver, whatever the reason: a
paused process wakes up to find itself here, and a backend cut off from Redis (while
another backend still reaches it) cannot know whether the lease was taken after it
expired. A lease whose renewals fail for lack of Redis is *suspended*: it keeps serving
until that same deadline, is re-asserted if the link comes back in time, and is lost
(members closed with 4502) otherwise. So a room is never served by two backends.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from actors.ids import RoomId

LEASE_PREFIX = "signaling:lease:"
EPOCH_KEY = "signaling:epoch"
CHANNEL_PREFIX = "signaling:backend:"
# Share of the TTL we rely on after sending a claim/renewal (clock-rate and scheduling slack).
VALID_SHARE = 0.9
# Renewals per TTL: a lease survives two renewals lost in a row.
RENEWALS_PER_TTL = 3


def lease_key(room_id: str) -> str:
    return LEASE_PREFIX + room_id


def channel(backend_id: str) -> str:
    return CHANNEL_PREFIX + backend_id


def lease_value(backend_id: str, epoch: int) -> str:
    return f"{backend_id} {epoch}"


def parse_lease_value(value: str | bytes | None) -> tuple[str, int] | None:
    """(owner backend id, epoch) of a lease value, None for an absent or malformed one."""
    if value is None:
        return None
    text = value.decode() if isinstance(value, bytes) else value
    owner, _, epoch = text.rpartition(" ")
    if not owner or not epoch.isdigit():
        return None
    return owner, int(epoch)


class LeaseState(enum.Enum):
    HELD = "held"  # renewed in time; valid until valid_until
    SUSPENDED = "suspended"  # renewal failed for lack of Redis: serve until valid_until at most
    LOST = "lost"  # another backend has it, or it expired unrenewed: deliver nothing
    RELEASING = "releasing"  # the room was reaped; compare-and-delete in flight


@dataclass(slots=True)
class Lease:
    epoch: int
    valid_until: float
    state: LeaseState = LeaseState.HELD


class LeaseTable:
    """The leases this backend holds, and whether each room may deliver right now."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self.leases: dict[RoomId, Lease] = {}
        self.highest_epoch = 0  # seen anywhere: floor for the next claim after a Redis restart

    @property
    def renew_interval(self) -> float:
        return self.ttl / RENEWALS_PER_TTL

    def get(self, room_id: RoomId) -> Lease | None:
        return self.leases.get(room_id)

    def observe_epoch(self, epoch: int) -> None:
        self.highest_epoch = max(self.highest_epoch, epoch)

    def claimed(self, room_id: RoomId, epoch: int, sent_at: float) -> None:
        self.observe_epoch(epoch)
        self.leases[room_id] = Lease(epoch, sent_at + VALID_SHARE * self.ttl)

    def renewed(self, room_id: RoomId, epoch: int, sent_at: float) -> None:
        """A renewal (or re-assertion) sent at ``sent_at`` succeeded."""
        lease = self.leases.get(room_id)
        if lease is not None and lease.epoch == epoch and lease.state in (LeaseState.HELD, LeaseState.SUSPENDED):
            lease.state = LeaseState.HELD
            lease.valid_until = max(lease.valid_until, sent_at + VALID_SHARE * self.ttl)

    def lost(self, room_id: RoomId, epoch: int | None = None) -> bool:
        """Redis says the lease is not ours (or it ran out): True if that is news."""
        lease = self.leases.get(room_id)
        if (
            lease is None
            or (epoch is not None and lease.epoch != epoch)
            or lease.state is not LeaseState.HELD
            and lease.state is not LeaseState.SUSPENDED
        ):
            return False
        lease.state = LeaseState.LOST
        return True

    def unreachable(self, now: float) -> None:
        """Redis could not be reached: leases still certainly valid are suspended (kept
        until their validity ends, re-asserted if the link is back before that)."""
        for lease in self.leases.values():
            if lease.state is LeaseState.HELD and now < lease.valid_until:
                lease.state = LeaseState.SUSPENDED

    def may_deliver(self, room_id: RoomId, now: float) -> bool:
        """May the room deliver frames and admit members right now?"""
        lease = self.leases.get(room_id)
        if lease is None:
            return False
        # Suspended or not: past valid_until another backend may hold the room.
        return lease.state in (LeaseState.HELD, LeaseState.SUSPENDED) and now < lease.valid_until

    def overdue(self, now: float) -> list[RoomId]:
        """Held or suspended leases past their certain validity (nobody renewed them: we
        were paused, the loop stalled, or Redis was unreachable): lost from now on."""
        late = [
            room
            for room, lease in self.leases.items()
            if lease.state in (LeaseState.HELD, LeaseState.SUSPENDED) and now >= lease.valid_until
        ]
        for room in late:
            self.leases[room].state = LeaseState.LOST
        return late

    def to_renew(self) -> list[tuple[RoomId, int]]:
        return [
            (room, lease.epoch)
            for room, lease in self.leases.items()
            if lease.state in (LeaseState.HELD, LeaseState.SUSPENDED)
        ]

    def start_release(self, room_id: RoomId) -> int | None:
        """The room was reaped: the epoch to compare-and-delete, or None if nothing to release."""
        lease = self.leases.get(room_id)
        if lease is None or lease.state is LeaseState.RELEASING:
            return None
        if lease.state is LeaseState.LOST:
            del self.leases[room_id]  # not ours in Redis any more: nothing to delete
            return None
        lease.state = LeaseState.RELEASING
        return lease.epoch

    def released(self, room_id: RoomId, epoch: int) -> None:
        lease = self.leases.get(room_id)
        if lease is not None and lease.epoch == epoch and lease.state is LeaseState.RELEASING:
            del self.leases[room_id]

    def drain(self) -> list[tuple[RoomId, int]]:
        """SIGTERM: stop every room delivering at once; returns the leases to release."""
        out = [
            (room, lease.epoch)
            for room, lease in self.leases.items()
            if lease.state in (LeaseState.HELD, LeaseState.SUSPENDED)
        ]
        self.leases.clear()
        return out


# -- routing a join --


@dataclass(frozen=True, slots=True)
class Local:
    """This backend owns the room (it just claimed it, or held it already)."""

    epoch: int


@dataclass(frozen=True, slots=True)
class Remote:
    """Another backend owns the room: relay to its channel."""

    owner: str
    epoch: int


Route = Local | Remote


def route_after_claim(me: str, table: LeaseTable, room_id: RoomId, result: Any, sent_at: float) -> Route:
    """Interpret the claim script's answer: ``[1, epoch]`` (claimed, or a leftover lease
    of ours adopted under a new epoch) or ``[0, holder]``.

    A backend id is unique per process (settings), and transport/cluster.py sends one
    claim per room at a time, with ``adopt`` set only when this process holds no lease
    on the room: so the script never answers ``[0, <our id> ...]`` unless our own
    claim or renewal is racing this one; treat it as ours only if we hold it now."""
    claimed, payload = int(result[0]), result[1]
    if claimed:
        epoch = int(payload)
        table.claimed(room_id, epoch, sent_at)
        return Local(epoch)
    holder = parse_lease_value(payload)
    if holder is None:
        raise ValueError(f"malformed lease value {payload!r}")
    owner, epoch = holder
    table.observe_epoch(epoch)
    if owner == me:
        lease = table.get(room_id)
        if lease is not None and lease.epoch == epoch and table.may_deliver(room_id, sent_at):
            return Local(epoch)
        raise ValueError(f"the lease of {room_id} names this backend under epoch {epoch}, which it does not hold")
    return Remote(owner, epoch)


# -- fencing on the receiving backend --


def superseded(attached_owner: str, attached_epoch: int, owner: str, epoch: int) -> bool:
    """An attachment made under (owner, epoch) is stale once a newer epoch of its room is
    seen anywhere (a claim reply, a lease read): the room moved, frames may be lost."""
    return epoch > attached_epoch or (epoch == attached_epoch and owner != attached_owner)


def accept_from_owner(attached_epoch: int, frame_epoch: int) -> bool:
    """A frame for a remote attachment made under ``attached_epoch``: deliver it only if it
    comes from that same lease. An older epoch is a former owner that has not noticed it
    lost the room (paused, partitioned); a newer one means the lease moved under us and
    frames may have been lost in between. Either way: drop it and close the client."""
    return attached_epoch == frame_epoch


# -- the envelope on a backend's channel: one JSON header line, then the raw payload --

# Header kinds. Edge (the backend with the socket) to owner:
CONNECT, RESERVE, RELAY, LEAVE = "C", "S", "R", "L"
# Owner to edge:
FRAME, CLOSE, JOINED, REFUSED = "f", "c", "j", "x"


def envelope(header: dict[str, Any], payload: bytes = b"") -> bytes:
    # orjson never emits a raw newline, so the first one ends the header.
    return orjson.dumps(header) + b"\n" + payload


def open_envelope(message: bytes) -> tuple[dict[str, Any], bytes]:
    """Raises ValueError for anything that is not an envelope."""
    head, sep, payload = message.partition(b"\n")
    if not sep:
        raise ValueError("no header line")
    header = orjson.loads(head)
    if not isinstance(header, dict) or not isinstance(header.get("k"), str):
        raise ValueError("bad header")  # one error type for every bad envelope
    return header, payload


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]

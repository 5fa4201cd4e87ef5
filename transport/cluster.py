"""Cluster mode's Redis link, on the service's own loop: the only module importing redis.

One ``Cluster`` per backend (transport/server.py makes it when ``--redis`` is set):

- leases: claim (Lua: SET NX PX with a fresh epoch), renewal every third of the TTL
  (Lua compare-and-PEXPIRE), release on reap and at SIGTERM (Lua compare-and-DEL);
  actors/ownership.py decides what each answer means;
- this backend's channel: one pub/sub reader task, dispatching envelopes;
- publish: one queue, flushed as one pipeline at a time, so Redis sees (and every
  subscriber receives) our messages in the order we queued them;
- the link: any Redis error marks it down, which closes every remote attachment with
  4502 (frames may have been lost: pub/sub is at-most-once) and starts reconnecting
  with backoff; on reconnect our leases are re-asserted first;
- routing a join: held lease -> the local Hub; else claim; else the owner, through
  transport/cluster_relay.py (the remote attachments, both ends; no Redis there).

See docs/cluster.md.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import pykka
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from actors.cluster_room import LeaseLost
from actors.errors import (
    CLOSE_GOING_AWAY,
    RoomMoved,
    ShuttingDown,
)
from actors.ids import ClientId, RoomId
from actors.messages import Connect, Joined, Reserve
from actors.ownership import (
    CHANNEL_PREFIX,
    EPOCH_KEY,
    LeaseState,
    LeaseTable,
    Local,
    Remote,
    channel,
    lease_key,
    lease_value,
    open_envelope,
    parse_lease_value,
    route_after_claim,
)
from actors.runtime import LoopFuture
from actors.sink import ClientSink
from metrics.signaling import ClusterMetrics, SignalingMetrics
from transport.cluster_relay import JOIN_TIMEOUT, Relays, SocketClosed
from transport.settings import Settings

logger = logging.getLogger(__name__)

# KEYS: lease, epoch counter. ARGV: backend id, ttl ms, epoch floor. -> {1, epoch} | {0, holder}
# A lease naming our own id is a leftover of ours (backend ids are unique per process, and
# we claim only rooms we hold no lease on, one claim per room at a time): the room was
# reaped or lost while Redis was out of reach, so its release never ran. Adopt it under a
# new epoch (which fences anything attached under the old one) instead of waiting for it
# to expire.
CLAIM = """
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, #ARGV[1] + 1) ~= ARGV[1] .. ' ' then return {0, v} end
local e = redis.call('INCR', KEYS[2])
local floor = tonumber(ARGV[3])
if e <= floor then
  e = floor + 1
  redis.call('SET', KEYS[2], e)
end
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. e, 'PX', ARGV[2])
return {1, e}
"""
# KEYS: lease. ARGV: our value, ttl ms. -> 1 renewed | 0 not ours
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
# After a reconnect: still ours, or absent (Redis restarted empty): keep it. Taken: 0.
# KEYS: lease, epoch counter. ARGV: our value, ttl ms, our epoch.
REASSERT = """
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if v then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if tonumber(redis.call('GET', KEYS[2]) or '0') < tonumber(ARGV[3]) then redis.call('SET', KEYS[2], ARGV[3]) end
return 1
"""
# KEYS: lease. ARGV: our value. -> 1 deleted | 0 not ours
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

BACKOFF_MIN, BACKOFF_MAX = 0.05, 2.0
# A claimed lease whose Room never appeared (the join was refused before the Hub made
# one) is released after this many renewal intervals.
ORPHAN_INTERVALS = 2
# Bytes queued for Redis while a pipeline is in flight. Redis answers a pipeline in
# well under a millisecond; a queue this large means it has stalled, and the queue must
# not grow without bound: the link is then treated as lost (remote clients get 4502).
OUTBOX_LIMIT_BYTES = 32 * 1024 * 1024
# Redis command (and connect/subscribe) timeout, as a share of the lease TTL: a stalled
# Redis is declared lost (link_lost, /readyz down) well before the leases run out, and a
# join never waits longer than this for Redis. Capped: a long TTL must not mean a hang.
TIMEOUT_SHARE, TIMEOUT_MAX = 1 / 3, 5.0


def redis_timeout(lease_ttl: float) -> float:
    return min(TIMEOUT_MAX, TIMEOUT_SHARE * lease_ttl)


def default_backend_id(port: int) -> str:
    # Unique per process: a restarted backend must not mistake its predecessor's
    # leases (which may still be live) for its own.
    return f"{socket.gethostname()}:{port}:{secrets.token_hex(3)}"


@dataclass(eq=False)
class Cluster:
    settings: Settings
    metrics: SignalingMetrics
    cm: ClusterMetrics
    backend_id: str
    hub: pykka.ActorRef[Any] | None = None
    table: LeaseTable = field(init=False)
    up: bool = False
    draining: bool = False

    def __post_init__(self) -> None:
        self.table = LeaseTable(self.settings.lease_ttl)
        self.ttl_ms = int(self.settings.lease_ttl * 1000)
        self.channel = channel(self.backend_id)
        self.timeout = redis_timeout(self.settings.lease_ttl)
        kwargs: dict[str, Any] = {"retry": Retry(NoBackoff(), 0), "socket_connect_timeout": self.timeout}
        # Commands time out (a hung Redis must not hang a join); the channel reader
        # waits as long as it takes: a stalled Redis shows in the PING every tick
        # (_check), a dead one in the closed socket.
        self.redis = aioredis.Redis.from_url(self.settings.redis, socket_timeout=self.timeout, **kwargs)
        self.sub_redis = aioredis.Redis.from_url(self.settings.redis, **kwargs)
        self.claim_script = self.redis.register_script(CLAIM)
        self.renew_script = self.redis.register_script(RENEW)
        self.reassert_script = self.redis.register_script(REASSERT)
        self.release_script = self.redis.register_script(RELEASE)
        self.rooms: dict[RoomId, pykka.ActorRef[Any]] = {}  # our live Rooms (ClusterRoom.on_start)
        self.claimed_at: dict[RoomId, float] = {}
        self.releases: dict[RoomId, asyncio.Future[None]] = {}
        self.outbox: list[tuple[str, bytes]] = []
        self.outbox_bytes = 0
        self.claims: dict[RoomId, asyncio.Future[Local | Remote]] = {}  # one claim per room in flight
        self.flusher: asyncio.Task[None] | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.reader: asyncio.Task[None] | None = None
        self.reconnecting: asyncio.Task[None] | None = None
        self.ticker: asyncio.TimerHandle | None = None
        self.pubsub: Any = None
        self.relays = Relays(self.backend_id, self, self.metrics, self.cm)
        self.cm.watch_leases(lambda: len(self.table.leases))
        self.cm.redis_up(False)

    # -- life cycle --

    async def start(self) -> None:
        """After ``hub`` is set: connect (or keep trying in the background), start renewing."""
        self.loop = asyncio.get_running_loop()
        self.relays.hub = self.hub
        try:
            await self._connect()
        except (RedisError, OSError) as exc:
            logger.warning("redis unreachable at start-up (%s); retrying in the background", exc)
            self._spawn_reconnect()
        self._schedule_tick()

    async def drain(self) -> None:
        """SIGTERM, before the Hub closes its rooms: stop delivering for every room at
        once, release the leases so the rooms move now (not after the TTL), and close
        the sockets of rooms owned elsewhere with 1001."""
        self.draining = True
        leases = self.table.drain()  # our rooms deliver nothing more; the Hub closes them next
        if leases and self.up:
            pipe = self.redis.pipeline(transaction=False)
            for room_id, epoch in leases:
                # Awaiting a script call on a pipeline only queues it (and loads it on NOSCRIPT).
                await self.release_script(
                    keys=[lease_key(room_id)], args=[lease_value(self.backend_id, epoch)], client=pipe
                )
            try:
                await self._timed(pipe.execute())
                for _ in leases:
                    self.cm.lease("released")
            except (RedisError, OSError) as exc:
                logger.warning(
                    "releasing %d leases failed (%s); they expire in %.1fs", len(leases), exc, self.settings.lease_ttl
                )
        self.relays.close_all(CLOSE_GOING_AWAY, "server shutting down")

    async def close(self) -> None:
        """After the sockets closed: send what is queued, then drop the link."""
        if self.flusher is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self.flusher), 2.0)
            except (TimeoutError, RedisError, OSError):
                pass
        if self.ticker is not None:
            self.ticker.cancel()
        for task in [self.reader, self.reconnecting, self.flusher, *self.tasks, *self.relays.tasks]:
            if task is not None and not task.done():
                task.cancel()
        self.up = False
        if self.pubsub is not None:
            await self._quietly(self.pubsub.aclose())
        await self._quietly(self.redis.aclose())
        await self._quietly(self.sub_redis.aclose())

    @staticmethod
    async def _quietly(awaitable: Any) -> None:
        try:
            await awaitable
        except (RedisError, OSError, asyncio.CancelledError):
            pass

    async def _connect(self) -> None:
        """Ping, subscribe to our channel, re-assert our leases; then the link is up."""
        await self._timed(self.redis.ping())
        pubsub = self.sub_redis.pubsub(ignore_subscribe_messages=True)
        try:
            # The subscriber connection has no socket timeout (it idles between messages):
            # bound the subscribe itself, or a black-holed Redis hangs the reconnect.
            await asyncio.wait_for(pubsub.subscribe(self.channel), self.timeout)
        except TimeoutError:
            await self._quietly(pubsub.aclose())
            raise RedisTimeoutError("subscribing to our channel timed out") from None
        if self.pubsub is not None:
            await self._quietly(self.pubsub.aclose())
        self.pubsub = pubsub
        # Leases that ran out while we were cut off are lost, not re-asserted: another
        # backend may have claimed (and released) the room meanwhile.
        for room_id in self.table.overdue(time.monotonic()):
            self._lose(room_id, "not renewed in time (redis unreachable)")
        await self._reassert()
        self.up = True
        self.cm.redis_up(True)
        self.reader = self.loop.create_task(self._read(pubsub))
        # Tell the other side of every remote attachment we dropped while cut off: it
        # cannot have noticed (its own link stayed up), and must not keep a ghost.
        self.relays.link_restored()
        logger.info("redis link up: backend %s, %d leases held", self.backend_id, len(self.table.leases))

    async def _reassert(self) -> None:
        held = self.table.to_renew()
        if not held:
            return
        pipe = self.redis.pipeline(transaction=False)
        for room_id, epoch in held:
            await self.reassert_script(
                keys=[lease_key(room_id), EPOCH_KEY],
                args=[lease_value(self.backend_id, epoch), self.ttl_ms, epoch],
                client=pipe,
            )
        sent = time.monotonic()
        results = await self._timed(pipe.execute())
        self._apply_renewals(held, results, sent)

    def _spawn_reconnect(self) -> None:
        if self.reconnecting is None or self.reconnecting.done():
            self.reconnecting = self.loop.create_task(self._reconnect())

    async def _reconnect(self) -> None:
        delay = BACKOFF_MIN
        while not self.up:
            await asyncio.sleep(delay)  # backoff between attempts, not synchronisation
            try:
                await self._connect()
            except (RedisError, OSError) as exc:
                logger.debug("redis still unreachable: %s", exc)
                delay = min(delay * 2, BACKOFF_MAX)
            except Exception:  # a bug: keep trying rather than stay cut off for good
                logger.exception("reconnecting to redis failed")
                delay = BACKOFF_MAX

    def link_lost(self, exc: BaseException) -> None:
        """Any Redis error: frames may have been lost, so every remote attachment is
        closed (edge) or dropped (owner); local rooms keep working on suspended leases, but
        only until those run out (actors/ownership.py): then they close with 4502."""
        if not self.up:
            return
        self.up = False
        self.cm.redis_up(False)
        logger.warning(
            "redis link lost (%s): closing remote attachments, local rooms carry on until their leases run out", exc
        )
        self.table.unreachable(time.monotonic())
        for _ in self.table.to_renew():
            self.cm.lease("renew-failed")
        if self.outbox:
            self.cm.dropped("link-down", len(self.outbox))
            self.outbox = []
            self.outbox_bytes = 0
        self.relays.link_lost()
        if self.reader is not None and self.reader is not asyncio.current_task():
            self.reader.cancel()
        self._spawn_reconnect()

    async def _timed(self, awaitable: Any) -> Any:
        started = time.perf_counter()
        result = await awaitable
        self.cm.roundtrip(time.perf_counter() - started)
        return result

    # -- the LeaseGate the Hub and ClusterRooms consult (sync, on the loop) --

    def may_deliver(self, room_id: RoomId) -> bool:
        return self.table.may_deliver(room_id, time.monotonic())

    def may_open(self, room_id: RoomId) -> bool:
        return not self.draining and self.table.may_deliver(room_id, time.monotonic())

    def open_epoch(self, room_id: RoomId) -> int | None:
        """For the relay (a remote join or reservation): our lease's epoch if it admits now."""
        lease = self.table.get(room_id)
        return lease.epoch if lease is not None and self.may_open(room_id) else None

    def room_started(self, room_id: RoomId, room: pykka.ActorRef[Any]) -> None:
        self.rooms[room_id] = room

    def room_closed(self, room_id: RoomId, room: pykka.ActorRef[Any]) -> None:
        if self.rooms.get(room_id) is room:
            del self.rooms[room_id]
        self._release(room_id)

    def _release(self, room_id: RoomId) -> None:
        epoch = self.table.start_release(room_id)
        self.claimed_at.pop(room_id, None)
        if epoch is None:
            return
        done = self.releases[room_id] = self.loop.create_future()
        task = self.loop.create_task(self._release_one(room_id, epoch, done))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _release_one(self, room_id: RoomId, epoch: int, done: asyncio.Future[None]) -> None:
        try:
            if self.up:
                await self._timed(
                    self.release_script(keys=[lease_key(room_id)], args=[lease_value(self.backend_id, epoch)])
                )
                self.cm.lease("released")
        except (RedisError, OSError) as exc:
            self.link_lost(exc)  # the lease then simply expires
        finally:
            self.table.released(room_id, epoch)
            if self.releases.get(room_id) is done:
                del self.releases[room_id]
            done.set_result(None)

    # -- the renewal tick --

    def _schedule_tick(self) -> None:
        self.ticker = self.loop.call_later(self.table.renew_interval, self._tick)

    def _tick(self) -> None:
        task = self.loop.create_task(self._check())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        self._schedule_tick()

    async def _check(self) -> None:
        """Every renewal interval, in one round trip: renew our leases, check that the
        owners of our edge attachments still hold their rooms, and that the backends we
        exchange frames with still listen on their channels."""
        now = time.monotonic()
        for room_id in self.table.overdue(now):
            self._lose(room_id, "not renewed in time (paused or stalled)")
        for room_id, since in list(self.claimed_at.items()):
            if room_id not in self.rooms and now - since > ORPHAN_INTERVALS * self.table.renew_interval:
                self._release(room_id)
        if not self.up:
            return
        held = self.table.to_renew()
        # Only attachments that exist now: one made while the answer is on its way was
        # routed by a fresher read of the lease than this one.
        attachments = list(self.relays.edge.values())
        edge_rooms = sorted({a.room_id for a in attachments})
        peers = self.relays.peers()
        pipe = self.redis.pipeline(transaction=False)
        for room_id, epoch in held:
            await self.renew_script(
                keys=[lease_key(room_id)], args=[lease_value(self.backend_id, epoch), self.ttl_ms], client=pipe
            )
        if edge_rooms:
            pipe.mget([lease_key(r) for r in edge_rooms])
        if peers:
            pipe.pubsub_numsub(*[channel(p) for p in peers])
        # Always a PING, with the command timeout: an idle backend must notice a stalled
        # Redis too (/readyz, signaling_redis_up), not only the next join.
        pipe.ping()
        sent = time.monotonic()
        try:
            results = await self._timed(pipe.execute())
        except (RedisError, OSError) as exc:
            self.link_lost(exc)
            return
        self._apply_renewals(held, results[: len(held)], sent)
        rest = results[len(held) : -1]
        if edge_rooms:
            holders = dict(zip(edge_rooms, (parse_lease_value(v) for v in rest.pop(0)), strict=True))
            for holder in holders.values():
                if holder is not None:
                    self.table.observe_epoch(holder[1])
            self.relays.check_owners(attachments, holders)
        if peers:
            for name, count in rest.pop(0):
                if int(count) == 0:
                    self.relays.peer_gone(
                        (name.decode() if isinstance(name, bytes) else name).removeprefix(CHANNEL_PREFIX)
                    )

    def _apply_renewals(self, held: list[tuple[RoomId, int]], results: list[Any], sent: float) -> None:
        for (room_id, epoch), result in zip(held, results, strict=True):
            if int(result):
                self.table.renewed(room_id, epoch, sent)
            elif self.table.lost(room_id, epoch):
                self._lose(room_id, "taken by another backend or expired")

    def _lose(self, room_id: RoomId, why: str) -> None:
        self.cm.lease("lost")
        logger.warning("lease lost: %s", why, extra={"room": room_id})
        ref = self.rooms.get(room_id)
        if ref is not None:
            ref.tell(LeaseLost())

    # -- publishing: one queue, one pipeline in flight, so order is kept --

    def publish(self, to_channel: str, message: bytes) -> None:
        if not self.up:
            self.cm.dropped("link-down")
            return
        if self.outbox_bytes + len(message) > OUTBOX_LIMIT_BYTES:
            self.cm.dropped("publish-failed")
            self.link_lost(RuntimeError(f"{self.outbox_bytes} bytes waiting for redis"))
            return
        self.outbox.append((to_channel, message))
        self.outbox_bytes += len(message)
        if self.flusher is None:
            self.flusher = self.loop.create_task(self._flush())

    async def _flush(self) -> None:
        try:
            while self.outbox and self.up:
                batch, self.outbox, self.outbox_bytes = self.outbox, [], 0
                pipe = self.redis.pipeline(transaction=False)
                for to_channel, message in batch:
                    pipe.publish(to_channel, message)
                try:
                    counts = await self._timed(pipe.execute())
                except (RedisError, OSError) as exc:
                    self.cm.dropped("publish-failed", len(batch))
                    self.link_lost(exc)
                    return
                self.cm.sent(len(batch))
                gone = {ch for (ch, _), n in zip(batch, counts, strict=True) if int(n) == 0}
                for ch in gone:
                    self.cm.dropped("no-subscriber", sum(1 for c, _ in batch if c == ch))
                    self.relays.peer_gone(ch.removeprefix(CHANNEL_PREFIX))
        finally:
            self.flusher = None

    # -- this backend's channel --

    async def _read(self, pubsub: Any) -> None:
        try:
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
                if message is not None and message.get("type") == "message":
                    self._dispatch(message["data"])
        except asyncio.CancelledError:
            raise
        except (RedisError, OSError) as exc:
            if self.pubsub is pubsub:
                self.link_lost(exc)
        except Exception as exc:  # a bug; never leave a dead reader behind a link that says up
            logger.exception("the channel reader failed")
            if self.pubsub is pubsub:
                self.link_lost(exc)

    def _dispatch(self, data: bytes) -> None:
        try:
            header, payload = open_envelope(data)
        except ValueError:
            self.cm.dropped("malformed")
            logger.warning("malformed message on %s dropped", self.channel)
            return
        self.cm.received()
        try:
            if not self.relays.handle(header, payload):
                self.cm.dropped("malformed")
        except (KeyError, TypeError, ValueError):
            self.cm.dropped("malformed")
            logger.warning("malformed %r message on %s dropped", header.get("k"), self.channel)
        # Anything else propagates to _read: logged, and the link is treated as lost.

    # -- edge side: sockets here, rooms elsewhere --

    async def join(self, room_id: RoomId, client_id: ClientId, sink: ClientSink, proof: int | None) -> Joined:
        """Connect a socket to its room wherever the room lives. Raises JoinRefused."""
        for attempt in range(3):
            route = await self._route(room_id)
            try:
                if isinstance(route, Local):
                    joined: Joined = await self._ask_hub(lambda reply: Connect(room_id, client_id, sink, reply, proof))
                    return joined
                joined = await self.relays.join_remote(route, room_id, client_id, sink, proof)
                return joined
            except SocketClosed:
                raise
            except RoomMoved:
                if attempt == 2:
                    raise
            await asyncio.sleep(0.05 * (attempt + 1))  # backoff: the lease is changing hands
        raise RoomMoved()

    async def reserve(self, room_id: RoomId, client_id: ClientId, proof: int | None) -> None:
        """REST join: reserve the seat in the room wherever it lives. Raises JoinRefused."""
        for attempt in range(3):
            route = await self._route(room_id)
            try:
                if isinstance(route, Local):
                    await self._ask_hub(lambda reply: Reserve(room_id, client_id, reply, proof))
                    return
                await self.relays.reserve_remote(route, room_id, client_id, proof)
                return
            except RoomMoved:
                if attempt == 2:
                    raise
            await asyncio.sleep(0.05 * (attempt + 1))

    async def _route(self, room_id: RoomId) -> Local | Remote:
        lease = self.table.get(room_id)
        if lease is not None and lease.state is LeaseState.RELEASING:
            release = self.releases.get(room_id)
            if release is not None:
                await asyncio.wait_for(asyncio.shield(release), JOIN_TIMEOUT)
            lease = self.table.get(room_id)
        if self.draining:
            raise ShuttingDown()
        if lease is not None:
            if self.table.may_deliver(room_id, time.monotonic()):
                return Local(lease.epoch)
            raise RoomMoved("the room is moving; retry")
        if not self.up:
            raise RoomMoved("cluster link down; retry")
        # One claim per room in flight on this backend: a second join waits for the first
        # one's answer instead of racing it (and finding our own fresh lease).
        pending = self.claims.get(room_id)
        if pending is not None:
            return await asyncio.shield(pending)
        pending = self.claims[room_id] = self.loop.create_future()
        try:
            route = await self._claim(room_id)
        except BaseException as exc:
            pending.set_exception(exc if isinstance(exc, Exception) else RoomMoved("claim cancelled; retry"))
            pending.exception()  # retrieved: nobody else may be waiting
            raise
        else:
            pending.set_result(route)
            return route
        finally:
            del self.claims[room_id]

    async def _claim(self, room_id: RoomId) -> Local | Remote:
        sent = time.monotonic()
        try:
            result = await self._timed(
                self.claim_script(
                    keys=[lease_key(room_id), EPOCH_KEY], args=[self.backend_id, self.ttl_ms, self.table.highest_epoch]
                )
            )
        except (RedisError, OSError) as exc:
            self.link_lost(exc)
            raise RoomMoved("cluster link lost; retry") from None
        had = self.table.get(room_id)
        try:
            route = route_after_claim(self.backend_id, self.table, room_id, result, sent)
        except ValueError as exc:
            logger.warning("claim answer not understood: %s", exc, extra={"room": room_id})
            raise RoomMoved("the room's lease is changing hands; retry") from None
        if isinstance(route, Local) and had is None:
            self.cm.lease("claimed")
            self.claimed_at[room_id] = time.monotonic()
            logger.info("lease claimed (epoch %d)", route.epoch, extra={"room": room_id})
            self.relays.room_claimed(room_id)
        elif isinstance(route, Remote):
            self.relays.owner_seen(room_id, route.owner, route.epoch)
        return route

    async def _ask_hub(self, make_message: Any) -> Any:
        assert self.hub is not None
        reply: LoopFuture[Any] = LoopFuture()
        try:
            self.hub.tell(make_message(reply))
        except pykka.ActorDeadError:
            raise ShuttingDown() from None
        return await reply.result(JOIN_TIMEOUT)


def make_cluster(settings: Settings, metrics: SignalingMetrics, port: int) -> Cluster:
    backend_id = settings.backend_id or default_backend_id(port)
    return Cluster(settings, metrics, ClusterMetrics(metrics.registry), backend_id)

"""main(): settings, logging, the Hub, the listeners, signals, and ordered shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import TYPE_CHECKING

import prometheus_client
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from actors import runtime
from actors.errors import CLOSE_GOING_AWAY
from actors.hub import Hub
from actors.messages import Shutdown
from metrics.signaling import SignalingMetrics
from transport import ioloop, logs
from transport import settings as settings_module
from transport.app import make_app, make_metrics_app
from transport.context import ServiceContext
from transport.settings import Settings
from transport.tokens import TokenIssuer

if TYPE_CHECKING:
    from transport.cluster import Cluster

logger = logging.getLogger("transport.server")  # not __main__ under python -m

# Bytes a socket read asks for (Tornado's read_chunk_size, through HTTPServer's
# chunk_size). Tornado zero-fills a fresh buffer of this size for every read, most
# of them a few hundred bytes: at its 64 KB default that memset was ~9% of a call
# setup's instructions under callgrind (which counts it per byte; in time ~1 us a
# read). A browser's SDP offer (4-8 KB) still takes one read, a larger one a few.
READ_CHUNK_BYTES = 8 * 1024


def version() -> str:
    try:
        return metadata.version("actor-signaling")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def new_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


class Server:
    """The whole service on the running loop: ``await start()``, then ``await shutdown()``."""

    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.metrics = SignalingMetrics(registry if registry is not None else new_registry(), version())
        self.port = 0
        self.metrics_port = 0

    async def start(self) -> None:
        s = self.settings
        ioloop.install()  # before any Tornado server or stream exists on this loop
        self.cluster: Cluster | None = None
        if s.redis:
            # Imported here: only cluster mode needs (or imports) redis.
            from actors.cluster_room import bind
            from transport.cluster import make_cluster

            self.cluster = make_cluster(s, self.metrics, s.port)
            hub = Hub.start(self.metrics, s.room_limits(), s.max_rooms, bind(self.cluster), self.cluster)
            self.cluster.hub = hub
            await self.cluster.start()
        else:
            hub = Hub.start(self.metrics, s.room_limits(), s.max_rooms)
        self.metrics.watch_runtime(lambda: len(runtime.live_actors()), threading.active_count)
        self.ctx = ServiceContext(s, hub, self.metrics, TokenIssuer(s.secret, s.token_ttl), self.cluster)
        self.http = HTTPServer(
            make_app(self.ctx), max_body_size=s.max_frame_bytes, xheaders=False, chunk_size=READ_CHUNK_BYTES
        )
        sockets = bind_sockets(s.port, s.host, backlog=s.backlog)
        self.http.add_sockets(sockets)
        self.port = sockets[0].getsockname()[1]
        self.metrics_http = HTTPServer(make_metrics_app(self.metrics.registry))
        metrics_sockets = bind_sockets(s.metrics_port, s.metrics_host)
        self.metrics_http.add_sockets(metrics_sockets)
        self.metrics_port = metrics_sockets[0].getsockname()[1]
        logger.info(
            "listening on http://%s:%d (metrics on http://%s:%d/metrics, %s mode)",
            s.host,
            self.port,
            s.metrics_host,
            self.metrics_port,
            "token" if s.token_mode else "open",
        )

    async def shutdown(self) -> None:
        """Drain: /readyz 503, stop accepting, close every socket with 1001, stop the actors."""
        ctx = self.ctx
        ctx.draining = True  # /readyz 503; WebSocket joins refused with 1001 from now on
        if self.settings.drain_seconds:
            await asyncio.sleep(self.settings.drain_seconds)
        self.http.stop()
        if self.cluster is not None:
            await self.cluster.drain()  # leases first: the rooms move now, not after the TTL
        await ctx.ask_hub(lambda reply: Shutdown(CLOSE_GOING_AWAY, "server shutting down", reply))
        if ctx.open_sockets:
            try:
                await asyncio.wait_for(ctx.sockets_closed.wait(), self.settings.shutdown_timeout)
            except TimeoutError:
                logger.warning(
                    "%d sockets still open after %.1fs; exiting anyway",
                    ctx.open_sockets,
                    self.settings.shutdown_timeout,
                )
        await runtime.stop(ctx.hub)
        if self.cluster is not None:
            await self.cluster.close()
        await self.http.close_all_connections()
        self.metrics_http.stop()
        logger.info("stopped")


# Young collections come from a timer (see tune_gc): generation 0 every
# YOUNG_GC_INTERVAL seconds, generation 1 every GEN1_THRESHOLD + 1 of those.
YOUNG_GC_INTERVAL = 0.05
GEN1_THRESHOLD = 1
# Generation 2 (full) waits for enough generation-1 collections (CPython: 10) to
# space full collections FULL_GC_SPACING seconds apart at the least; CPython also waits
# until objects promoted since the last one reach 25% of the rest.
FULL_GC_SPACING = 2000.0
GEN2_THRESHOLD = round(FULL_GC_SPACING / (YOUNG_GC_INTERVAL * (GEN1_THRESHOLD + 1)))


class GcPacer:
    """Calls collect_young every ``interval`` seconds on the running loop.

    A bare loop timer rather than Tornado's PeriodicCallback, which (since Tornado 6.3)
    runs every tick as a coroutine in a Task of its own: with 10k idle peers that
    machinery made the pacer 7-8 ms of CPU a second, ~14x the collections themselves
    (py-spy), and 4% of the CPU per message at 1k msg/s (issue 12)."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._timer = self._loop.call_later(self._interval, self._tick)

    def _tick(self) -> None:
        collect_young()
        self._timer = self._loop.call_later(self._interval, self._tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()  # drops the handle's reference to us
            self._timer = None


def tune_gc() -> GcPacer:
    """Keep full collections rare and young ones small; returns the started pacer.

    Full collections: at 10k connections the process holds about a million
    long-lived objects (sockets, handlers, members), and a full collection over them
    took 0.6-0.9 s, freed nothing and stalled every relay, every 20-30 s with CPython's
    thresholds. Objects made at start-up are frozen out of collection, and generation 2
    waits for GEN2_THRESHOLD generation-1 collections: with the pacer's ten a second,
    more than half an hour apart at the least.

    Young collections: CPython (3.11) counts allocations minus deallocations, and the
    deallocation of an *old* object counts too. Under a steady relay every frame frees
    the promoted read future and coroutine of its connection's previous frame and makes
    new ones that live until the next frame (~9 objects a frame), so the count hovers
    near zero while the young generation fills with live objects: with 10k peers at
    1k msg/s it held 30k objects when a collection finally came (13-25 ms), and
    generation 1 took 34-132 ms: the relay's p99.9 was 62 ms (issue 12). Collected
    every 0.05 s and 0.1 s instead, the generations hold what that time made, so a
    pause grows with the rate but stays short: at 6k msg/s, collections every 0.1 s and
    0.2 s took 2-3 ms and 4-6 ms and set the p99 at ~6 ms, every 0.05 s and 0.1 s ~3 ms;
    at 1k msg/s the CPU per message is the same either way (docs/performance.md).

    The price of rare full collections: cyclic garbage that reaches generation 2
    waits that long for one. A closed connection, a stopped room or a refused request
    must therefore leave no reference cycle behind, so that reference counting frees it
    at once (issue 10: six small cycles, listed in docs/performance.md#soak, left ~126
    objects per call setup and grew RSS by ~2 MB/s under churn). The memory tests
    (tests/actors/ and tests/transport/test_memory.py) and tests/loadtests/test_soak.py
    keep it that way."""
    gc.freeze()
    gen0 = gc.get_threshold()[0]
    gc.set_threshold(gen0, GEN1_THRESHOLD, GEN2_THRESHOLD)
    pacer = GcPacer(YOUNG_GC_INTERVAL)
    pacer.start()
    return pacer


def collect_young() -> None:
    """Collect generation 0, or 1 when its turn has come, as CPython's own trigger
    would: a manual ``gc.collect(0)`` only counts towards generation 1, it never
    collects it. Full collections stay with CPython (generation 2's threshold)."""
    count1 = gc.get_count()[1]
    threshold1 = gc.get_threshold()[1]
    gc.collect(1 if count1 >= threshold1 else 0)


def write_ready_file(path: str, info: dict[str, int]) -> None:
    """Write ``info`` as JSON to ``path`` so that a reader sees all of it or nothing:
    a launcher polling for the file never parses half a write (rename is atomic)."""
    partial = f"{path}.{os.getpid()}.partial"
    with open(partial, "w", encoding="utf-8") as f:
        json.dump(info, f)
    os.replace(partial, path)


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop to run on: uvloop (libuv; fewer CPU cycles per wake-up, read and
    write than asyncio's pure-Python selector loop) unless told otherwise or not
    installed. None: asyncio's default. Raises SettingsError for ``uvloop`` without it."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise settings_module.SettingsError(
                "loop=uvloop but uvloop is not installed (pip install uvloop, or --loop asyncio)"
            ) from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


async def serve(settings: Settings) -> None:
    logger.info("event loop: %s", loop_name(asyncio.get_running_loop()))
    server = Server(settings)
    await server.start()
    gc_pacer = tune_gc()
    logs.flush()  # the start-up lines ("listening on ...") are out before anyone sees it ready
    if settings.ready_file:
        # Machine-readable readiness: the ports actually bound (--port 0 picks any).
        write_ready_file(
            settings.ready_file, {"port": server.port, "metrics_port": server.metrics_port, "pid": os.getpid()}
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    logger.info("signal received: draining")
    if settings.ready_file:
        with contextlib.suppress(FileNotFoundError):  # draining: no longer ready for new clients
            os.unlink(settings.ready_file)
    gc_pacer.stop()
    await server.shutdown()


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = settings_module.load(argv)
        factory = loop_factory(settings.loop)
    except settings_module.SettingsError as exc:
        print(f"signaling-server: invalid setting: {exc}", file=sys.stderr)
        return 2
    logs.setup(settings.log_level, settings.log_format)
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(serve(settings))
    except OSError as exc:
        logger.error("cannot start: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

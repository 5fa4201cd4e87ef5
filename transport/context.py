"""What the handlers are given (through ``initialize``) instead of globals."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import pykka
from tornado.httputil import HTTPServerRequest

from actors.errors import ShuttingDown
from actors.messages import Asking
from actors.runtime import LoopFuture
from metrics.signaling import SignalingMetrics
from transport.limits import KeyedBuckets
from transport.settings import Settings
from transport.tokens import TokenIssuer

if TYPE_CHECKING:
    from transport.cluster import Cluster

logger = logging.getLogger(__name__)

T = TypeVar("T")

PROXY_HEADERS = ("X-Real-IP", "X-Forwarded-For")

# How long a handler waits for the Hub/Room to answer a join before giving up.
JOIN_TIMEOUT = 10.0


@dataclass
class ServiceContext:
    settings: Settings
    hub: pykka.ActorRef[Any]
    metrics: SignalingMetrics
    tokens: TokenIssuer
    cluster: Cluster | None = None  # cluster mode only (transport/cluster.py is imported only then)
    draining: bool = False
    # Open WebSocket connections, so shutdown can wait for their close handshakes.
    open_sockets: int = 0
    sockets_closed: asyncio.Event = field(default_factory=asyncio.Event)
    # Counted up in ip_connected() (WebSocket open) and down in ip_disconnected()
    # (its on_close), which removes the key at zero.
    sockets_per_ip: dict[str, int] = field(default_factory=dict)
    # Not removed per request: KeyedBuckets forgets idle buckets when it reaches its
    # key cap (10k addresses), so it is bounded rather than emptied.
    join_buckets: KeyedBuckets = field(init=False)
    warned_untrusted_proxy: bool = False

    def __post_init__(self) -> None:
        self.join_buckets = KeyedBuckets(self.settings.join_rate_per_ip, self.settings.join_burst_per_ip)

    def client_ip(self, request: HTTPServerRequest) -> str:
        # X-Real-IP is only as trustworthy as the proxy that sets it: never read it
        # unless told that a proxy (which overwrites it) is in front.
        if self.settings.trust_proxy:
            forwarded = request.headers.get("X-Real-IP", "").strip()
            if forwarded:
                return forwarded
        return request.remote_ip or "unknown"

    def check_proxy_headers(self, request: HTTPServerRequest) -> None:
        """Count a request that carries a proxy's client-IP header we were told not to trust.

        It means a proxy is in front but --trust-proxy is off, so every client shares the
        proxy's address and the per-IP limits count them all as one. One warning per
        process (a line per request would flood the log); the metric counts each.
        """
        if self.settings.trust_proxy or not any(h in request.headers for h in PROXY_HEADERS):
            return
        self.metrics.untrusted_proxy_header()
        if not self.warned_untrusted_proxy:
            self.warned_untrusted_proxy = True
            logger.warning(
                "a request carries X-Real-IP or X-Forwarded-For but --trust-proxy is off: the header is ignored "
                "and the per-IP limits see the proxy's address %s for every client behind it; run with "
                "--trust-proxy behind a proxy that overwrites X-Real-IP (logged once; counted in "
                "signaling_untrusted_proxy_headers_total)",
                request.remote_ip,
            )

    def ip_connected(self, ip: str) -> bool:
        """Count a new socket from ``ip``; False (and not counted) if it is over the limit."""
        count = self.sockets_per_ip.get(ip, 0)
        if count >= self.settings.max_connections_per_ip:
            return False
        self.sockets_per_ip[ip] = count + 1
        return True

    def ip_disconnected(self, ip: str) -> None:
        count = self.sockets_per_ip.get(ip, 0) - 1
        if count > 0:
            self.sockets_per_ip[ip] = count
        else:
            self.sockets_per_ip.pop(ip, None)

    def socket_opened(self) -> None:
        self.open_sockets += 1
        self.sockets_closed.clear()

    def socket_closed(self) -> None:
        self.open_sockets -= 1
        if self.open_sockets == 0:
            self.sockets_closed.set()

    async def ask_hub(self, make_message: Callable[[LoopFuture[T]], Asking[T]]) -> T:
        """Tell the Hub a message carrying a reply future and await the reply on the loop
        (``T``, what the reply is, follows from the message's ``reply`` field)."""
        reply: LoopFuture[T] = LoopFuture()
        try:
            self.hub.tell(make_message(reply))
        except pykka.ActorDeadError:
            raise ShuttingDown() from None  # the Hub stops last, during shutdown

        return await reply.result(JOIN_TIMEOUT)

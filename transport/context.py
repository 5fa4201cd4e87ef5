"""What the handlers are given (through ``initialize``) instead of globals."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pykka

from actors.runtime import LoopFuture
from metrics.signaling import SignalingMetrics
from transport.settings import Settings
from transport.tokens import TokenIssuer

# How long a handler waits for the Hub/Room to answer a join before giving up.
JOIN_TIMEOUT = 10.0


@dataclass
class ServiceContext:
    settings: Settings
    hub: pykka.ActorRef[Any]
    metrics: SignalingMetrics
    tokens: TokenIssuer
    draining: bool = False
    # Open WebSocket connections, so shutdown can wait for their close handshakes.
    open_sockets: int = 0
    sockets_closed: asyncio.Event = field(default_factory=asyncio.Event)

    def socket_opened(self) -> None:
        self.open_sockets += 1
        self.sockets_closed.clear()

    def socket_closed(self) -> None:
        self.open_sockets -= 1
        if self.open_sockets == 0:
            self.sockets_closed.set()

    async def ask_hub(self, make_message: Any) -> Any:
        """Tell the Hub a message carrying a reply future and await the reply on the loop."""
        reply = LoopFuture()
        self.hub.tell(make_message(reply))

        async def wait() -> Any:
            return await reply

        return await asyncio.wait_for(wait(), JOIN_TIMEOUT)

"""What a Room needs of a client connection, and nothing more.

Rooms never see Tornado objects: a local WebSocket, a test recorder or (in cluster
mode) a relay to another backend are all sinks. Both methods are called on the
actor's thread (the IOLoop with the loop runtime) and must never block: a sink that
cannot keep up closes itself rather than buffer without bound.
"""

from __future__ import annotations

from typing import Protocol


class ClientSink(Protocol):
    def send(self, frame: bytes) -> None:
        """Queue one text frame (UTF-8 encoded JSON) for the client."""

    def close(self, code: int, reason: str) -> None:
        """Close the client's connection with a WebSocket close code."""

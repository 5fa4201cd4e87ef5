"""A ClientSink for a member whose WebSocket is on another backend (cluster mode).

To the Room it is just another sink. ``send`` and ``close`` wrap the frame in an
envelope addressed to the member's attachment on its backend and hand it to
``publish``, which queues it for Redis without blocking (transport/cluster.py); no
Redis import here. Every envelope carries the room's lease epoch, so the receiving
backend can drop frames from an owner that has lost the room (actors/ownership.py).
"""

from __future__ import annotations

from collections.abc import Callable

from actors.ownership import CLOSE, FRAME, envelope

Publish = Callable[[str, bytes], None]


class RemoteSink:
    __slots__ = ("_prefix", "_publish", "attachment", "channel", "client_id", "closed", "epoch")

    def __init__(
        self, publish: Publish, channel: str, attachment: str, epoch: int, client_id: str, owner: str = ""
    ) -> None:
        self._publish = publish
        self.channel = channel
        self.attachment = attachment
        self.epoch = epoch
        self.client_id = client_id
        self.closed = False
        # Every frame for this member starts with the same header: encode it once.
        # "o" names the owner, so an edge that no longer knows the attachment can answer
        # with a LEAVE (transport/cluster_relay.py) instead of dropping frames silently.
        self._prefix = envelope({"k": FRAME, "a": attachment, "e": epoch, "o": owner})

    def send(self, frame: bytes) -> None:
        if not self.closed:  # after close the edge has forgotten the attachment anyway
            self._publish(self.channel, self._prefix + frame)

    def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self._publish(
            self.channel, envelope({"k": CLOSE, "a": self.attachment, "e": self.epoch, "code": code, "reason": reason})
        )

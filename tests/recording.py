"""A ClientSink that records what a Room sends it: the actor tests' window into rooms."""

from __future__ import annotations

import asyncio
import json
from typing import Any


class RecordingSink:
    def __init__(self, name: str = "") -> None:
        self.name = name
        self.frames: list[bytes] = []
        self.closed: tuple[int, str] | None = None
        self._changed = asyncio.Event()

    def send(self, frame: bytes) -> None:
        self.frames.append(frame)
        self._changed.set()

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)
        self._changed.set()

    async def wait_closed(self, timeout: float = 5.0) -> tuple[int, str]:
        from tests.support import scaled

        async def until_closed() -> tuple[int, str]:
            while self.closed is None:
                self._changed.clear()
                await self._changed.wait()
            return self.closed

        return await asyncio.wait_for(until_closed(), scaled(timeout))

    async def wait_for(self, type_: str, timeout: float = 5.0) -> None:
        """Until a frame of ``type_`` has arrived (a timer in the room fired, say)."""
        from tests.support import scaled

        async def until_seen() -> None:
            while type_ not in self.types():
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(until_seen(), scaled(timeout))

    def decoded(self) -> list[dict[str, Any]]:
        return [json.loads(f) for f in self.frames]

    def types(self) -> list[str]:
        return [json.loads(f)["type"] for f in self.frames]

    def __repr__(self) -> str:
        return f"RecordingSink({self.name})"

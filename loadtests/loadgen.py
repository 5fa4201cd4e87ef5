"""The load generator behind bench.py: one process driving one server.

bench.py starts one of these per server under test and sends it commands, one JSON
object per line on stdin; each command gets one JSON line back on stdout. Keeping
the generator in its own process means its CPU never counts against the server's,
which bench.py reads from /proc. Commands:

- ``{"cmd": "connect", "n": N, "concurrency": C, "prefix": P}``: open N WebSockets in
  N/2 rooms (two peers a room, open mode: the room id is the capability); with
  ``"secret"`` each peer shows a token minted with it (token and cluster mode), with
  ``"b_port"`` each room's second peer connects to that port (another backend);
- ``{"cmd": "rooms", "size": K, "rooms": R, "prefix": P}``: open R rooms of K peers
  each (``p0`` .. ``pK-1``, one after another in a room, rooms ``concurrency`` at a time);
- ``{"cmd": "relay", "rate": R, "seconds": S, "size": B, "drain": D}``: send R offers a
  second (about B bytes of SDP each) for S seconds, round-robin over the pairs and
  alternating direction; then wait up to D seconds for the stragglers. Latency is
  send to receive, measured here (the clock is shared by sender and receiver).
  ``"pairs": K`` sends over the first K pairs only (the others stay idle);
  ``"with_latencies": true`` adds every latency to the answer (bench.py merges slices);
  ``"broadcast": true`` sends over the members of ``rooms`` instead, round-robin,
  each frame without ``to``: every copy (frame, receiver) is counted, K-1 expected;
- ``{"cmd": "setups", "seconds": S, "concurrency": C}``: C workers in a closed loop of
  call setups (REST join x2, two WebSockets, offer/answer, 10 candidates each way,
  leave) for S seconds;
- ``{"cmd": "close"}``: close every WebSocket opened by ``connect``;
- ``{"cmd": "quit"}``.

Only 127.0.0.1 is ever dialled. websockets (asyncio), orjson and, when installed,
uvloop keep the generator's own cost low.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import jwt
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

try:
    from loadtests import wire
except ImportError:  # run as a script (python loadtests/loadgen.py): wire.py is a sibling
    import wire

try:
    import orjson
except ImportError:  # the generator's own speed only: the figures are the server's CPU
    import types

    orjson = types.SimpleNamespace(  # type: ignore[assignment]
        loads=json.loads, dumps=lambda obj: json.dumps(obj, separators=(",", ":")).encode()
    )

FRAME_TIMEOUT = 10.0


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


class HttpConnection:
    """One keep-alive HTTP connection to the server (an aiohttp session with a pool of one)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.session: aiohttp.ClientSession | None = None

    async def post_json(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        if self.session is None:  # created on the running loop, as aiohttp requires
            self.session = aiohttp.ClientSession(
                f"http://127.0.0.1:{self.port}", connector=aiohttp.TCPConnector(limit=1)
            )
        async with self.session.post(
            path, data=orjson.dumps(body), headers={"Content-Type": "application/json"}
        ) as response:
            payload = await response.read()
            return response.status, orjson.loads(payload) if payload else None

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
        self.session = None


@dataclass
class Peer:
    ws: ClientConnection
    client_id: str
    reader: asyncio.Task[None] | None = None
    index: int = 0  # place in its room (rooms command): the receiver's slot of a broadcast copy


@dataclass
class Call:
    """Two peers that have negotiated a call: their sockets and REST join answers."""

    room: str
    a: ClientConnection
    b: ClientConnection
    a_join: dict[str, Any]
    b_join: dict[str, Any]


@dataclass
class RelayRun:
    """One relay command's frames: seq ``first`` .. ``first + len(sent_at) - 1``, each with
    ``copies`` receiver slots in ``got`` (1 for a pair, the room size for a broadcast)."""

    first: int
    copies: int
    sent_at: list[float]
    got: bytearray
    latencies: list[float] = field(default_factory=list)
    received: int = 0
    duplicates: int = 0
    misrouted: int = 0  # a copy of its own frame back at the sender


class Generator:
    def __init__(self, port: int) -> None:
        self.port = port
        self.pairs: list[tuple[Peer, Peer]] = []
        self.rooms: list[list[Peer]] = []
        self.run: RelayRun | None = None
        # Sequence numbers run on across relay commands, so a straggler of an earlier
        # run is told apart (and counted as late) rather than taken for this run's frame.
        self.next_seq = 0
        self.late = 0
        self.error_frames = 0
        self.unexpected: list[str] = []

    async def open_ws(self, room: str, client: str, token: str = "", port: int = 0) -> ClientConnection:
        """The generator's one WebSocket options; ``port``: another backend than the generator's."""
        return await connect(
            wire.ws_url(port or self.port, room, client, token),
            compression=None,
            ping_interval=None,
            open_timeout=30,
            close_timeout=5,
            max_size=1 << 20,
            max_queue=None,
        )

    # -- connect / close --

    async def open_peer(self, room: str, client: str, secret: str = "", port: int = 0, index: int = 0) -> Peer:
        # Token mode (cluster mode needs it): mint the token here with the shared secret.
        token = jwt.encode({"room": room, "sub": client, "exp": int(time.time()) + 3600}, secret) if secret else ""
        # With ``port``, this peer is on another backend (cluster mode: its frames cross Redis).
        ws = await self.open_ws(room, client, token, port)
        frame = orjson.loads(await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT))
        if frame["type"] != "joined":
            raise RuntimeError(f"wanted joined, got {frame['type']}")
        peer = Peer(ws, client, index=index)
        peer.reader = asyncio.create_task(self.read(peer))
        return peer

    async def read(self, peer: Peer) -> None:
        """Every frame a held peer receives: relayed offers are timed, presence ignored."""
        try:
            async for text in peer.ws:
                now = time.perf_counter()
                frame = orjson.loads(text)
                kind = frame["type"]
                if kind == "offer":
                    run = self.run
                    n = frame["data"]["seq"] - run.first if run is not None else -1
                    if run is None or not 0 <= n < len(run.sent_at):
                        self.late += 1
                        continue
                    if frame.get("from") == peer.client_id:
                        run.misrouted += 1
                        continue
                    slot = n * run.copies + peer.index
                    if run.got[slot]:
                        run.duplicates += 1
                        continue
                    run.got[slot] = 1
                    run.received += 1
                    run.latencies.append(now - run.sent_at[n])
                elif kind == "error":
                    self.error_frames += 1
                    if len(self.unexpected) < 5:
                        self.unexpected.append(str(text)[:200])
        except ConnectionClosed:
            pass

    async def cmd_connect(
        self, n: int, concurrency: int, prefix: str, secret: str = "", b_port: int = 0
    ) -> dict[str, Any]:
        semaphore = asyncio.Semaphore(concurrency)
        failures: list[str] = []

        async def open_room(i: int) -> None:
            async with semaphore:
                room = f"{prefix}-{i}"
                try:
                    a = await self.open_peer(room, "a", secret)
                    b = await self.open_peer(room, "b", secret, b_port)
                except Exception as exc:
                    failures.append(repr(exc)[:200])
                    return
                self.pairs.append((a, b))

        started = time.perf_counter()
        await asyncio.gather(*(open_room(i) for i in range(n // 2)))
        # The peers live until "close": out of the collector's sight (a full collection
        # over 10k of them takes 0.2-0.6 s here).
        gc.freeze()
        return {
            "connected": 2 * len(self.pairs),
            "failed": len(failures),
            "failures": failures[:5],
            "seconds": time.perf_counter() - started,
        }

    async def cmd_rooms(self, size: int, rooms: int, prefix: str, concurrency: int = 50) -> dict[str, Any]:
        """Open ``rooms`` rooms of ``size`` peers; a room that fails to fill is closed and counted."""
        if size < 2:
            raise ValueError(f"a room needs at least 2 members, not {size}")
        semaphore = asyncio.Semaphore(concurrency)
        failures: list[str] = []

        async def open_room(i: int) -> None:
            async with semaphore:
                members: list[Peer] = []
                try:
                    for j in range(size):
                        members.append(await self.open_peer(f"{prefix}-{i}", f"p{j}", index=j))
                except Exception as exc:
                    failures.append(repr(exc)[:200])
                    for peer in members:
                        await peer.ws.close()
                    return
                self.rooms.append(members)

        started = time.perf_counter()
        await asyncio.gather(*(open_room(i) for i in range(rooms)))
        return {
            "rooms": len(self.rooms),
            "connected": sum(len(r) for r in self.rooms),
            "failed": len(failures),
            "failures": failures[:5],
            "seconds": time.perf_counter() - started,
        }

    async def cmd_close(self) -> dict[str, Any]:
        semaphore = asyncio.Semaphore(500)

        async def close(peer: Peer) -> None:
            async with semaphore:
                await peer.ws.close()
                if peer.reader is not None:
                    await peer.reader

        started = time.perf_counter()
        peers = [p for pair in self.pairs for p in pair] + [p for room in self.rooms for p in room]
        self.pairs = []
        self.rooms = []
        await asyncio.gather(*(close(p) for p in peers), return_exceptions=True)
        gc.unfreeze()  # what connect froze may go now
        return {"closed": len(peers), "seconds": time.perf_counter() - started}

    # -- fixed-rate relay --

    async def cmd_relay(
        self,
        rate: float,
        seconds: float,
        size: int,
        drain: float,
        pairs: int = 0,
        broadcast: bool = False,
        with_latencies: bool = False,
    ) -> dict[str, Any]:
        # Who sends frame i, to whom, and how many copies it must arrive as.
        if broadcast:
            senders = [(peer, len(room) - 1) for room in self.rooms for peer in room]
            if not senders:
                raise RuntimeError("a broadcast relay needs rooms (the rooms command)")
            copies = max(len(room) for room in self.rooms)
        else:
            if pairs > len(self.pairs):
                raise RuntimeError(f"relay over {pairs} pairs, but {len(self.pairs)} are connected")
            chosen = self.pairs[:pairs] if pairs else self.pairs
            if not chosen:
                raise RuntimeError("relay needs connected pairs")
            copies = 1
        total = int(rate * seconds)
        first = self.next_seq
        self.next_seq += total
        run = self.run = RelayRun(first, copies, [0.0] * total, bytearray(total * copies))
        self.error_frames = 0
        body = wire.sdp("offer", size)
        text = ""
        expected = 0  # copies of every frame sent
        unsent = 0  # copies of the frames whose send failed
        send_errors = 0
        late = 0.0  # how far the sender fell behind its schedule, at worst
        # This process's own collector would pause the sender and the receivers mid-phase
        # (measured with 10k peers: young collections of 20-120 ms, full ones of 0.2-0.6 s)
        # and read as the server's latency: it is off while frames are in flight.
        gc.disable()
        try:
            started = time.perf_counter()
            i = 0
            while i < total:
                now = time.perf_counter()
                due = min(total, int((now - started) * rate) + 1)
                late = max(late, (due - i - 1) / rate)
                while i < due:
                    data = {"type": "offer", "sdp": body, "seq": first + i}
                    if broadcast:
                        sender, fan_out = senders[i % len(senders)]
                        text = orjson.dumps({"type": "offer", "data": data}).decode()
                    else:
                        sender, b = chosen[i % len(chosen)]
                        if (i // len(chosen)) % 2:
                            sender, b = b, sender
                        fan_out = 1
                        text = orjson.dumps({"type": "offer", "to": b.client_id, "data": data}).decode()
                    expected += fan_out
                    run.sent_at[i] = time.perf_counter()
                    try:
                        await sender.ws.send(text)
                    except ConnectionClosed:
                        send_errors += 1
                        unsent += fan_out
                    i += 1
                # Sleep until the next frame is due (at least a millisecond: at high rates
                # frames go out in small bursts); never spin, the server needs the other core.
                await asyncio.sleep(max(0.001, started + i / rate - time.perf_counter()))
            send_seconds = time.perf_counter() - started
            deadline = time.perf_counter() + drain
            while run.received < expected - unsent and time.perf_counter() < deadline:
                await asyncio.sleep(0.005)
        finally:
            gc.enable()
        latencies = sorted(run.latencies)
        self.run = None
        late_frames, self.late = self.late, 0
        ms = 1000.0
        return {
            "sent": total,
            "expected": expected,
            "received": run.received,
            "lost": expected - run.received,
            "duplicates": run.duplicates,
            "misrouted": run.misrouted,
            # Frames of an earlier relay command that arrived after it ended (its drain ran out).
            "late_from_earlier": late_frames,
            "send_errors": send_errors,
            "error_frames": self.error_frames,
            "error_samples": self.unexpected[:5],
            "delivered_ratio": run.received / expected if expected else None,
            "frame_bytes": len(text),
            "send_seconds": send_seconds,
            "achieved_rate": total / send_seconds if send_seconds else None,
            "sender_lag_ms": late * ms,
            "p50_ms": (percentile(latencies, 0.50) or 0) * ms,
            "p99_ms": (percentile(latencies, 0.99) or 0) * ms,
            "p999_ms": (percentile(latencies, 0.999) or 0) * ms,
            "max_ms": (latencies[-1] if latencies else 0) * ms,
            # Every latency, when asked for: bench.py merges slices of a phase.
            "latencies_ms": [t * ms for t in latencies] if with_latencies else None,
        }

    # -- call setups --

    async def expect(self, ws: ClientConnection, kind: str) -> dict[str, Any]:
        while True:
            frame = orjson.loads(await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT))
            if frame["type"] == kind:
                return frame
            if frame["type"] not in ("peer-joined", "peer-left"):
                raise RuntimeError(f"wanted {kind}, got {str(frame)[:200]}")

    async def join(self, http: HttpConnection, body: dict[str, Any]) -> dict[str, Any]:
        status, answer = await http.post_json("/rooms/join", body)
        if status != 200:
            raise RuntimeError(f"POST /rooms/join: {status} {answer}")
        return answer

    async def run_phase(self, phase: wire.Phase, peers: dict[str, ClientConnection]) -> None:
        """One phase of a wire.py scenario on these sockets ("a", "b")."""
        for step in phase.steps:
            ws = peers[step.peer]
            if isinstance(step, wire.Send):
                await ws.send(orjson.dumps(step.frame).decode())
            elif isinstance(step, wire.Expect):
                wire.check(await self.expect(ws, step.type), step.type, step.sender, step.data)
            else:
                await ws.close()

    async def open_call(self, http: HttpConnection, offer: str, answer: str) -> Call:
        """REST join x2, two WebSockets, then wire.negotiation (offer/answer, 10 candidates
        each way); the caller ends the call (``one_setup`` with wire.leave, soak.py with
        drops too)."""
        a_join = await self.join(http, {})
        b_join = await self.join(http, {"roomId": a_join["roomId"]})
        room = a_join["roomId"]
        a = await self.open_ws(room, a_join["clientId"], a_join["token"])
        b = None
        try:
            await self.expect(a, "joined")
            b = await self.open_ws(room, b_join["clientId"], b_join["token"])
            await self.expect(b, "joined")
            await self.expect(a, "peer-joined")
            for phase in wire.negotiation(a_join["clientId"], b_join["clientId"], offer, answer):
                await self.run_phase(phase, {"a": a, "b": b})
        except BaseException:
            await a.close()
            if b is not None:
                await b.close()
            raise
        return Call(room, a, b, a_join, b_join)

    async def one_setup(self, http: HttpConnection, offer: str, answer: str) -> float:
        started = time.perf_counter()
        call = await self.open_call(http, offer, answer)
        try:
            setup_time = time.perf_counter() - started
            await self.run_phase(wire.leave(call.a_join["clientId"]), {"a": call.a, "b": call.b})
            return setup_time
        finally:
            await call.a.close()
            await call.b.close()

    async def cmd_setups(self, seconds: float, concurrency: int, size: int) -> dict[str, Any]:
        times: list[float] = []
        failures: list[str] = []
        offer, answer = wire.sdp("offer", size), wire.sdp("answer", size)
        started = time.perf_counter()
        stop_at = started + seconds

        async def worker() -> None:
            http = HttpConnection(self.port)
            try:
                while time.perf_counter() < stop_at:
                    try:
                        times.append(await self.one_setup(http, offer, answer))
                    except Exception as exc:
                        failures.append(repr(exc)[:200])
                        await http.close()
            finally:
                await http.close()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        times.sort()
        ms = 1000.0
        return {
            "setups": len(times),
            "failed": len(failures),
            "failures": failures[:5],
            "seconds": elapsed,
            "setups_per_s": len(times) / elapsed,
            "p50_ms": (percentile(times, 0.50) or 0) * ms,
            "p99_ms": (percentile(times, 0.99) or 0) * ms,
            "max_ms": (times[-1] if times else 0) * ms,
            "times_ms": [t * ms for t in times],  # so slices of a phase can be merged
        }


async def serve(port: int) -> None:
    gen = Generator(port)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        command = json.loads(line)
        name = command.pop("cmd")
        if name == "quit":
            await gen.cmd_close()
            break
        cpu0 = time.process_time()
        try:
            reply = await getattr(gen, f"cmd_{name}")(**command)
        except Exception as exc:
            reply = {"error": repr(exc), "traceback": traceback.format_exc()}
        reply["generator_cpu_s"] = time.process_time() - cpu0
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


def main() -> int:
    port = int(sys.argv[1])
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(port))
    else:
        uvloop.run(serve(port))
    return 0


if __name__ == "__main__":
    sys.exit(main())

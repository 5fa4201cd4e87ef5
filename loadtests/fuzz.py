"""A seeded fuzzer at volume against a real server process: ``python -m loadtests.fuzz``.

Beside the hypothesis tests (tests/transport/test_fuzz.py, which settle every frame
one at a time), this sends many frames fast, from many clients in many rooms, and
reconciles afterwards: from the server's own metrics, every frame it read was
answered with an error, handed to a room (delivered, held or rejected) or counted as
dropped; and from the clients' side, every error frame and delivery they were owed
arrived, and none crossed rooms. Meanwhile a healthy pair in another room (its own
process, so the fuzzer's CPU does not blur its clock) measures relay latency.

The same ``--seed`` gives the same frames in the same order (timing, and so what the
server interleaves, still varies). What is sent:

- valid envelopes to a member of the room, broadcasts, frames for a REST-reserved
  seat that never connects (held, then ``peer-queue-full``), ``to`` a member of
  another room (must be refused: ``unknown-peer``);
- valid envelopes with one field broken (type, to, from, data, an extra key, a W3C
  field of the wrong type or over its length cap);
- random text, random JSON values, deep nesting, huge numbers, ``NaN``, binary
  frames, frames over ``--max-frame-bytes``;
- connection killers, from clients alone in their own rooms: a text frame that is
  not UTF-8 (Tornado drops the connection: close counted as 1002) and a frame over
  the hard cap (close 1009); the client then comes back under a new id;
- churn: clients that leave cleanly and rejoin under a new id;
- malformed HTTP: REST join bodies, bad paths and methods, WebSocket query strings,
  broken upgrade requests and garbage request lines.

Pass: the process is alive and logged no traceback or ERROR; the reconciliations
hold; 0 deliveries outside the sender's room; no HTTP 5xx; the healthy pair's p99
stays under ``--p99-ms`` in every window. Prints (and with ``--out`` writes) one JSON
object with the figures and ``passed``. Exit status 0 only if it passed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from loadtests import wire
from loadtests.launch import launch, stop
from loadtests.loadgen import percentile

ROOT = Path(__file__).resolve().parents[1]
MAX_FRAME_BYTES = 64 * 1024  # the server's default --max-frame-bytes; the fuzzer keeps it
MARKER = "zz-marker"  # an id no member has: a frame to it is answered with unknown-peer
PRESENCE = ("joined", "peer-joined", "peer-left")
# Per-connection rate limits are lifted (they would answer most of a fast fuzz with
# rate-limited, which tests/transport/test_limits.py covers); everything else is default.
SERVER_ARGS = ("--rate-limit", "1000000", "--rate-burst", "1000000")
OPEN_TIMEOUT = 30.0
ANSWER_TIMEOUT = 60.0


# -- frames --


class Frames:
    """Frame text/bytes from one seeded ``random.Random``; the caller decides the sender."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def valid(self, to: str | None) -> dict[str, Any]:
        r = self.rng
        kind = r.choice(("offer", "answer", "ice-candidate"))
        if kind == "ice-candidate":
            data: dict[str, Any] = wire.candidate(r.randrange(1000))
        else:
            data = {
                "type": kind if kind == "offer" else r.choice(("answer", "pranswer")),
                "sdp": wire.sdp(kind, r.choice((60, 300, 1200))),
            }
        if r.random() < 0.1:
            data["app"] = self.json_value(2)  # the peers' business: forwarded untouched
        frame: dict[str, Any] = {"type": kind, "data": data}
        if to is not None:
            frame["to"] = to
        return frame

    def broken(self, own_id: str, to: str) -> dict[str, Any]:
        """A valid envelope with exactly one thing wrong."""
        r = self.rng
        frame = self.valid(to)
        data = frame["data"]
        match r.randrange(12):
            case 0:
                frame["type"] = r.choice(("Offer", "bye", "", 7, None, "ice_candidate", "offer\x00"))
            case 1:
                frame["to"] = r.choice(("", "x" * 65, "bad id", "ü", 5, None, ["a"], "../a"))
            case 2:
                frame["from"] = r.choice((own_id + "x", "someone", "", 1))  # from-mismatch or invalid
            case 3:
                frame.pop("data")
            case 4:
                frame["data"] = r.choice(([], "sdp", 1, None, True))
            case 5:
                frame[r.choice(("extra", "id", "room", "roomId"))] = self.json_value(1)
            case 6:
                frame.pop("type")
            case 7:
                data["sdp" if "sdp" in data else "candidate"] = r.choice((None, 1, [], {}, True))
            case 8:
                if "candidate" in data:
                    data["candidate"] = "c" * 1025  # over the candidate cap
                else:
                    frame["to"] = own_id  # to oneself: no other member of that name
            case 9:
                key = "sdpMLineIndex" if "candidate" in data else "type"
                data[key] = r.choice((-1, 65536, 2**64, 1.5, "0", True, "rollback"))
            case 10:
                if "candidate" in data:
                    data["sdpMid"] = r.choice((1, "m" * 65, []))
                else:
                    data.pop("sdp")
            case _:
                frame["type"] = "answer" if frame["type"] == "offer" else "offer"  # data of the wrong kind
        return frame

    def json_value(self, depth: int) -> Any:
        r = self.rng
        if depth <= 0 or r.random() < 0.4:
            return r.choice(
                (None, True, False, r.randrange(-(10**6), 10**6), r.random() * 1e6, self.text(12), 2**70, -0.0, 1e308)
            )
        if r.random() < 0.5:
            return [self.json_value(depth - 1) for _ in range(r.randrange(4))]
        return {self.text(6): self.json_value(depth - 1) for _ in range(r.randrange(4))}

    def text(self, size: int) -> str:
        r = self.rng
        alphabet = r.choice(("ascii", "unicode", "controls"))
        n = r.randrange(size + 1)
        if alphabet == "ascii":
            return "".join(chr(r.randrange(32, 127)) for _ in range(n))
        if alphabet == "controls":
            return "".join(chr(r.randrange(0, 32)) for _ in range(n))
        # Any code point but the surrogates (not encodable as UTF-8 text).
        return "".join(
            chr(c if not 0xD800 <= c < 0xE000 else 0xFFFD) for c in (r.randrange(0x110000) for _ in range(n))
        )

    def nested(self) -> str:
        n = self.rng.choice((10, 100, 1000, 5000, 10000))
        return self.rng.choice(("[" * n + "]" * n, '{"a":' * n + "1" + "}" * n, "[" * n))

    def huge_number(self) -> str:
        r = self.rng
        number = r.choice(
            (
                "1e999",
                "-1e999",
                "9" * r.choice((20, 400, 5000)),
                "1" + "0" * 4000,
                "NaN",
                "Infinity",
                "-Infinity",
                "0." + "0" * 3000 + "1",
                str(2**64),
                "-0",
            )
        )
        if r.random() < 0.5:
            return number
        return json.dumps({"type": "ice-candidate", "to": "x", "data": {"candidate": "c"}}).replace(
            '"c"}', f'"c", "sdpMLineIndex": {number}}}'
        )


@dataclass
class Tally:
    sent: Counter[str] = field(default_factory=Counter)  # by kind: frames the server reads
    killers: Counter[str] = field(default_factory=Counter)  # frames that end their connection
    errors: Counter[str] = field(default_factory=Counter)  # error frames received, by code
    delivered: int = 0  # relayed frames received by fuzz clients
    presence: int = 0
    cross_room: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    closes: Counter[str] = field(default_factory=Counter)  # close codes fuzz clients saw
    churned: int = 0
    http: Counter[str] = field(default_factory=Counter)  # HTTP fuzz outcomes
    http_5xx: list[str] = field(default_factory=list)


class FuzzClient:
    """One member of a fuzz room: a websockets connection and a reader that counts."""

    def __init__(self, fuzz: Fuzzer, room: str, client_id: str) -> None:
        self.fuzz = fuzz
        self.room = room
        self.client_id = client_id
        self.ws: ClientConnection | None = None
        self.reader: asyncio.Task[None] | None = None
        self.markers_owed = 0
        self.marker_seen = asyncio.Event()

    async def open(self) -> None:
        url = wire.ws_url(self.fuzz.port, self.room, self.client_id)
        self.ws = await connect(
            url, compression=None, open_timeout=OPEN_TIMEOUT, close_timeout=10, max_size=None, max_queue=None
        )
        first = json.loads(await asyncio.wait_for(self.ws.recv(), ANSWER_TIMEOUT))
        if first["type"] != "joined":
            raise RuntimeError(f"{self.client_id}: wanted joined, got {first}")
        self.reader = asyncio.create_task(self.read(self.ws))

    async def read(self, ws: ClientConnection) -> None:
        tally = self.fuzz.tally
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    tally.unexpected.append(f"binary frame to {self.client_id}")
                    continue
                frame = json.loads(message)
                kind = frame.get("type")
                if kind == "error":
                    text = frame["data"]["message"]
                    if MARKER in text:
                        self.markers_owed -= 1
                        if self.markers_owed == 0:
                            self.marker_seen.set()
                        continue
                    tally.errors[frame["data"]["code"]] += 1
                elif kind in PRESENCE:
                    tally.presence += 1
                elif kind in ("offer", "answer", "ice-candidate"):
                    tally.delivered += 1
                    sender = str(frame.get("from", ""))
                    if not sender.startswith(self.room + "-"):
                        tally.cross_room.append(f"{sender} -> {self.client_id}")
                elif len(tally.unexpected) < 20:
                    tally.unexpected.append(message[:200])
        except ConnectionClosed:
            pass
        code = ws.close_code
        tally.closes[str(code)] += 1

    async def send(self, payload: str | bytes, text: bool | None = None) -> None:
        assert self.ws is not None
        await self.ws.send(payload, text=text)

    async def settle(self) -> None:
        """Send a marker and wait for its answer: every answer to what we sent before it is in."""
        self.markers_owed += 1
        self.marker_seen.clear()
        await self.send(json.dumps({"type": "ice-candidate", "to": MARKER, "data": {"candidate": ""}}))
        self.fuzz.tally.sent["marker"] += 1
        await asyncio.wait_for(self.marker_seen.wait(), ANSWER_TIMEOUT)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            await self.reader


class Fuzzer:
    def __init__(self, cfg: argparse.Namespace, port: int) -> None:
        self.cfg = cfg
        self.port = port
        self.rng = random.Random(cfg.seed)
        self.frames = Frames(self.rng)
        self.tally = Tally()
        self.rooms = [f"fz{n}" for n in range(cfg.rooms)]
        self.clients: dict[str, list[FuzzClient]] = {}
        self.stubs: dict[str, str] = {}  # room -> a REST-reserved client id that never connects
        self.generation = 0

    def new_id(self, room: str) -> str:
        self.generation += 1
        return f"{room}-c{self.generation}"

    async def setup(self) -> None:
        for room in self.rooms:
            status, body = await asyncio.to_thread(
                post, self.port, "/rooms/join", json.dumps({"roomId": room, "clientId": room + "-stub"})
            )
            if status == 200:
                self.stubs[room] = body["clientId"]
            members = [FuzzClient(self, room, self.new_id(room)) for _ in range(self.cfg.clients_per_room)]
            for member in members:
                await member.open()
            self.clients[room] = members

    # -- one frame from one client --

    def pick(self) -> tuple[FuzzClient, str, str | bytes, bool | None]:
        """(client, kind, payload, text flag for websockets) for the next frame."""
        r = self.rng
        room = r.choice(self.rooms)
        members = self.clients[room]
        me = r.choice(members)
        others = [m.client_id for m in members if m is not me]
        f = self.frames
        roll = r.random()
        if roll < 0.30:
            return me, "valid", json.dumps(f.valid(r.choice(others))), None
        if roll < 0.35:
            return me, "broadcast", json.dumps(f.valid(None)), None
        if roll < 0.40:
            return me, "to-stub", json.dumps(f.valid(self.stubs.get(room, "nobody"))), None
        if roll < 0.45:
            other_room = r.choice(self.rooms)
            target = r.choice(self.clients[other_room]).client_id
            return me, "cross-room", json.dumps(f.valid(target)), None
        if roll < 0.65:
            return me, "broken", json.dumps(f.broken(me.client_id, r.choice(others))), None
        if roll < 0.73:
            return me, "random-text", f.text(r.choice((10, 100, 2000))), None
        if roll < 0.78:
            return me, "json-value", json.dumps(f.json_value(4)), None
        if roll < 0.82:
            return me, "nested", f.nested(), None
        if roll < 0.86:
            return me, "huge-number", f.huge_number(), None
        if roll < 0.91:
            return me, "binary", r.randbytes(r.randrange(200)), None
        if roll < 0.912:
            # Over --max-frame-bytes but under the hard cap (4x): an error frame.
            return me, "too-large", json.dumps(f.valid(r.choice(others))) + " " * (MAX_FRAME_BYTES + 10), None
        if roll < 0.95:
            return (
                me,
                "from",
                json.dumps({**f.valid(r.choice(others)), "from": r.choice((me.client_id, "spoof"))}),
                None,
            )
        return me, "random-bytes-as-text", r.randbytes(r.randrange(1, 100)).decode("latin-1"), None

    async def kamikaze(self, n: int) -> None:
        """A client alone in its room ends its own connection; it comes back under a new id."""
        room = f"fzk{n % 16}"
        victim = FuzzClient(self, room, self.new_id(room))
        await victim.open()
        await victim.settle()  # nothing of ours in flight when the killer goes
        if self.rng.random() < 0.5:
            await victim.send(b"\xff\xfe{" + self.rng.randbytes(8), text=True)
            self.tally.killers["invalid-utf8"] += 1
        else:
            await victim.send("x" * (4 * MAX_FRAME_BYTES + 1))
            self.tally.killers["over-hard-cap"] += 1
        await asyncio.wait_for(victim.close(), ANSWER_TIMEOUT)

    async def churn(self) -> None:
        """A member leaves cleanly (after its answers are in) and rejoins under a new id."""
        room = self.rng.choice(self.rooms)
        members = self.clients[room]
        index = self.rng.randrange(len(members))
        leaving = members[index]
        await leaving.settle()
        await leaving.close()
        joining = FuzzClient(self, room, self.new_id(room))
        await joining.open()
        members[index] = joining
        self.tally.churned += 1

    async def run(self) -> float:
        cfg = self.cfg
        total = cfg.frames
        started = time.perf_counter()
        http_task = asyncio.create_task(self.http_fuzz(max(10, total // 200)))
        sent = 0
        while sent < total:
            due = total if cfg.rate <= 0 else min(total, int((time.perf_counter() - started) * cfg.rate) + 1)
            while sent < due:
                if sent % 2000 == 1999:
                    await self.kamikaze(sent // 2000)
                    sent += 2  # the marker and the killer
                    continue
                if sent % 1000 == 999:
                    await self.churn()
                    sent += 1  # the marker
                    continue
                client, kind, payload, text = self.pick()
                try:
                    await client.send(payload, text=text)
                except ConnectionClosed:
                    self.tally.unexpected.append(f"{client.client_id} closed under us")
                    raise
                self.tally.sent[kind] += 1
                sent += 1
            if cfg.rate > 0:
                await asyncio.sleep(max(0.001, started + sent / cfg.rate - time.perf_counter()))
        for members in self.clients.values():
            for member in members:
                await member.settle()
        await http_task
        return time.perf_counter() - started

    async def close(self) -> None:
        for members in self.clients.values():
            for member in members:
                await member.close()

    # -- HTTP: REST bodies, paths, query strings, upgrades --

    async def http_fuzz(self, count: int) -> None:
        rng = random.Random(self.cfg.seed + 1)  # its own stream: the frame sequence stays the same
        frames = Frames(rng)
        for n in range(count):
            roll = rng.random()
            if roll < 0.4:
                body = rng.choice(
                    (
                        rng.randbytes(rng.randrange(300)),
                        json.dumps(frames.json_value(3)).encode(),
                        json.dumps({"roomId": frames.text(70), "clientId": frames.text(10)}).encode(),
                        json.dumps({"roomId": f"fzh{n}", "clientId": "a", "x": 1}).encode(),
                        b"{" * 5000,
                        b"x" * (MAX_FRAME_BYTES + 1),
                    )
                )
                path = rng.choice(
                    ("/rooms/join", f"/rooms/{frames.text(10)}/join".replace(" ", "%20"), "/rooms/fzh/join")
                )
                request = (
                    f"POST {quote_path(path)} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                ).encode() + body
            elif roll < 0.7:
                query = "&".join(
                    f"{rng.choice(('roomId', 'clientId', 'ClientId', 'token', 'x', ''))}="
                    f"{urllib.parse.quote(frames.text(rng.choice((5, 70))))}"
                    for _ in range(rng.randrange(4))
                )
                await self.fuzz_query(query)
                continue
            else:
                request = rng.choice(
                    (
                        (
                            b"GET /ws?roomId=fzu&clientId=a HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                            b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n"
                        ),  # no key
                        (
                            b"GET /ws?roomId=fzu&clientId=a HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                            b"Sec-WebSocket-Version: 7\r\n\r\n"
                        ),  # wrong version
                        b"GET /ws?roomId=fzu&clientId=a HTTP/1.1\r\nHost: x\r\n\r\n",  # no upgrade at all
                        b"POST /ws HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
                        rng.randbytes(rng.randrange(1, 200)) + b"\r\n\r\n",
                        b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
                        b"GET /healthz HTTP/1.1\r\n" + b"X-A: b\r\n" * 2000 + b"\r\n",
                        b"DELETE /rooms/join HTTP/1.1\r\nHost: x\r\n\r\n",
                        b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
                        b"GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                    )
                )
            await self.raw_request(request)

    async def raw_request(self, request: bytes) -> None:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.port), OPEN_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            self.tally.http_5xx.append(f"connect failed: {exc!r}")
            return
        try:
            writer.write(request)
            await writer.drain()
            status_line = await asyncio.wait_for(reader.readline(), ANSWER_TIMEOUT)
        except (ConnectionError, TimeoutError) as exc:
            status_line = b""
            self.tally.http[f"reset:{type(exc).__name__}"] += 1
        finally:
            writer.close()
        if not status_line:
            self.tally.http["closed"] += 1
            return
        parts = status_line.split()
        status = parts[1].decode(errors="replace") if len(parts) > 1 else "?"
        self.tally.http[status] += 1
        if status.startswith("5") or not status.isdigit():
            self.tally.http_5xx.append(f"{status_line[:100]!r} for {request[:100]!r}")

    async def fuzz_query(self, query: str) -> None:
        url = f"ws://127.0.0.1:{self.port}/ws?{query}"
        try:
            ws = await connect(url, compression=None, open_timeout=OPEN_TIMEOUT, close_timeout=10)
        except InvalidStatus as exc:
            status = exc.response.status_code
            self.tally.http[f"ws-{status}"] += 1
            if status >= 500:
                self.tally.http_5xx.append(f"ws {status} for {query[:100]!r}")
            return
        except (InvalidHandshake, OSError) as exc:
            self.tally.http_5xx.append(f"ws handshake failed: {exc!r} for {query[:100]!r}")
            return
        try:
            first = json.loads(await asyncio.wait_for(ws.recv(), ANSWER_TIMEOUT))
            self.tally.http[f"ws-{first['type']}"] += 1
        except ConnectionClosed:
            code = ws.close_code or 0
            self.tally.http[f"ws-close-{code}"] += 1
            if not 4400 <= code < 4500:
                self.tally.http_5xx.append(f"ws closed {code} for {query[:100]!r}")
        finally:
            await ws.close()


def quote_path(path: str) -> str:
    return urllib.parse.quote(path, safe="/%")


def post(port: int, path: str, body: str) -> tuple[int, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body.encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=ANSWER_TIMEOUT) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def scrape(metrics_port: int) -> dict[str, float]:
    """Every sample of /metrics, keyed ``name{label="value",...}`` (labels sorted)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=ANSWER_TIMEOUT) as response:
        text = response.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


def total(samples: dict[str, float], name: str, **match: str) -> float:
    want = [f'{k}="{v}"' for k, v in match.items()]
    return sum(v for k, v in samples.items() if (k == name or k.startswith(name + "{")) and all(w in k for w in want))


# -- the healthy pair, in its own process --


async def probe(port: int, room: str, rate: float, window: float) -> dict[str, Any]:
    """Offers back and forth at ``rate`` until stdin closes; one-way latency per window."""
    a = await connect(wire.ws_url(port, room, "a"), compression=None)
    b = await connect(wire.ws_url(port, room, "b"), compression=None)
    for ws in (a, b):
        assert json.loads(await ws.recv())["type"] == "joined"
    assert json.loads(await a.recv())["type"] == "peer-joined"
    sent_at: dict[int, float] = {}
    latencies: list[tuple[float, float]] = []  # (received at, seconds)
    bad: list[str] = []

    async def read(ws: ClientConnection) -> None:
        try:
            async for text in ws:
                now = time.perf_counter()
                frame = json.loads(text)
                seq = frame.get("data", {}).get("seq")
                if frame.get("type") in ("offer", "answer") and seq in sent_at:
                    latencies.append((now, now - sent_at.pop(seq)))
                elif frame.get("type") not in PRESENCE:
                    bad.append(str(text)[:200])
        except ConnectionClosed:
            pass

    readers = [asyncio.create_task(read(ws)) for ws in (a, b)]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def stop_now() -> None:  # any input or EOF on stdin ends the run
        loop.remove_reader(sys.stdin.fileno())
        stop.set()

    loop.add_reader(sys.stdin.fileno(), stop_now)
    started = time.perf_counter()
    load: list[float] = []  # the machine's 1-minute load average, once a window
    seq = 0
    while not stop.is_set():
        if (time.perf_counter() - started) // window >= len(load):
            load.append(os.getloadavg()[0])
        sender, to, kind = (a, "b", "offer") if seq % 2 == 0 else (b, "a", "answer")
        sent_at[seq] = time.perf_counter()
        await sender.send(json.dumps({"type": kind, "to": to, "data": {"type": kind, "sdp": "v=0", "seq": seq}}))
        seq += 1
        await asyncio.sleep(max(0.0, started + seq / rate - time.perf_counter()))
    deadline = time.perf_counter() + 5
    while sent_at and time.perf_counter() < deadline:
        await asyncio.sleep(0.01)
    for ws in (a, b):
        await ws.close()
    await asyncio.gather(*readers)
    windows: dict[int, list[float]] = {}
    for at, seconds in latencies:
        windows.setdefault(int((at - started) / window), []).append(seconds)
    window_p99 = [(percentile(sorted(v), 0.99) or 0) * 1000 for _, v in sorted(windows.items())]
    ordered = sorted(s for _, s in latencies)
    return {
        "sent": seq,
        "received": len(latencies),
        "lost": len(sent_at),
        "unexpected": bad[:5],
        "p50_ms": (percentile(ordered, 0.5) or 0) * 1000,
        "p99_ms": (percentile(ordered, 0.99) or 0) * 1000,
        "max_ms": (ordered[-1] if ordered else 0) * 1000,
        "window_seconds": window,
        "worst_window_p99_ms": max(window_p99, default=0.0),
        "window_p99_ms": [round(v, 2) for v in window_p99],
        # On a shared machine, the other processes' demand explains most bad windows.
        "cpus": os.cpu_count(),
        "window_load_average": load,
    }


# -- the run --


async def wait_for(check: Any, timeout: float) -> bool:
    """Poll a condition another process decides (its metrics); the deadline bounds it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(check):
            return True
        await asyncio.sleep(0.2)
    return False


def reconcile(m: dict[str, float], tally: Tally, probe_result: dict[str, Any]) -> dict[str, Any]:
    received = total(m, "signaling_frames_received_total")
    errors = total(m, "signaling_frame_errors_total")
    relayed = total(m, "signaling_relayed_frames_total")
    dropped = total(m, "signaling_inbound_dropped_total")
    answered_by_room = sum(
        total(m, "signaling_messages_total", outcome="rejected", reason=r) for r in ("unknown-peer", "peer-queue-full")
    )
    delivered = total(m, "signaling_messages_total", outcome="delivered")
    outbound_dropped = total(m, "signaling_outbound_dropped_total")
    sent = sum(tally.sent.values())
    error_frames_seen = sum(tally.errors.values()) + tally.sent["marker"]  # every marker is answered
    return {
        "frames_sent": sent + probe_result.get("sent", 0),
        "frames_received": received,
        "frame_errors": errors,
        "relayed": {
            o: total(m, "signaling_relayed_frames_total", outcome=o) for o in ("delivered", "held", "rejected")
        },
        "inbound_dropped": dropped,
        "server_identity_holds": received == errors + relayed + dropped,
        "every_frame_read": received == sent + probe_result.get("sent", 0),
        "error_frames_expected": errors + answered_by_room,
        "error_frames_seen": error_frames_seen,
        "deliveries_expected": delivered - outbound_dropped - probe_result.get("received", 0),
        "deliveries_seen": tally.delivered,
        "outbound_dropped": outbound_dropped,
        "closes": {code: total(m, "signaling_closes_total", code=code) for code in ("1000", "1002", "1009")},
        # The server's own view of every relay in every room (receive to write, so the
        # machine's scheduling of the client processes is not in it), from its histogram.
        "server_relay_share_under_10ms": (
            total(m, "signaling_relay_latency_seconds_bucket", le="0.01")
            / max(1.0, total(m, "signaling_relay_latency_seconds_count"))
        ),
    }


async def fuzz(cfg: argparse.Namespace) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="signaling-fuzz-") as tmp,
        launch(*SERVER_ARGS, *(cfg.server_arg or []), log_path=Path(tmp) / "server.log") as server,
    ):
        probe_proc = None
        try:
            # (Blocking calls before any of the fuzzer's work is on this loop.)
            probe_proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "loadtests.fuzz",
                    "--probe",
                    str(server.port),
                    "--probe-rate",
                    str(cfg.probe_rate),
                    "--window",
                    str(cfg.window),
                ],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            # The load generator yields the CPU to the server and the healthy pair (which
            # started at normal priority): on a shared machine its own work must not
            # show up as the server's latency.
            os.nice(cfg.nice)
            fuzzer = Fuzzer(cfg, server.port)
            await fuzzer.setup()
            cpu0 = server.cpu_seconds()
            seconds = await fuzzer.run()
            cpu = server.cpu_seconds() - cpu0
            probe_out, _ = await asyncio.to_thread(probe_proc.communicate, "stop\n", 60)
            probe_result = json.loads(probe_out)
            sent = sum(fuzzer.tally.sent.values()) + probe_result["sent"]
            await wait_for(lambda: total(scrape(server.metrics_port), "signaling_frames_received_total") >= sent, 60)

            def settled() -> bool:
                figures = reconcile(scrape(server.metrics_port), fuzzer.tally, probe_result)
                return bool(figures["deliveries_seen"] >= figures["deliveries_expected"])

            await wait_for(settled, 30)
            figures = reconcile(scrape(server.metrics_port), fuzzer.tally, probe_result)
            await fuzzer.close()
            rss = server.rss_kb() / 1024
            alive = server.proc.poll() is None
        finally:
            if probe_proc is not None and probe_proc.poll() is None:
                probe_proc.kill()
                probe_proc.wait(10)
            exit_code = stop(server.proc, 30)  # SIGTERM: the exit code must be 0
        log = server.log_text()
    tally = fuzzer.tally
    killers = tally.killers
    checks = {
        "server_alive": alive,
        "clean_exit": exit_code == 0,
        "no_traceback_or_error_in_log": not re.search(r"Traceback| ERROR | CRITICAL ", log),
        "every_frame_read": figures["every_frame_read"],
        "received_equals_errors_plus_relayed_plus_dropped": figures["server_identity_holds"],
        "every_error_frame_arrived": figures["error_frames_seen"] == figures["error_frames_expected"],
        "every_delivery_arrived": figures["deliveries_seen"] == figures["deliveries_expected"],
        "no_delivery_outside_its_room": not tally.cross_room,
        "killers_counted": figures["closes"]["1002"] == killers["invalid-utf8"]
        and figures["closes"]["1009"] == killers["over-hard-cap"],
        "no_http_5xx": not tally.http_5xx,
        "nothing_unexpected": not tally.unexpected,
        "healthy_pair_lost_nothing": probe_result["lost"] == 0 and not probe_result["unexpected"],
        "server_relay_p99_under_10ms": figures["server_relay_share_under_10ms"] >= 0.99,
        f"healthy_pair_p99_under_{cfg.p99_ms:g}ms_in_every_window": probe_result["worst_window_p99_ms"] < cfg.p99_ms,
    }
    return {
        "passed": all(checks.values()),
        "checks": checks,
        "seed": cfg.seed,
        "frames": cfg.frames,
        "rooms": cfg.rooms,
        "clients_per_room": cfg.clients_per_room,
        "seconds": round(seconds, 2),
        "frames_per_second": round(figures["frames_sent"] / seconds, 1),
        "server_cpu_seconds": round(cpu, 2),
        "server_rss_mb": round(rss, 1),
        "sent_by_kind": dict(sorted(tally.sent.items())),
        "killers": dict(killers),
        "churned": tally.churned,
        "errors_by_code": dict(sorted(tally.errors.items())),
        "reconciliation": figures,
        "http": dict(sorted(tally.http.items())),
        "http_5xx": tally.http_5xx[:10],
        "cross_room": tally.cross_room[:10],
        "unexpected": tally.unexpected[:10],
        "healthy_pair": probe_result,
        "log_tail": log[-1500:] if not checks["no_traceback_or_error_in_log"] else "",
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=20_000, help="frames to send (the CI run: 20000)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--rooms", type=int, default=40)
    p.add_argument("--clients-per-room", type=int, default=4)
    p.add_argument("--rate", type=float, default=2000, help="frames per second to aim at (0: as fast as possible)")
    p.add_argument("--probe-rate", type=float, default=100, help="healthy pair's frames per second")
    p.add_argument("--window", type=float, default=5.0, help="seconds per window of the healthy pair's p99")
    p.add_argument("--p99-ms", type=float, default=10.0)
    p.add_argument("--nice", type=int, default=10, help="niceness of the fuzzer itself (not the server)")
    p.add_argument("--out", type=Path, help="also write the JSON result here")
    p.add_argument("--server-arg", action="append", help="extra server flag (repeat)")
    p.add_argument("--probe", type=int, help=argparse.SUPPRESS)  # internal: run the healthy pair on this port
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    if cfg.probe:
        print(json.dumps(asyncio.run(probe(cfg.probe, "fuzz-healthy", cfg.probe_rate, cfg.window))))
        return 0
    result = asyncio.run(fuzz(cfg))
    text = json.dumps(result, indent=2)
    print(text)
    if cfg.out:
        cfg.out.write_text(text + "\n")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""Nothing is dropped uncounted: after a mixed run with errors, refusals, Tornado's own
closes and disconnects, the metrics alone (read over HTTP) account for every frame:

    frames received = errors answered + frames handed to a room + frames dropped

and every close the server made, Tornado's included, has its code counted.
"""

from __future__ import annotations

import asyncio
import json

from prometheus_client.parser import text_string_to_metric_families

from tests.metrics.tools import eventually, scrape
from tests.support import Client, ServerFactory, http, join, scaled
from transport.server import Server

MAX_FRAME = 1024


async def metrics(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    _, text = await scrape(server)
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls))


def masked(opcode: int, payload: bytes) -> bytes:
    """One client frame (RFC 6455 5.2: clients mask), FIN set, payload under 126 bytes."""
    mask = b"\x01\x02\x03\x04"
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload))


async def refused_join_then_frames(server: Server, frames: list[bytes]) -> None:
    """Upgrade as a clientId already connected (refused: 4409) with ``frames`` and a close
    frame sent right behind the request; wait for the server's close frame."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"GET /ws?roomId=mix&clientId=a HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n" + b"".join(masked(0x1, f) for f in frames) + masked(0x8, b"\x03\xe8")
    )
    seen = b""
    while True:
        chunk = await asyncio.wait_for(reader.read(4096), scaled(10))
        if not chunk:
            break
        seen += chunk
    assert b" 101 " in seen and b"client-id-taken" in seen, seen
    writer.close()


async def ping_timeout(server: Server) -> None:
    """A client that completes the upgrade, then never answers a ping (nor reads)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"GET /ws?roomId=silent&clientId=s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    seen = b""
    while b"ping timed out" not in seen:  # the close frame Tornado sends (code 1000)
        chunk = await asyncio.wait_for(reader.read(4096), scaled(10))
        assert chunk, seen
        seen += chunk
    writer.transport.abort()  # and then vanish without a close handshake


async def test_after_a_mixed_run_the_metrics_account_for_every_frame_received(make_server: ServerFactory) -> None:
    server = await make_server(
        max_frame_bytes=MAX_FRAME, rate_limit=5, rate_burst=10, ping_interval=1, ping_timeout=1, reconnect_grace=0
    )
    sent = 0

    def send(client: Client, frame: object) -> None:
        nonlocal sent
        sent += 1
        client.send(frame if isinstance(frame, (str, bytes)) else json.dumps(frame))

    status, _ = await http(server, "POST", "/rooms/join", {"roomId": "mix", "clientId": "stub"})
    assert status == 200
    a, _ = await join(server, "mix", "a")
    b, _ = await join(server, "mix", "b")
    await a.recv_type("peer-joined")
    offer = {"type": "offer", "to": "b", "data": {"type": "offer", "sdp": "v=0"}}
    send(a, offer)  # delivered
    send(a, {"type": "ice-candidate", "data": {"candidate": ""}})  # broadcast: delivered
    send(a, {**offer, "to": "stub"})  # held for the REST stub
    send(a, {**offer, "to": "nobody"})  # unknown-peer
    send(a, "{not json")  # invalid-json
    send(a, b"\x00\x01")  # binary-not-supported
    send(a, {**offer, "from": "b"})  # from-mismatch
    send(a, {**offer, "data": {"type": "offer", "sdp": "x" * (2 * MAX_FRAME)}})  # frame-too-large
    assert (await b.recv_type("offer"))["from"] == "a"
    await b.recv_type("ice-candidate")
    send(b, {"type": "answer", "to": "a", "data": {"type": "answer", "sdp": "v=0"}})
    # (The room answers unknown-peer after the transport's own answers.)
    codes = {(await a.recv_type("error"))["data"]["code"] for _ in range(5)}
    assert codes == {"unknown-peer", "invalid-json", "binary-not-supported", "from-mismatch", "frame-too-large"}
    await a.recv_type("answer")
    b.close()  # a clean disconnect
    await a.recv_type("peer-left")
    send(a, {"type": "ice-candidate", "data": {"candidate": ""}})  # nobody left: rejected, no-recipients

    # A refused join (client-id-taken, 4409) whose client keeps talking until it
    # sees the close: Tornado still reads those frames.
    # (Raw, so the frames are on the wire before the refusal can arrive.)
    await refused_join_then_frames(server, [json.dumps(offer).encode()] * 3)
    sent += 3

    # A flood: through the burst, then rate-limited, then closed with 1008.
    flood, _ = await join(server, "flood", "f")
    for _ in range(30):
        send(flood, {"type": "ice-candidate", "data": {"candidate": ""}})
    assert (await flood.closed())[0] == 1008

    # Tornado's own closes: a frame over 4x the cap (1009), a text frame that is not
    # UTF-8 (dropped without a close frame: 1002), and a ping timeout (1000).
    big, _ = await join(server, "big", "big")
    big.send("x" * (4 * MAX_FRAME + 1))
    assert (await big.closed())[0] == 1009
    garbled, _ = await join(server, "garbled", "g")
    garbled.conn.write_message(b"\xff\xfe{}", binary=False)
    await garbled.closed()
    await ping_timeout(server)

    async def all_read() -> bool | None:
        return True if total(await metrics(server), "signaling_frames_received_total") >= sent else None

    await eventually(all_read, 10, f"the server to read all {sent} frames")
    last, _ = await join(server, "flood", "f2")  # the flood's room has handled all of its frames
    m = await metrics(server)
    received = total(m, "signaling_frames_received_total")
    errors = total(m, "signaling_frame_errors_total")
    relayed = total(m, "signaling_relayed_frames_total")
    dropped = total(m, "signaling_inbound_dropped_total")
    assert received == sent == 43
    assert received == errors + relayed + dropped, (received, errors, relayed, dropped)
    assert dropped == total(m, "signaling_inbound_dropped_total", reason="join-refused") == 3
    assert total(m, "signaling_relayed_frames_total", outcome="held") == 1
    assert total(m, "signaling_relayed_frames_total", outcome="delivered") == 3
    assert (
        total(m, "signaling_frame_errors_total", code="rate-limited")
        == total(m, "signaling_frames_received_total", type="unparsed") - 3
        > 0
    )
    for code, count in (("1000", 1), ("1002", 1), ("1008", 1), ("1009", 1), ("4409", 1)):
        assert total(m, "signaling_closes_total", code=code) == count, code
    a.close()
    last.close()

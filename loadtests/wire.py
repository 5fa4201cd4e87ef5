"""The signaling protocol as seen from outside the server: frames, URLs, the call-setup scenario.

One small module for everything that speaks to the service (the tests, locust, the
benchmark's generator, the soak and fuzz runs). Standard library only, no I/O: each
client (Tornado in the tests, websocket-client under locust's gevent, websockets in
the generator) sends and receives the frames built and checked here.
Scripts import it as a sibling module (``import wire``), the tests as ``loadtests.wire``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit, urlunsplit

Frame = dict[str, Any]

SIGNALS = ("offer", "answer", "ice-candidate")
PRESENCE = ("peer-joined", "peer-left")
CANDIDATES = 10  # trickled each way in a call setup

# Every load-tool peer dials from 127.0.0.1: lift the service's per-address limits
# (meant for the internet, docs/security.md) so they measure nothing. Per-connection
# limits keep their defaults.
LIFTED_PER_ADDRESS = {
    "max_connections_per_ip": "1000000",
    "join_rate_per_ip": "1000000",
    "join_burst_per_ip": "1000000",
}


def as_env(settings: Mapping[str, str]) -> dict[str, str]:
    """``{"rate_limit": "5"}`` -> ``{"SIGNALING_RATE_LIMIT": "5"}`` (transport/settings.py)."""
    return {f"SIGNALING_{name.upper()}": value for name, value in settings.items()}


def as_args(settings: Mapping[str, str]) -> list[str]:
    """``{"rate_limit": "5"}`` -> ``["--rate-limit", "5"]``."""
    return [arg for name, value in settings.items() for arg in ("--" + name.replace("_", "-"), value)]


# -- URLs --


def ws_base(host: str) -> str:
    """``http://h:p/prefix`` -> ``ws://h:p/prefix``; ``https`` -> ``wss``; a bare port -> 127.0.0.1."""
    if host.isdigit():
        return f"ws://127.0.0.1:{host}"
    parts = urlsplit(host)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}[parts.scheme]
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def ws_url(base: str | int, room: str, client: str, token: str | None = None, key: str = "clientId") -> str:
    """The WebSocket URL of one member; ``base`` is a port of 127.0.0.1 or an http(s)/ws(s) URL."""
    query = {"roomId": room, key: client}
    if token:
        query["token"] = token
    return f"{ws_base(str(base))}/ws?{urlencode(query)}"


# -- frames --


def sdp(kind: str = "offer", size: int = 0, seq: int = 0) -> str:
    """An SDP-like text of about ``size`` bytes (just the header when small)."""
    head = f"v=0\r\no=- {seq} 2 IN IP4 127.0.0.1\r\n"
    if size <= len(head):
        return head
    head += "s=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
    line = f"a=x-{kind}-padding:{'x' * 60}\r\n"
    return head + line * max(0, (size - len(head)) // len(line))


def candidate(n: int) -> dict[str, Any]:
    """The ``data`` of an ``ice-candidate`` frame: a host candidate, distinct for each ``n``."""
    return {
        "candidate": f"candidate:{n} 1 udp 2122260223 192.0.2.1 {50000 + n} typ host",
        "sdpMid": "0",
        "sdpMLineIndex": 0,
    }


def description(kind: str, text: str) -> dict[str, Any]:
    """The ``data`` of an ``offer`` or ``answer`` frame."""
    return {"type": kind, "sdp": text}


def sample_data(type_: str, n: int = 0, size: int = 0) -> dict[str, Any]:
    """Valid ``data`` for a signal of ``type_``."""
    if type_ == "ice-candidate":
        return candidate(n)
    kind = "offer" if type_ == "offer" else "answer"
    return description(kind, sdp(kind, size, n))


def signal(type_: str, to: str | None, data: dict[str, Any]) -> Frame:
    frame: Frame = {"type": type_, "data": data}
    if to is not None:
        frame["to"] = to
    return frame


def encode(frame: Frame) -> str:
    return json.dumps(frame, separators=(",", ":"))


class UnexpectedFrame(Exception):
    pass


def check(frame: Frame, type_: str, sender: str | None = None, data: Any = None) -> Frame:
    """``frame`` is of ``type_`` (from ``sender``, carrying ``data``), or UnexpectedFrame."""
    if frame.get("type") != type_:
        raise UnexpectedFrame(f"wanted {type_}, got {str(frame)[:200]}")
    if sender is not None and frame.get("from") != sender:
        raise UnexpectedFrame(f"wanted {type_} from {sender}, got {str(frame)[:200]}")
    if data is not None and frame.get("data") != data:
        raise UnexpectedFrame(f"{type_} arrived altered or out of order: {str(frame)[:200]}")
    return frame


def is_presence(frame: Frame) -> bool:
    """Presence frames may arrive between any two others: a waiting client skips them."""
    return frame.get("type") in PRESENCE


# -- the call-setup scenario, as data --


@dataclass(frozen=True)
class Send:
    peer: Literal["a", "b"]
    frame: Frame


@dataclass(frozen=True)
class Expect:
    peer: Literal["a", "b"]
    type: str
    sender: str | None = None
    data: Any = None


@dataclass(frozen=True)
class Close:
    peer: Literal["a", "b"]


Step = Send | Expect | Close


@dataclass(frozen=True)
class Phase:
    """Steps timed together (locust reports each phase under its name)."""

    name: str
    steps: tuple[Step, ...]


def negotiation(a: str, b: str, offer: str, answer: str, candidates: int = CANDIDATES) -> Iterator[Phase]:
    """Offer/answer, then ``candidates`` ICE candidates each way; ``a`` and ``b`` are joined.

    ``a`` sends candidates 0..n-1, ``b`` 100..100+n-1, interleaved; each side must
    receive the other's in order and unaltered.
    """
    yield Phase(
        "offer->answer",
        (
            Send("a", signal("offer", b, description("offer", offer))),
            Expect("b", "offer", a, description("offer", offer)),
            Send("b", signal("answer", a, description("answer", answer))),
            Expect("a", "answer", b, description("answer", answer)),
        ),
    )
    sends: list[Step] = []
    for n in range(candidates):
        sends += [
            Send("a", signal("ice-candidate", b, candidate(n))),
            Send("b", signal("ice-candidate", a, candidate(100 + n))),
        ]
    expects: list[Step] = [Expect("b", "ice-candidate", a, candidate(n)) for n in range(candidates)]
    expects += [Expect("a", "ice-candidate", b, candidate(100 + n)) for n in range(candidates)]
    yield Phase(f"ice {candidates}+{candidates}", (*sends, *expects))


def leave(a: str) -> Phase:
    """``a`` closes its socket; ``b`` is told."""
    return Phase("leave", (Close("a"), Expect("b", "peer-left", data={"clientId": a})))

"""What becomes of one inbound frame, without a socket: relayed, answered or closed,
and the label it is counted under."""

from __future__ import annotations

import json

import pytest

from actors.errors import BinaryFrame, FrameTooLarge, FromMismatch, InvalidJson, InvalidMessage, RateLimited
from actors.ids import ClientId
from transport.inbound import InboundFrames

ME = ClientId("me")
CANDIDATE = {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0", "sdpMLineIndex": 0}


def frame(pad: str = "", **envelope: object) -> str:
    # ``pad`` goes inside data, whose extra fields are the peers' business.
    return json.dumps({"type": "ice-candidate", "data": {**CANDIDATE, "pad": pad}, **envelope})


def gate(burst: int = 5, max_frame_bytes: int = 1024) -> InboundFrames:
    return InboundFrames(rate=1.0, burst=burst, max_frame_bytes=max_frame_bytes, now=0.0)


@pytest.mark.parametrize(
    ("message", "received", "error"),
    [
        (frame(to="you"), "ice-candidate", None),
        (frame(to="you", **{"from": "me"}), "ice-candidate", None),
        (frame(), "ice-candidate", None),  # a broadcast
        (frame(to="you", **{"from": "someone-else"}), "ice-candidate", FromMismatch),
        (b"{}", "invalid", BinaryFrame),
        ("{not json", "invalid", InvalidJson),
        (json.dumps({"type": "offer", "to": "you"}), "invalid", InvalidMessage),
        (frame(to="you", pad="x" * 2000), "invalid", FrameTooLarge),
        (frame(to="you", pad="\u20ac" * 300), "invalid", FrameTooLarge),  # 900 bytes of 3-byte characters
    ],
)
def test_one_frame(message: str | bytes, received: str, error: type[Exception] | None) -> None:
    verdict = gate().decide(message, ME, 0.0)
    assert verdict.received == received and verdict.close is None
    if error is None:
        assert verdict.error is None and verdict.signal is not None and verdict.signal.type == "ice-candidate"
    else:
        assert isinstance(verdict.error, error) and verdict.signal is None
        # The verdict outlives the call: no traceback whose frames would reach the handler.
        assert verdict.error.__traceback__ is None and verdict.error.__context__ is None


def test_a_frame_at_the_byte_cap_passes_and_one_byte_more_does_not() -> None:
    exact = frame(to="you", pad="x" * (300 - len(frame(to="you"))))
    assert len(exact.encode()) == 300
    assert gate(max_frame_bytes=300).decide(exact, ME, 0.0).error is None
    assert isinstance(gate(max_frame_bytes=299).decide(exact, ME, 0.0).error, FrameTooLarge)


def test_the_rate_limit_answers_then_closes_after_a_burst_of_refusals_in_a_row() -> None:
    inbound = gate(burst=3)
    assert [inbound.decide(frame(), ME, 0.0).signal is not None for _ in range(3)] == [True] * 3
    refused = [inbound.decide(frame(), ME, 0.0) for _ in range(3)]
    assert all(v.received == "unparsed" and isinstance(v.error, RateLimited) for v in refused)
    assert [v.close for v in refused] == [None, None, (1008, "rate-limited: too many frames for too long")]


def test_a_frame_let_through_resets_the_refusals_in_a_row() -> None:
    inbound = gate(burst=2)
    inbound.decide(frame(), ME, 0.0)
    inbound.decide(frame(), ME, 0.0)
    assert inbound.decide(frame(), ME, 0.0).close is None  # one refusal in a row
    assert inbound.decide(frame(), ME, 1.0).signal is not None  # a token refilled: let through
    assert inbound.decide(frame(), ME, 1.0).close is None  # one refusal in a row again, not two
    assert inbound.decide(frame(), ME, 1.0).close is not None  # two: closed

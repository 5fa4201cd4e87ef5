"""What to do with one inbound frame of a joined client, decided without the socket.

``InboundFrames.decide`` applies, in order, the client's rate limit, the binary and
size checks, parsing and the ``from`` check, and returns a ``Verdict``: relay the
signal, answer an error frame (the socket stays open) or close. ws.py's
``on_message()`` only acts on it; tests/transport/test_inbound.py drives it with tables.
"""

from __future__ import annotations

from actors.errors import BinaryFrame, FrameError, FrameTooLarge, FromMismatch, RateLimited
from actors.frozen import frozen
from actors.ids import ClientId
from transport.limits import TokenBucket
from transport.schemas import Signal, parse_signal
from transport.wire_codes import CLOSE_POLICY


@frozen
class Verdict:
    """``received``: the frame's label in signaling_frames_received_total (its type,
    ``invalid``, or ``unparsed`` when refused before parsing). Then exactly one of:
    ``signal`` to relay, ``error`` to answer (counted as a frame error), or ``close``
    (code, reason), with ``error`` set too when the close is the error's doing."""

    received: str
    signal: Signal | None = None
    error: FrameError | None = None
    close: tuple[int, str] | None = None


class InboundFrames:
    """Per-connection inbound state: the rate limit and the refusals in a row."""

    __slots__ = ("bucket", "max_frame_bytes", "rate_burst", "refused_in_a_row")

    def __init__(self, rate: float, burst: int, max_frame_bytes: int, now: float) -> None:
        self.bucket = TokenBucket(rate, burst, now)
        self.rate_burst = burst
        self.max_frame_bytes = max_frame_bytes
        self.refused_in_a_row = 0

    def decide(self, message: str | bytes, client_id: ClientId, now: float) -> Verdict:
        if not self.bucket.take(now):
            self.refused_in_a_row += 1
            # Refused before parsing, by design: a flood costs no parse.
            if self.refused_in_a_row >= self.rate_burst:
                return Verdict(
                    "unparsed", error=RateLimited(), close=(CLOSE_POLICY, "rate-limited: too many frames for too long")
                )
            return Verdict("unparsed", error=RateLimited())
        self.refused_in_a_row = 0
        try:
            signal = self._parse(message)
        except FrameError as error:
            # The verdict outlives this call: its error must not keep a traceback (or a
            # context's), whose frames reach back to the handler that holds us: a
            # reference cycle per invalid frame (tests/transport/test_memory.py).
            error.__traceback__ = error.__context__ = None
            return Verdict("invalid", error=error)
        if signal.sender is not None and signal.sender != client_id:
            return Verdict(signal.type, error=FromMismatch())  # a valid frame, wrongly signed
        return Verdict(signal.type, signal=signal)

    def _parse(self, message: str | bytes) -> Signal:
        if isinstance(message, bytes):
            raise BinaryFrame()
        limit = self.max_frame_bytes
        # The cap is in bytes: a UTF-8 character takes up to 4, so only long frames need
        # encoding to be measured.
        if len(message) * 4 > limit and len(message.encode()) > limit:
            raise FrameTooLarge(f"frame is larger than {limit} bytes")
        return parse_signal(message)

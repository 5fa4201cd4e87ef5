"""Who may take a seat in a room: the one home of the seat-takeover rule.

A *proof* is the ``exp`` of a valid token the client showed for this room and client
(transport/admission.py turns a token into one: in token mode a bad token is refused,
in open mode it counts as no token). A seat remembers the newest proof it was taken
with. Then, for a client connecting to a seat:

- no seat: it is taken (room limits permitting);
- a seat without a socket (reserved by REST, or a dropped member within its grace):
  claimed freely if it was taken without a proof, else only with a proof at least as
  new (Unauthorized: "connect with its token");
- a seat with a socket: taken over (the old connection is closed as replaced) only if
  it was taken with a proof and the newcomer's is at least as new. Otherwise the id is
  taken (ClientIdTaken): without a token nobody can kick a peer.

Plain code (no I/O), tested with a table in tests/actors/test_seats.py.
"""

from __future__ import annotations

from enum import Enum

from actors.errors import ClientIdTaken, Unauthorized
from actors.frozen import frozen


class Take(Enum):
    NEW = "new"  # no seat yet: make one
    CLAIM = "claim"  # a seat without a socket
    TAKE_OVER = "take-over"  # a connected seat: close its old connection as replaced


@frozen
class SeatClaim:
    take: Take
    proof: int | None  # the seat's proof from now on


def claim_seat(exists: bool, connected: bool, seat_proof: int | None, proof: int | None) -> SeatClaim:
    """Decide a connect to a seat (``exists``, with a socket if ``connected``, taken
    with ``seat_proof``) by a client showing ``proof``. Raises JoinRefused."""
    if not exists:
        return SeatClaim(Take.NEW, proof)
    proven = proof is not None and (seat_proof is None or proof >= seat_proof)
    if connected:
        if not proven or seat_proof is None:
            raise ClientIdTaken()
        take = Take.TAKE_OVER
    elif seat_proof is not None and not proven:
        raise Unauthorized("this clientId is reserved: connect with its token")
    else:
        take = Take.CLAIM
    newest = proof if proof is not None and (seat_proof is None or proof > seat_proof) else seat_proof
    return SeatClaim(take, newest)

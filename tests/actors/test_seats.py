"""The seat-takeover rule as a table: who may take, claim or take over a seat."""

from __future__ import annotations

import pytest

from actors.errors import ClientIdTaken, JoinRefused, Unauthorized
from actors.seats import SeatClaim, Take, claim_seat

# (seat exists, seat connected, seat's proof, newcomer's proof) -> a claim or the refusal
CASES: list[tuple[str, bool, bool, int | None, int | None, SeatClaim | type[JoinRefused]]] = [
    ("no seat, no token: a new seat", False, False, None, None, SeatClaim(Take.NEW, None)),
    ("no seat, a token: a new seat that remembers it", False, False, None, 50, SeatClaim(Take.NEW, 50)),
    ("open seat taken without a token: anyone claims it", True, False, None, None, SeatClaim(Take.CLAIM, None)),
    ("open seat taken without a token, claimed with one", True, False, None, 50, SeatClaim(Take.CLAIM, 50)),
    ("reserved seat, its own token", True, False, 50, 50, SeatClaim(Take.CLAIM, 50)),
    ("reserved seat, a newer token", True, False, 50, 60, SeatClaim(Take.CLAIM, 60)),
    ("reserved seat, an older token", True, False, 50, 40, Unauthorized),
    ("reserved seat, no token", True, False, 50, None, Unauthorized),
    ("connected without a token: never taken over", True, True, None, None, ClientIdTaken),
    ("connected without a token, a newcomer with one", True, True, None, 50, ClientIdTaken),
    ("connected with a token, no token", True, True, 50, None, ClientIdTaken),
    ("connected with a token, an older one", True, True, 50, 40, ClientIdTaken),
    ("connected with a token, the same one: a reconnect", True, True, 50, 50, SeatClaim(Take.TAKE_OVER, 50)),
    ("connected with a token, a newer one", True, True, 50, 60, SeatClaim(Take.TAKE_OVER, 60)),
]


@pytest.mark.parametrize(
    ("exists", "connected", "seat_proof", "proof", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_the_seat_takeover_rule(
    exists: bool, connected: bool, seat_proof: int | None, proof: int | None, expected: SeatClaim | type[JoinRefused]
) -> None:
    if isinstance(expected, SeatClaim):
        assert claim_seat(exists, connected, seat_proof, proof) == expected
    else:
        with pytest.raises(expected):
            claim_seat(exists, connected, seat_proof, proof)

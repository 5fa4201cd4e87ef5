"""WebSocket admission without a socket: the order of the checks, the token policy, and
how each failed join ends (close code, reason, metric label)."""

from __future__ import annotations

import pytest

from actors.errors import (
    ClientIdTaken,
    Forbidden,
    InvalidRequest,
    JoinRefused,
    RoomFull,
    ShuttingDown,
    TooManyRequests,
    Unauthorized,
)
from actors.ids import ClientId, RoomId
from transport.admission import Admission, JoinFailure, admit, join_failure, token_proof
from transport.tokens import TokenIssuer

KEY = "k" * 40
ROOM, CLIENT = RoomId("r"), ClientId("c")
TOKENS = TokenIssuer(KEY, 24 * 3600)  # minted at import: valid however long the suite runs
EXP = TOKENS.expiry()
GOOD = TOKENS.mint(ROOM, CLIENT, EXP)
OTHER_CLIENT = TOKENS.mint(ROOM, ClientId("d"), EXP)
FOREIGN = TokenIssuer("x" * 40, 24 * 3600).mint(ROOM, CLIENT, EXP)  # another process's key


def query(token: str | None = None, **args: str) -> dict[str, list[bytes]]:
    q = {"roomId": [b"r"], "clientId": [b"c"]}
    q.update({k: [v.encode()] for k, v in args.items()})
    if token is not None:
        q["token"] = [token.encode()]
    return q


@pytest.mark.parametrize(
    ("draining", "ip_admitted", "q", "token_mode", "expected"),
    [
        (False, True, query(), False, Admission(ROOM, CLIENT, None)),
        (False, True, query(GOOD), False, Admission(ROOM, CLIENT, EXP)),
        (False, True, query(GOOD), True, Admission(ROOM, CLIENT, EXP)),
        (False, True, {"roomId": [b"r"], "ClientId": [b"c"]}, False, Admission(ROOM, CLIENT, None)),
        # Draining is checked first, then the address's count, then the query, then the token.
        (True, False, {}, True, ShuttingDown),
        (False, False, {}, True, TooManyRequests),
        (False, True, {"roomId": [b"r"]}, True, InvalidRequest),
        (False, True, query(roomId="bad id!"), True, InvalidRequest),
        (False, True, query(), True, Unauthorized),
        (False, True, query(OTHER_CLIENT), True, Forbidden),
    ],
)
def test_admission_checks_in_order(
    draining: bool,
    ip_admitted: bool,
    q: dict[str, list[bytes]],
    token_mode: bool,
    expected: Admission | type[JoinRefused],
) -> None:
    def run() -> Admission:
        return admit(q, draining=draining, ip_admitted=ip_admitted, token_mode=token_mode, tokens=TOKENS)

    if isinstance(expected, Admission):
        assert run() == expected
    else:
        with pytest.raises(expected):
            run()


@pytest.mark.parametrize(
    ("token", "token_mode", "expected"),
    [
        (None, False, None),  # open mode: anyone, without proof
        (GOOD, False, EXP),
        (FOREIGN, False, None),  # minted before a restart or on another backend: no proof, not refused
        (OTHER_CLIENT, False, None),
        ("garbage", False, None),
        (None, True, Unauthorized),
        (GOOD, True, EXP),
        (FOREIGN, True, Unauthorized),
        (OTHER_CLIENT, True, Forbidden),
        ("garbage", True, Unauthorized),
    ],
)
def test_the_token_policy(token: str | None, token_mode: bool, expected: int | None | type[JoinRefused]) -> None:
    if isinstance(expected, type):
        with pytest.raises(expected):
            token_proof(token, ROOM, CLIENT, token_mode, TOKENS)
    else:
        assert token_proof(token, ROOM, CLIENT, token_mode, TOKENS) == expected


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            ClientIdTaken(),
            JoinFailure("client-id-taken", 4409, "client-id-taken: that clientId is already in the room"),
        ),
        (RoomFull("at 2"), JoinFailure("room-full", 4429, "room-full: at 2")),
        (
            ShuttingDown(),
            JoinFailure("shutting-down", 1001, "shutting-down: the server is shutting down; retry on another backend"),
        ),
        (
            TooManyRequests(),
            JoinFailure("rate-limited", 1008, "rate-limited: too many requests or connections from this address"),
        ),
        (TimeoutError(), JoinFailure("room-failed", 4500, "room did not answer; retry", undo=True)),
        (KeyError("a bug"), JoinFailure("room-failed", 4500, "join failed; retry", bug=True)),
    ],
)
def test_how_a_failed_join_ends(error: Exception, expected: JoinFailure) -> None:
    assert join_failure(error) == expected

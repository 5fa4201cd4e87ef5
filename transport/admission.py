"""Whether a WebSocket may join, decided without the socket: query, token policy, refusals.

ws.py's ``open()`` gathers the facts (draining? this address's count? the query) and
acts on what these functions decide; tests/transport/test_admission.py drives them with
tables. What a seat then allows is the Room's decision (actors/seats.py).
"""

from __future__ import annotations

from collections.abc import Mapping

from actors.errors import Forbidden, JoinRefused, RoomUnavailable, ShuttingDown, TooManyRequests, Unauthorized
from actors.frozen import frozen
from actors.ids import ClientId, RoomId
from transport.schemas import parse_ws_query
from transport.tokens import TokenIssuer
from transport.wire_codes import close_code


@frozen
class Admission:
    """Who joins: the ids from the query and the proof their token gives (actors/seats.py)."""

    room_id: RoomId
    client_id: ClientId
    proof: int | None


def admit(
    query: Mapping[str, list[bytes]], *, draining: bool, ip_admitted: bool, token_mode: bool, tokens: TokenIssuer
) -> Admission:
    """The checks of a WebSocket join, in order. Raises JoinRefused.

    ``ip_admitted``: this address was under its connection limit (and is now counted).
    """
    if draining:
        raise ShuttingDown()
    if not ip_admitted:
        raise TooManyRequests()
    room_id, client_id, token = parse_ws_query(query)
    return Admission(room_id, client_id, token_proof(token, room_id, client_id, token_mode, tokens))


def token_proof(
    token: str | None, room_id: RoomId, client_id: ClientId, token_mode: bool, tokens: TokenIssuer
) -> int | None:
    """The token policy: the proof (a valid token's ``exp``) a client shows, or None.

    Token mode requires a valid token (Unauthorized, Forbidden otherwise). Open mode
    admits anyone: its tokens are signed with a per-process key, so after a restart or
    on another backend they no longer verify, and the client then simply counts as one
    without a token.
    """
    if token is None:
        if token_mode:
            raise Unauthorized("token required")
        return None
    if token_mode:
        return tokens.verify(token, room_id, client_id)
    try:
        return tokens.verify(token, room_id, client_id)
    except (Unauthorized, Forbidden):
        return None


@frozen
class JoinFailure:
    """How a WebSocket join that did not succeed ends.

    ``outcome`` is the join metric's label, ``close_code`` and ``reason`` the close.
    ``undo``: the Connect may still be handled later, so tell the Hub a Disconnect.
    ``bug``: not the client's fault; log it with its traceback.
    """

    outcome: str
    close_code: int
    reason: str
    undo: bool = False
    bug: bool = False


def join_failure(error: Exception) -> JoinFailure:
    if isinstance(error, JoinRefused):
        return JoinFailure(error.code, close_code(error), f"{error.code}: {error.detail}")
    if isinstance(error, TimeoutError):
        return JoinFailure(RoomUnavailable.code, close_code(RoomUnavailable), "room did not answer; retry", undo=True)
    # A bug: Tornado would abort the stream without on_close (leaking the per-IP count);
    # the handler closes it itself so that on_close runs and cleans up.
    return JoinFailure(RoomUnavailable.code, close_code(RoomUnavailable), "join failed; retry", bug=True)

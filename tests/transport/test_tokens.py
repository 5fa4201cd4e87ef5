"""Tokens: what the server mints, PyJWT accepts; what PyJWT refuses, the server refuses."""

from __future__ import annotations

import time

import jwt
import pytest

from actors.errors import Forbidden, Unauthorized
from actors.ids import ClientId, RoomId
from transport.tokens import TokenIssuer

KEY = "k" * 40
ROOM, CLIENT = RoomId("r"), ClientId("c")


def test_a_minted_token_is_a_standard_hs256_jwt() -> None:
    issuer = TokenIssuer(KEY, 60)
    exp = issuer.expiry()
    token = issuer.mint(ROOM, CLIENT, exp)
    assert jwt.decode(token, KEY, algorithms=["HS256"]) == {"room": "r", "sub": "c", "exp": exp}
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
    assert issuer.verify(token, ROOM, CLIENT) == exp


def _forms(claims: dict, key: str = KEY) -> list[str]:
    """The same claims as this server mints them and as another JWT library would."""
    own = TokenIssuer(key, 60)
    minted = own.mint(claims["room"], claims["sub"], claims["exp"]) if set(claims) == {"room", "sub", "exp"} else None
    other = jwt.encode(claims, key, algorithm="HS256", headers={"kid": "backend-1"})
    return [t for t in (minted, other) if t is not None]


@pytest.mark.parametrize(
    ("claims", "key", "error"),
    [
        ({"room": "r", "sub": "c", "exp": -1}, KEY, Unauthorized),
        ({"room": "r", "sub": "c", "exp": 60}, "x" * 40, Unauthorized),
        ({"room": "other", "sub": "c", "exp": 60}, KEY, Forbidden),
        ({"room": "r", "sub": "other", "exp": 60}, KEY, Forbidden),
        ({"room": "r", "sub": "c"}, KEY, Unauthorized),
    ],
    ids=["expired", "other-key", "other-room", "other-client", "no-exp"],
)
def test_bad_tokens_are_refused_whichever_library_made_them(claims: dict, key: str, error: type) -> None:
    if "exp" in claims:  # seconds from now, resolved here and not at collection time
        claims = {**claims, "exp": int(time.time()) + claims["exp"]}
    issuer = TokenIssuer(KEY, 60)
    for token in _forms(claims, key):
        with pytest.raises(error):
            issuer.verify(token, ROOM, CLIENT)


def test_tampering_with_any_part_of_a_minted_token_is_refused() -> None:
    issuer = TokenIssuer(KEY, 60)
    token = issuer.mint(ROOM, CLIENT, issuer.expiry())
    header, payload, signature = token.split(".")
    forged_payload = jwt.utils.base64url_encode(b'{"room":"r","sub":"c","exp":9999999999}').decode()
    for bad in (
        f"{header}.{forged_payload}.{signature}",
        f"{header}.{payload}.{signature[:-2]}AA",
        f"{header}.{payload}.",
        f"{header}.{payload}",
        header,
        "",
        "a.b.c",
    ):
        with pytest.raises(Unauthorized):
            issuer.verify(bad, ROOM, CLIENT)


def test_an_alg_none_token_is_refused() -> None:
    issuer = TokenIssuer(KEY, 60)
    token = jwt.encode({"room": "r", "sub": "c", "exp": int(time.time()) + 60}, None, algorithm="none")
    with pytest.raises(Unauthorized):
        issuer.verify(token, ROOM, CLIENT)

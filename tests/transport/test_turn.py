"""TURN credentials in coturn's REST form: pure functions, known vectors, settings."""

from __future__ import annotations

import time

import pytest

from tests.support import ServerFactory, connect, http, join
from transport import turn
from transport.settings import SettingsError, load

CONFIG = turn.TurnConfig(
    ("turn:127.0.0.1:3478", "turns:turn.example.test:5349?transport=tcp"), "north-sea-turn-secret", 3600
)


def test_the_credential_is_base64_hmac_sha1_as_in_rfc_2202_test_case_2() -> None:
    # RFC 2202 2: HMAC-SHA1("Jefe", "what do ya want for nothing?") = effcdf6a...7c79, in base64.
    assert turn.credential("Jefe", "what do ya want for nothing?") == "7/zfauXrL6LSdBbV8YTfnCWafHk="


def test_a_join_gets_username_expiry_colon_client_and_its_hmac() -> None:
    # The credential was computed independently: printf '1700000000:alice' | openssl dgst -sha1 -hmac ... | base64
    server = turn.ice_server(
        turn.TurnConfig(("turn:127.0.0.1:3478",), "north-sea-turn-secret", 3600), "alice", now=1_699_996_400.9
    )
    assert server == {
        "urls": ["turn:127.0.0.1:3478"],
        "username": "1700000000:alice",
        "credential": "2KgXCQrTfE6ITZuk5ysE+Bf/eUc=",
    }


def test_the_configured_ice_servers_come_first_and_turn_is_added_only_with_a_secret() -> None:
    stun = [{"urls": "stun:stun.example.test:3478"}]
    assert turn.ice_servers(stun, None, "alice", 0) == stun
    servers = turn.ice_servers(stun, CONFIG, "alice", 100)
    assert servers[0] == stun[0] and servers[1]["urls"] == list(CONFIG.urls)
    assert servers[1]["username"] == "3700:alice"


@pytest.mark.parametrize(
    "text",
    [
        "turn:10.0.0.1",
        "turns:turn.example.test:5349?transport=tcp",
        "turn:[::1]:3478?transport=udp",
        " turn:a , turn:b ",
    ],
)
def test_turn_and_turns_urls_are_accepted(text: str) -> None:
    assert all(url.startswith(("turn:", "turns:")) for url in turn.parse_urls(text))


@pytest.mark.parametrize(
    "text",
    ["stun:10.0.0.1", "http://turn.example.test", "turn:", "turn:a b", "turn:host?transport=sctp", "turn:host:port"],
)
def test_anything_but_a_turn_url_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a turn"):
        turn.parse_urls(text)


def test_settings_build_the_turn_config_from_flags_and_env() -> None:
    s = load(
        ["--turn-urls", "turn:127.0.0.1:3478,turns:t.example.test"],
        environ={"SIGNALING_TURN_SECRET": "x" * 16, "SIGNALING_TURN_TTL": "600"},
    )
    assert s.turn_config == turn.TurnConfig(("turn:127.0.0.1:3478", "turns:t.example.test"), "x" * 16, 600)
    assert load([], environ={}).turn_config is None


@pytest.mark.parametrize(
    ("argv", "mentions"),
    [
        (["--turn-urls", "turn:127.0.0.1"], "turn_urls and turn_secret"),
        (["--turn-secret", "s3cret"], "turn_urls and turn_secret"),
        (["--turn-urls", "stun:127.0.0.1", "--turn-secret", "s3cret"], "turn_urls"),
        (["--turn-urls", "turn:a", "--turn-secret", "s", "--turn-ttl", "10"], "turn_ttl"),
        (["--turn-ttl", "1.5"], "--turn-ttl"),
    ],
)
def test_bad_turn_settings_stop_the_start_with_one_line(argv: list[str], mentions: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load(argv, environ={})
    assert mentions in str(raised.value) and "\n" not in str(raised.value)


async def test_each_rest_join_carries_fresh_turn_credentials_and_the_joined_frame_none(
    make_server: ServerFactory,
) -> None:
    server = await make_server(
        ice_servers='[{"urls": "stun:127.0.0.1:3478"}]',
        turn_urls="turn:127.0.0.1:3478",
        turn_secret="north-sea-turn-secret",
        turn_ttl=600,
    )
    before = int(time.time())
    status, body = await http(server, "POST", "/rooms/r/join", {"clientId": "alice"})
    after = int(time.time())
    assert status == 200
    stun, relay = body["iceServers"]
    assert stun == {"urls": "stun:127.0.0.1:3478"} and relay["urls"] == ["turn:127.0.0.1:3478"]
    expiry, _, client = relay["username"].partition(":")
    assert client == "alice" and before + 600 <= int(expiry) <= after + 600
    assert relay["credential"] == turn.credential("north-sea-turn-secret", relay["username"])
    # The WebSocket's joined frame never carries credentials: REST join is the way to TURN.
    client_ws, _ = await join(server, "r", "alice", token=body["token"])
    client_ws.close()
    bob = await connect(server, "r", "bob")
    joined = await bob.recv_type("joined")
    assert set(joined["data"]) == {"roomId", "clientId", "peers"}
    bob.close()

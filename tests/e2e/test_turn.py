"""TURN credentials from real join answers against a real coturn, and a call relayed by it.

One coturn (tests/e2e/coturn.py) serves the module. ``turnutils_uclient``, coturn's
own test client, allocates relays with what the service handed out; forged or stale
credentials are refused with 401 (read from coturn's log, as the tool prints no STUN
error code). Then two aiortc peers that may only use relay candidates
(``iceTransportPolicy`` relay, and no other ICE server) call each other through the
service and coturn and exchange a data-channel message.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from aiortc import RTCConfiguration, RTCIceServer
from aiortc.rtcconfiguration import RTCIceTransportPolicy

from tests.e2e.coturn import Coturn, running_coturn, uclient
from tests.e2e.test_webrtc_call import close_peers, send_until_echoed
from tests.e2e.webrtc_peer import Peer
from tests.support import ServerFactory, ServerProcess, http, join, scaled, server_process
from transport import turn

pytestmark = pytest.mark.slow

SECRET = "coturn-and-signaling-share-this-secret"


@pytest.fixture(scope="module")
def coturn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Coturn]:
    with running_coturn(tmp_path_factory.mktemp("coturn"), SECRET) as server:
        yield server


@pytest.fixture(scope="module")
def signaling(coturn: Coturn) -> Iterator[ServerProcess]:
    with server_process("--turn-urls", coturn.url, "--turn-secret", SECRET, "--turn-ttl", "600") as server:
        yield server


def rest_join(server: ServerProcess, room: str, client: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.port}/rooms/{room}/join",
        method="POST",
        data=json.dumps({"clientId": client}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=scaled(5)) as response:
        answer: dict[str, Any] = json.load(response)
    return answer


def turn_entry(answer: dict[str, Any]) -> dict[str, Any]:
    entries: list[dict[str, Any]] = [s for s in answer["iceServers"] if any(u.startswith("turn:") for u in s["urls"])]
    assert len(entries) == 1, answer
    return entries[0]


def allocated(coturn: Coturn, username: str) -> bool:
    return any("incoming packet ALLOCATE processed, success" in line for line in coturn.request_lines(username))


def test_coturn_allocates_relays_with_the_credentials_of_a_real_join_answer(
    coturn: Coturn, signaling: ServerProcess
) -> None:
    entry = turn_entry(rest_join(signaling, "turn-room", "alice"))
    assert entry["urls"] == [coturn.url] and entry["username"].endswith(":alice")
    assert time.time() + 590 < int(entry["username"].split(":")[0]) <= time.time() + 600

    result = uclient(coturn, entry["username"], entry["credential"])

    assert result.returncode == 0, result.output
    assert "Received relay addr: 127.0.0.1:" in result.output
    # The relays carried uclient's message: channels bound and data relayed under alice's name.
    assert allocated(coturn, entry["username"])
    assert any("CHANNEL_BIND processed, success" in line for line in coturn.request_lines(entry["username"]))


def _expired(entry: dict[str, Any]) -> tuple[str, str]:
    # Minted exactly as a join does, by the same code, an hour ago with a 10-minute TTL.
    stale = turn.ice_server(turn.TurnConfig(tuple(entry["urls"]), SECRET, 600), "alice", time.time() - 3600)
    return stale["username"], stale["credential"]


def _extended(entry: dict[str, Any]) -> tuple[str, str]:
    # A client that pushes its expiry a day later but keeps the credential it was given.
    expiry, _, client = entry["username"].partition(":")
    return f"{int(expiry) + 86400}:{client}", entry["credential"]


def _other_client(entry: dict[str, Any]) -> tuple[str, str]:
    expiry, _, _client = entry["username"].partition(":")
    return f"{expiry}:mallory", entry["credential"]


def _wrong_secret(entry: dict[str, Any]) -> tuple[str, str]:
    forged = turn.ice_server(turn.TurnConfig(tuple(entry["urls"]), "not-the-coturn-secret", 600), "alice", time.time())
    return forged["username"], forged["credential"]


@pytest.mark.parametrize(
    "forge",
    [_expired, _extended, _other_client, _wrong_secret],
    ids=["expired", "altered-expiry", "altered-client", "wrong-secret"],
)
def test_coturn_refuses_expired_altered_and_wrong_secret_credentials_with_401(
    coturn: Coturn, signaling: ServerProcess, forge: Any
) -> None:
    username, credential = forge(turn_entry(rest_join(signaling, "turn-401" + forge.__name__, "alice")))

    result = uclient(coturn, username, credential)

    assert result.returncode != 0 and "Cannot complete Allocation" in result.output, result.output
    coturn.wait_for_line(
        lambda line: f"user <{username}>:" in line and "error 401: Unauthorized" in line, f"a 401 for {username}"
    )
    assert not allocated(coturn, username)


def relay_only(entry: dict[str, Any]) -> RTCConfiguration:
    return RTCConfiguration(iceServers=[RTCIceServer(**entry)], iceTransportPolicy=RTCIceTransportPolicy.RELAY)


def selected_pair_types(peer: Peer) -> tuple[str, str]:
    # aiortc exposes no getStats() candidate pair: read the nominated pair of the
    # data channel's ICE connection (component 1) from aioice.
    connection = peer.pc.sctp.transport.transport._connection  # type: ignore[union-attr]
    pair = connection._nominated[1]
    return pair.local_candidate.type, pair.remote_candidate.type


@pytest.mark.async_timeout(90)
async def test_two_aiortc_peers_forced_to_relay_call_through_coturn(coturn: Coturn, make_server: ServerFactory) -> None:
    server = await make_server(turn_urls=coturn.url, turn_secret=SECRET, turn_ttl=600)
    answers = {}
    for name in ("alice", "bob"):
        status, answers[name] = await http(server, "POST", "/rooms/relay-call/join", {"clientId": name})
        assert status == 200
    alice_ws, _ = await join(server, "relay-call", "alice", token=answers["alice"]["token"])
    alice = Peer(alice_ws, relay_only(turn_entry(answers["alice"])))
    bob: Peer | None = None
    try:
        bob_ws, peers = await join(server, "relay-call", "bob", token=answers["bob"]["token"])
        assert peers == ["alice"]
        bob = Peer(bob_ws, relay_only(turn_entry(answers["bob"])))
        bob.echo_incoming = True
        assert (await alice.next_presence())["type"] == "peer-joined"

        channel = await alice.call("bob")
        await alice.until(alice.connected, 30, "alice connected through the relay")
        await bob.until(bob.connected, 30, "bob connected through the relay")
        for peer in (alice, bob):
            assert all(" typ relay" in c["candidate"] for c in peer.candidates_sent), peer.candidates_sent
            assert selected_pair_types(peer) == ("relay", "relay")

        await alice.until(alice.channel, 10, "alice's data channel open")
        assert await send_until_echoed(alice, channel, "hello over turn") == "echo:hello over turn"
        # coturn relayed it: both clients' allocations were made under their join names.
        for name in ("alice", "bob"):
            assert allocated(coturn, turn_entry(answers[name])["username"])
        alice.check()
        bob.check()
    finally:
        await close_peers(bob, alice)

"""End to end: two real WebRTC peers (aiortc) set up a call through the real server.

Alice and Bob join one room over real WebSockets, trickle offer/answer/ICE through
the server (every candidate in its own ``ice-candidate`` frame, none left in the
SDP), reach ``connected`` and send a data-channel message both ways. Then Alice's
WebSocket closes and Bob is told ``peer-left``.

Everything stays on 127.0.0.1: no ICE servers (aiortc would add a public STUN
server) and aioice's host-address lookup, which skips loopback and would offer the
machine's LAN/IPv6 addresses, is patched to return 127.0.0.1 only. aioice makes no
mDNS candidates of its own (it only resolves remote ``.local`` names), so there is
nothing to disable there; the test checks no candidate is a ``.local`` name.
"""

from __future__ import annotations

import aioice.ice
import pytest
from aiortc import RTCDataChannel

from tests.e2e.webrtc_peer import Peer, candidate_from_init
from tests.support import join
from transport.server import Server

pytestmark = pytest.mark.slow

ROOM = "e2e-webrtc"
MAX_SENDS = 40  # data-channel sends before giving up on the echo
RESEND_AFTER = 0.25  # seconds to wait for the echo before sending again


async def send_until_echoed(sender: Peer, channel: RTCDataChannel, text: str) -> str | None:
    """Send ``text`` until the far end's echo comes back to ``sender``; None after MAX_SENDS.

    Resent (bounded) because the first message can race the channel opening on the far side.
    """
    for _ in range(MAX_SENDS):
        channel.send(text)
        echo = await sender.next_message(RESEND_AFTER)
        if echo is not None:
            return echo
    return None


async def close_peers(*peers: Peer | None) -> None:
    """Close the peers that were made, in the order given."""
    for peer in peers:
        if peer is not None:
            await peer.close()


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    def loopback(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return ["127.0.0.1"]

    monkeypatch.setattr(aioice.ice, "get_host_addresses", loopback)


@pytest.mark.async_timeout(60)
async def test_two_aiortc_peers_call_through_the_server(loopback_only: None, server: Server) -> None:
    alice_ws, peers = await join(server, ROOM, "alice")
    assert peers == []
    alice = Peer(alice_ws)
    bob: Peer | None = None
    try:
        bob_ws, peers = await join(server, ROOM, "bob")
        assert peers == ["alice"]
        bob = Peer(bob_ws)
        bob.echo_incoming = True
        assert await alice.next_presence() == {"type": "peer-joined", "data": {"clientId": "bob"}}

        # Offer, answer and trickled candidates, all through the server.
        channel = await alice.call("bob")
        await alice.until(alice.connected, 15, "alice connected")
        await bob.until(bob.connected, 15, "bob connected")
        assert alice.pc.connectionState == "connected" and bob.pc.connectionState == "connected"

        # Every signal arrived, through the server, once. ICE may connect on the first
        # candidate, before the end-of-candidates frame behind it has been read: wait for it.
        await alice.until(alice.remote_candidates_done, 5, "bob's end-of-candidates")
        await bob.until(bob.remote_candidates_done, 5, "alice's end-of-candidates")
        assert bob.signals_received["offer"] == 1 and alice.signals_received["answer"] == 1
        assert all("a=candidate" not in sdp for sdp in alice.descriptions_received + bob.descriptions_received)
        for sender, receiver in ((alice, bob), (bob, alice)):
            assert sender.candidates_sent, f"{sender.id} gathered no candidate"
            assert receiver.candidates_received == sender.candidates_sent
            assert receiver.signals_received["ice-candidate"] == len(sender.candidates_sent) + 1
            assert receiver.end_of_candidates_received == 1
            for init in receiver.candidates_received:
                candidate = candidate_from_init(init)
                assert (candidate.ip, candidate.type, candidate.protocol) == ("127.0.0.1", "host", "udp"), init
                assert not candidate.ip.endswith(".local")

        # A message each way: Alice -> Bob, and Bob's echo back. Resend (bounded) in case
        # the first message races the channel opening on Bob's side.
        await alice.until(alice.channel, 10, "alice's data channel open")
        hello = "hello from alice"
        assert await send_until_echoed(alice, channel, hello) == "echo:" + hello
        assert hello in bob.received_messages
        bob_channel = await bob.until(bob.channel, 5, "bob's data channel open")
        assert bob_channel.label == "chat"

        # Alice hangs up her signaling socket: Bob hears about it.
        alice.client.close()
        assert await bob.next_presence() == {"type": "peer-left", "data": {"clientId": "alice"}}
        alice.check()
        bob.check()
    finally:
        await close_peers(bob, alice)

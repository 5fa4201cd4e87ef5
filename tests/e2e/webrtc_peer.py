"""A real WebRTC peer (aiortc) that signals through the service's WebSocket, with trickle ICE.

aiortc gathers every candidate before ``setLocalDescription`` returns and writes them
into the SDP. To exercise the ``ice-candidate`` path the way a browser does, a Peer
strips the ``a=candidate``/``a=end-of-candidates`` lines from the description it sends
and trickles each candidate as its own frame, then an end-of-candidates frame (``""``).
The remote side can therefore only connect through candidates relayed by the server.

One pump task per peer reads its WebSocket and handles frames in arrival order
(offer -> answer, answer, ice-candidate); presence frames go to ``presence`` for the
test to inspect. Any failure in the pump, or an ``error`` frame from the server,
fails every pending wait of that peer instead of letting it run into its timeout.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, TypeVar

from aiortc import MediaStreamTrack, RTCConfiguration, RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcicetransport import RTCIceCandidate
from aiortc.sdp import SessionDescription, candidate_from_sdp, candidate_to_sdp

from tests.support import Client, scaled

T = TypeVar("T")

CANDIDATE_PREFIX = "candidate:"


class PeerFailed(AssertionError):
    pass


def split_description(sdp: str) -> tuple[str, list[dict[str, Any]]]:
    """The SDP without any address, and its candidates as RTCIceCandidateInit dicts.

    Each m-section's candidates are followed by its end-of-candidates marker (``""``).
    """
    parsed = SessionDescription.parse(sdp)
    inits: list[dict[str, Any]] = []
    for index, media in enumerate(parsed.media):
        mid = media.rtp.muxId
        for candidate in media.ice_candidates:
            inits.append(
                {"candidate": CANDIDATE_PREFIX + candidate_to_sdp(candidate), "sdpMid": mid, "sdpMLineIndex": index}
            )
        inits.append({"candidate": "", "sdpMid": mid, "sdpMLineIndex": index})
    kept = []
    for line in sdp.splitlines():
        if line.startswith(("a=candidate:", "a=end-of-candidates")):
            continue
        if line.startswith("m="):  # the default candidate's port: the discard port, as browsers send
            kind, _port, rest = line.split(" ", 2)
            line = f"{kind} 9 {rest}"
        elif line.startswith("c="):
            line = "c=IN IP4 0.0.0.0"
        kept.append(line)
    return "\r\n".join(kept) + "\r\n", inits


def candidate_from_init(init: dict[str, Any]) -> RTCIceCandidate:
    text = init["candidate"]
    if text.startswith(CANDIDATE_PREFIX):
        text = text[len(CANDIDATE_PREFIX) :]
    candidate = candidate_from_sdp(text)
    candidate.sdpMid = init.get("sdpMid")
    candidate.sdpMLineIndex = init.get("sdpMLineIndex")
    return candidate


class Peer:
    """One RTCPeerConnection plus its signaling WebSocket."""

    def __init__(self, client: Client, configuration: RTCConfiguration | None = None) -> None:
        loop = asyncio.get_running_loop()
        self.client = client
        self.id = client.client_id
        # No iceServers by default: aiortc would otherwise add a public STUN server.
        self.pc = RTCPeerConnection(configuration or RTCConfiguration(iceServers=[]))
        self.failed: asyncio.Future[None] = loop.create_future()
        self.connected: asyncio.Future[None] = loop.create_future()
        self.channel: asyncio.Future[RTCDataChannel] = loop.create_future()
        self.presence: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.received_messages: list[str] = []
        self.messages: asyncio.Queue[str] = asyncio.Queue()
        self.signals_received: dict[str, int] = {"offer": 0, "answer": 0, "ice-candidate": 0}
        self.candidates_sent: list[dict[str, Any]] = []
        self.candidates_received: list[dict[str, Any]] = []
        self.end_of_candidates_received = 0
        self.remote_candidates_done: asyncio.Future[None] = loop.create_future()  # "" arrived
        self.descriptions_received: list[str] = []
        self.echo_incoming = False
        self._tracks_to_answer_with: list[MediaStreamTrack] = []

        @self.pc.on("connectionstatechange")
        def on_state() -> None:
            state = self.pc.connectionState
            if state == "connected" and not self.connected.done():
                self.connected.set_result(None)
            elif state == "failed":
                self._fail(PeerFailed(f"{self.id}: peer connection failed"))

        @self.pc.on("datachannel")
        def on_datachannel(channel: RTCDataChannel) -> None:
            self._adopt(channel)

        self._pump = asyncio.create_task(self._run(), name=f"signaling pump {self.id}")

    # -- waiting ------------------------------------------------------------------

    async def until(self, awaitable: asyncio.Future[T], timeout: float, what: str) -> T:
        """Await ``awaitable`` within ``scaled(timeout)``; fail early if this peer failed."""
        done, _ = await asyncio.wait(
            {awaitable, self.failed}, timeout=scaled(timeout), return_when=asyncio.FIRST_COMPLETED
        )
        if self.failed in done:
            self.failed.result()  # raises the failure
        if awaitable not in done:
            raise TimeoutError(f"{self.id}: timed out waiting for {what}")
        return awaitable.result()

    async def next_presence(self, timeout: float = 5.0) -> dict[str, Any]:
        return await self._get(self.presence, timeout, "a presence frame")

    async def next_message(self, timeout: float) -> str | None:
        """The next data-channel message, or None if none arrives within ``scaled(timeout)``."""
        try:
            return await self._get(self.messages, timeout, "a data-channel message")
        except TimeoutError:
            return None

    async def _get(self, queue: asyncio.Queue[Any], timeout: float, what: str) -> Any:
        getter = asyncio.ensure_future(queue.get())
        try:
            return await self.until(getter, timeout, what)
        finally:
            getter.cancel()

    def check(self) -> None:
        """Raise whatever went wrong in this peer's pump, even after the last wait."""
        if self.failed.done():
            self.failed.result()

    # -- calling ----------------------------------------------------------------

    async def call(self, remote: str, label: str = "chat") -> RTCDataChannel:
        """Create a data channel and send the offer (then its candidates) to ``remote``."""
        channel = self.pc.createDataChannel(label)
        self._adopt(channel)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        self._send_description(remote)
        return channel

    def open_negotiated_channel(self, label: str = "chat", channel_id: int = 0) -> RTCDataChannel:
        """A pre-negotiated data channel: both sides create it with the same id, and neither
        announces it (the browser app's chat channel is one)."""
        channel = self.pc.createDataChannel(label, negotiated=True, id=channel_id)
        self._adopt(channel)
        return channel

    def answer_with(self, track: MediaStreamTrack) -> None:
        """Send ``track`` in the answer to the first offer that has an m-line of its kind.

        Not ``pc.addTrack`` up front: that makes a transceiver of our own, and when an
        offer has no m-line for it (the app offers before its camera is open: data only,
        its media in a later offer) aiortc 1.16 still sets every transceiver's direction
        in setLocalDescription(answer) and fails on the unmatched one
        (``and_direction(..., None)``: ``ValueError: None is not in list``). A browser
        would keep it for a later offer of its own. Added after setRemoteDescription, the
        track goes on the transceiver the offer created instead.
        """
        self._tracks_to_answer_with.append(track)

    def _attach_answer_tracks(self) -> None:
        for transceiver in self.pc.getTransceivers():
            if transceiver.sender.track is not None:
                continue
            track = next((t for t in self._tracks_to_answer_with if t.kind == transceiver.kind), None)
            if track is not None:
                self._tracks_to_answer_with.remove(track)
                self.pc.addTrack(track)  # takes the first free transceiver of its kind: this one

    def _adopt(self, channel: RTCDataChannel) -> None:
        @channel.on("message")
        def on_message(message: str | bytes) -> None:
            assert isinstance(message, str)
            self.received_messages.append(message)
            self.messages.put_nowait(message)
            if self.echo_incoming and not message.startswith("echo:"):
                channel.send("echo:" + message)

        def opened() -> None:
            if not self.channel.done():
                self.channel.set_result(channel)

        if channel.readyState == "open":
            opened()
        else:
            channel.on("open", opened)

    def _send_description(self, to: str) -> None:
        description = self.pc.localDescription
        sdp, inits = split_description(description.sdp)
        self.client.send({"type": description.type, "to": to, "data": {"type": description.type, "sdp": sdp}})
        for init in inits:
            self.client.send({"type": "ice-candidate", "to": to, "data": init})
            if init["candidate"]:
                self.candidates_sent.append(init)

    # -- the pump -----------------------------------------------------------------

    def _fail(self, error: BaseException) -> None:
        if not self.failed.done():
            self.failed.set_exception(error)

    async def _run(self) -> None:
        try:
            while True:
                text = await self.client.conn.read_message()
                if text is None:
                    return  # our socket closed: the test closed it or the server did
                assert isinstance(text, str)
                await self._handle(json.loads(text))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._fail(exc)

    async def _handle(self, frame: dict[str, Any]) -> None:
        kind = frame["type"]
        if kind == "error":
            raise PeerFailed(f"{self.id}: server answered with an error: {frame}")
        if kind in ("peer-joined", "peer-left"):
            self.presence.put_nowait(frame)
            return
        if kind not in self.signals_received:
            raise PeerFailed(f"{self.id}: unexpected frame {frame}")
        self.signals_received[kind] += 1
        sender, data = frame["from"], frame["data"]
        if kind in ("offer", "answer"):
            assert data["type"] == kind, frame
            self.descriptions_received.append(data["sdp"])
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=data["sdp"], type=data["type"]))
            if kind == "offer":
                self._attach_answer_tracks()
                await self.pc.setLocalDescription(await self.pc.createAnswer())
                self._send_description(sender)
        elif data["candidate"] == "":
            self.end_of_candidates_received += 1
            await self.pc.addIceCandidate(None)
            if not self.remote_candidates_done.done():
                self.remote_candidates_done.set_result(None)
        else:
            self.candidates_received.append(data)
            await self.pc.addIceCandidate(candidate_from_init(data))

    # -- teardown -----------------------------------------------------------------

    async def close(self) -> None:
        """Close the peer connection, the WebSocket and the pump; safe to call twice."""
        if self.failed.done():
            self.failed.exception()  # the test has seen it (or is failing already): no GC warning
        try:
            await asyncio.wait_for(self.pc.close(), scaled(5))
        finally:
            self.client.close()
            self._pump.cancel()
            await asyncio.gather(self._pump, return_exceptions=True)

"""End to end in a real browser: the built app (web/dist), served by the service, makes calls.

Headless Chromium (the machine's own, driven by Playwright) opens the app as separate
users (one browser context each), with Chromium's fake camera and microphone. The pages
join over REST and WebSocket, negotiate with perfect negotiation and trickled ICE
through the server, decode each other's video (``framesDecoded`` from getStats) and chat
over the data channel. What went over the signaling WebSocket is read from Playwright's
view of the page's network (``framesent``/``framereceived``), not from the app itself.

Everything stays on this machine: the server listens on 127.0.0.1, the pages get no ICE
servers (the server's default), Chromium resolves no host names.

A screenshot of a connected call is kept in the test's tmp path; its path is listed under
"test artifacts" at the end of pytest's output.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aioice.ice
import pytest
from tornado.websocket import websocket_connect

from loadtests import wire
from tests.e2e.browser import chromium
from tests.e2e.webrtc_peer import Peer
from tests.support import Client, ServerProcess, scaled, server_process

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page, WebSocket

pytestmark = pytest.mark.slow

ROOM = "e2e-app"

# How many video frames each side decoded from one remote peer (0 before any).
FRAMES_DECODED = """async (peer) => {
  const call = window.signalingApp?.call?.peerCall(peer);
  if (!call) return 0;
  let frames = 0;
  (await call.pc.getStats()).forEach((r) => {
    if (r.type === 'inbound-rtp' && r.kind === 'video') frames += r.framesDecoded || 0;
  });
  return frames;
}"""


def ms(seconds: float) -> float:
    """A Playwright timeout (milliseconds), scaled like every wait in the tests."""
    return scaled(seconds) * 1000


@dataclass
class User:
    name: str
    page: Page
    sent: list[dict[str, Any]] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    console: list[str] = field(default_factory=list)


@dataclass
class Session:
    browser: Browser
    server: ServerProcess
    web_dist: Path
    users: dict[str, User] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    async def open(self, name: str, path: str = "/", init_script: str | None = None) -> User:
        """A new user (own browser context: own storage, like another person) at ``path``;
        ``init_script`` runs in the page before the app's own scripts."""
        context = await self.browser.new_context(viewport={"width": 1000, "height": 1100})
        page = await context.new_page()
        if init_script:
            await page.add_init_script(init_script)
        user = self.users[name] = User(name, page)
        page.on("websocket", lambda ws: self._capture(user, ws))
        page.on("console", lambda m: user.console.append(f"console.{m.type}: {m.text}"))
        page.on("pageerror", lambda e: user.console.append(f"exception: {e}"))
        await page.goto(self.base + path)
        return user

    @staticmethod
    def _capture(user: User, ws: WebSocket) -> None:
        def keep(into: list[dict[str, Any]]) -> Callable[[str | bytes], None]:
            return lambda payload: into.append(json.loads(payload)) if isinstance(payload, str) else None

        ws.on("framesent", keep(user.sent))
        ws.on("framereceived", keep(user.received))

    async def join(
        self, name: str, room: str = ROOM, init_script: str | None = None, media_first: bool = False
    ) -> User:
        """Open the invite link /#room, type a name, press Join, wait until connected.
        With ``media_first``, Join waits until the camera and microphone are open (the
        preview has its stream), so the app's first offer carries them."""
        user = await self.open(name, f"/#{room}", init_script)
        page = user.page
        if media_first:
            await page.wait_for_function(
                "() => document.querySelector('[data-testid=local-video]')?.srcObject != null", timeout=ms(10)
            )
        assert await page.get_by_test_id("room-input").input_value() == room
        await page.get_by_test_id("name-input").fill(name)
        await page.get_by_test_id("join-button").click()
        await connected_to_server(user)
        assert await page.get_by_test_id("client-id").text_content() == name
        return user

    async def dump(self) -> None:
        for user in self.users.values():
            print(f"--- {user.name}'s console:", *user.console, sep="\n")
            try:
                print(f"--- {user.name}'s page:", await user.page.inner_text("body", timeout=2000), sep="\n")
            except Exception as error:
                print(f"--- {user.name}'s page: unreadable: {error}")
        print("--- server log:", *self.server.log, sep="\n")


@asynccontextmanager
async def session(chromium_path: str, web_dist: Path, *server_args: str) -> AsyncIterator[Session]:
    """The service serving the built app, and a headless Chromium; logs printed on failure."""
    async with AsyncExitStack() as stack:
        server = stack.enter_context(server_process("--web-root", str(web_dist), *server_args))
        browser = await stack.enter_async_context(chromium(chromium_path))
        s = Session(browser, server, web_dist)
        try:
            yield s
        except BaseException:
            await s.dump()
            raise


async def connected_to_server(user: User, timeout: float = 10) -> None:
    await user.page.wait_for_selector('[data-testid="status"][data-state="open"]', timeout=ms(timeout))


async def sees_video_from(user: User, peer: str, timeout: float = 20) -> int:
    """Wait until ``user`` has decoded video frames from ``peer``; returns how many."""
    page = user.page
    await page.wait_for_function(
        "(id) => document.querySelector(`[data-testid=remote-video-${id}]`)?.videoWidth > 0",
        arg=peer,
        timeout=ms(timeout),
        polling=100,
    )
    # The count is the one the wait saw: evaluating again could meet a peer connection
    # that a renegotiation (a reload) has just replaced, with nothing decoded yet.
    seen = await page.wait_for_function(FRAMES_DECODED, arg=peer, timeout=ms(timeout), polling=100)
    frames: int = await seen.json_value()
    return frames


async def frame_arrives(condition: Callable[[], bool], timeout: float = 20) -> None:
    """Wait until ``condition`` over the frames recorded from the page's WebSocket
    holds (they are appended by Playwright's frame events; there is no event to await
    for one particular frame)."""
    deadline = asyncio.get_running_loop().time() + scaled(timeout)
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "the frame never arrived"
        await asyncio.sleep(0.05)


async def peer_state(user: User, peer: str) -> dict[str, str | None]:
    box = user.page.get_by_test_id(f"peer-state-{peer}")
    return {
        "connection": await box.get_attribute("data-connection"),
        "ice": await box.get_by_test_id("ice-state").text_content(),
        "dtls": await box.get_by_test_id("dtls-state").text_content(),
    }


async def say(user: User, text: str) -> None:
    """Type into the chat box and press Send, as a user would."""
    page = user.page
    await page.get_by_test_id("chat-input").fill(text)
    send = page.get_by_test_id("chat-send")
    await send.wait_for(state="visible", timeout=ms(5))
    await page.wait_for_function(
        "!document.querySelector('[data-testid=chat-send]').disabled", timeout=ms(10), polling=100
    )
    await send.click()


async def hears(user: User, line: str) -> None:
    await user.page.wait_for_function(
        "(line) => [...document.querySelectorAll('[data-testid=chat-line]')].some((li) => li.textContent === line)",
        arg=line,
        timeout=ms(10),
        polling=100,
    )


async def chat_lines(user: User) -> list[str]:
    lines: list[str] = await user.page.get_by_test_id("chat-line").all_text_contents()
    return lines


def signals(frames: list[dict[str, Any]], type_: str) -> list[dict[str, Any]]:
    return [f for f in frames if f.get("type") == type_]


def is_own_address(address: str) -> bool:
    """Whether an ICE candidate address belongs to this machine (binding to it works)."""
    ip = ipaddress.ip_address(address)
    if ip.is_link_local:
        return True  # on-link by definition; binding would need a scope id
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((address, 0))
        except OSError:
            return False
    return True


def no_page_errors(*users: User, network_errors_ok: bool = False) -> None:
    for user in users:
        errors = [line for line in user.console if line.startswith(("exception", "console.error"))]
        if network_errors_ok:  # Chromium logs refused connections while no server listens
            errors = [e for e in errors if "ERR_CONNECTION_REFUSED" not in e and "WebSocket connection" not in e]
        assert not errors, errors


async def call(s: Session) -> tuple[User, User]:
    """alice joins, then bob (the newcomer, who calls); both decode each other's video."""
    alice = await s.join("alice")
    bob = await s.join("bob")
    for user, peer in ((alice, "bob"), (bob, "alice")):
        assert await sees_video_from(user, peer) > 0
    return alice, bob


@pytest.mark.async_timeout(90)
async def test_two_app_pages_see_each_others_video_and_chat(
    chromium_path: str, web_dist: Path, tmp_path: Path, keep_artifact: Callable[[str, Path], None]
) -> None:
    async with session(chromium_path, web_dist) as s:
        started = time.monotonic()
        alice, bob = await call(s)
        print(f"two pages joined and decoded each other's video in {time.monotonic() - started:.1f} s")
        for user, peer in ((alice, "bob"), (bob, "alice")):
            assert await peer_state(user, peer) == {"connection": "connected", "ice": "connected", "dtls": "connected"}

        # A chat message each way, over the data channel.
        await say(alice, "hello from alice")
        await hears(bob, "alice: hello from alice")
        await say(bob, "hi alice, bob here")
        await hears(alice, "bob: hi alice, bob here")
        assert await chat_lines(alice) == ["me: hello from alice", "bob: hi alice, bob here"]
        assert await chat_lines(bob) == ["alice: hello from alice", "me: hi alice, bob here"]
        for user in (alice, bob):  # nothing of the chat touched the server
            frames = json.dumps(user.sent + user.received)
            assert "hello from alice" not in frames and "bob here" not in frames

        # Through the server: bob, the newcomer, offered; alice answered; candidates
        # trickled one frame each, then end-of-candidates.
        assert [f["from"] for f in signals(alice.received, "offer")] == ["bob"]
        assert [f["from"] for f in signals(bob.received, "answer")] == ["alice"]
        assert {"type": "peer-joined", "data": {"clientId": "bob"}} in alice.received
        for sender, receiver in ((alice, bob), (bob, alice)):
            sent = [f["data"] for f in signals(sender.sent, "ice-candidate")]
            assert any(c["candidate"].startswith("candidate:") for c in sent), sent
            assert {"candidate": ""} in sent
            received = [f["data"] for f in signals(receiver.received, "ice-candidate") if f["from"] == sender.name]
            assert received == sent
            for data in sent:  # host candidates of this machine only: no .local names, no STUN
                if data["candidate"]:
                    address = data["candidate"].split()[4]
                    assert is_own_address(address), f"candidate for an address not on this host: {data}"

        # The device pickers list Chromium's fake devices; Mute stops alice's microphone
        # track for bob (the track stays negotiated, so unmuting needs no renegotiation).
        assert "fake" in (await alice.page.get_by_test_id("camera-select").inner_text()).lower()
        mute = alice.page.get_by_test_id("toggle-microphone")
        await mute.click()
        assert await mute.get_attribute("aria-pressed") == "true"
        sending = await alice.page.evaluate("""() => window.signalingApp.call.peerCall('bob').pc.getSenders()
            .map((s) => [s.track?.kind, s.track?.enabled]).sort()""")
        assert sending == [["audio", False], ["video", True]]

        screenshot = tmp_path / "connected-call.png"
        await bob.page.screenshot(path=str(screenshot), full_page=True)
        assert screenshot.stat().st_size > 10_000
        keep_artifact("screenshot of a connected call", screenshot)
        no_page_errors(alice, bob)

        # alice leaves: bob is told at once, and her tile goes.
        await alice.page.get_by_test_id("leave-button").click()
        await bob.page.get_by_test_id("peer-alice").wait_for(state="detached", timeout=ms(5))
        assert {"type": "peer-left", "data": {"clientId": "alice"}} in bob.received
        await bob.page.get_by_test_id("alone").wait_for(timeout=ms(5))


@pytest.mark.async_timeout(90)
async def test_a_reloaded_page_rejoins_the_call(chromium_path: str, web_dist: Path) -> None:
    async with session(chromium_path, web_dist) as s:
        alice, bob = await call(s)
        before = signals(bob.sent, "offer")
        offers_to_alice = len(signals(alice.received, "offer"))
        await bob.page.reload()
        # Straight back into the call, as the same client, without the lobby.
        await connected_to_server(bob)
        assert await bob.page.get_by_test_id("client-id").text_content() == "bob"
        # Alice's old tile of bob still shows decoded frames until the new session's
        # offer replaces it: only then is "sees video" about the rejoined call.
        await frame_arrives(lambda: len(signals(alice.received, "offer")) > offers_to_alice)
        for user, peer in ((alice, "bob"), (bob, "alice")):
            assert await sees_video_from(user, peer) > 0
        assert len(signals(bob.sent, "offer")) > len(before)  # a new session, negotiated afresh
        await say(bob, "back again")
        await hears(alice, "bob: back again")
        no_page_errors(alice, bob)


@pytest.mark.async_timeout(90)
async def test_the_call_survives_a_server_restart(chromium_path: str, web_dist: Path) -> None:
    """SIGTERM closes every socket with 1001: the app says it is reconnecting, finds the
    server's successor on the same port, and the call itself never stopped."""
    async with session(chromium_path, web_dist) as s:
        first = s.server
        alice, bob = await call(s)
        first.proc.send_signal(signal.SIGTERM)
        assert first.proc.wait(scaled(10)) == 0
        for user in (alice, bob):
            # The banner says it while the 1001 is the latest news (a retry soon replaces
            # it); the page's event list keeps it.
            events = user.page.get_by_test_id("events")
            await events.get_by_text("The server is shutting down or restarting; reconnecting…").first.wait_for(
                timeout=ms(5)
            )
            assert await user.page.get_by_test_id("status").get_attribute("data-state") == "reconnecting"
        with server_process("--web-root", str(web_dist), "--port", str(first.port)) as second:
            s.server = second
            for user in (alice, bob):
                await connected_to_server(user, 20)
            for user, peer in ((alice, "bob"), (bob, "alice")):
                assert (await peer_state(user, peer))["connection"] == "connected"
            await say(bob, "still here?")
            await hears(alice, "bob: still here?")
            no_page_errors(alice, bob, network_errors_ok=True)


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # aiortc would otherwise offer every address of the machine; 127.0.0.1 is enough.
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


# getUserMedia held until the test calls window.releaseMedia(): the app joins, and
# calls, before its camera and microphone are open (as on a loaded machine, or while the
# user has not yet answered the permission prompt).
HOLD_MEDIA = """
(() => {
  const media = navigator.mediaDevices;
  const open = media.getUserMedia.bind(media);
  let release;
  const released = new Promise((resolve) => { release = resolve; });
  window.releaseMedia = () => release();
  media.getUserMedia = async (constraints) => { await released; return open(constraints); };
})();
"""


@pytest.mark.async_timeout(90)
@pytest.mark.parametrize("media_late", [False, True], ids=["media-first", "media-late"])
async def test_the_app_calls_an_aiortc_peer(
    chromium_path: str, web_dist: Path, loopback_only: None, media_late: bool
) -> None:
    """A mixed call: the browser app and a Python WebRTC peer (aiortc) in one room. The app
    (the newcomer) offers; aiortc answers with its own video; both see the other's video
    and chat over the app's pre-negotiated channel. With ``media_late`` the app's first
    offer is data only, and its camera comes in a second offer that aiortc answers with
    its video (a pc.addTrack before that first offer made aiortc fail on its answer)."""
    from aiortc import MediaStreamTrack, VideoStreamTrack
    from av import VideoFrame

    async with session(chromium_path, web_dist) as s:
        conn = await asyncio.wait_for(websocket_connect(wire.ws_url(s.server.port, ROOM, "robot")), scaled(5))
        client = Client(conn, "robot")
        assert (await client.recv_type("joined"))["data"]["peers"] == []
        robot = Peer(client)
        try:
            robot.open_negotiated_channel("chat", 0)
            robot.answer_with(VideoStreamTrack())  # a synthetic picture, sent back to the app
            robot.echo_incoming = True
            remote_video: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()

            @robot.pc.on("track")
            def on_track(track: MediaStreamTrack) -> None:
                if track.kind == "video" and not remote_video.done():
                    remote_video.set_result(track)

            app = await s.join("human", init_script=HOLD_MEDIA if media_late else None, media_first=not media_late)
            await robot.until(robot.connected, 20, "the app's call to connect")
            if media_late:
                await robot.until(robot.channel, 10, "the chat channel of the data-only call")
                assert robot.signals_received["offer"] == 1
                assert "m=video" not in robot.descriptions_received[0]
                await app.page.evaluate("window.releaseMedia()")
            frame = await asyncio.wait_for(
                (await robot.until(remote_video, 10, "the app's video track")).recv(), scaled(10)
            )
            assert isinstance(frame, VideoFrame) and frame.width > 0  # aiortc decoded Chromium's camera
            assert await sees_video_from(app, "robot") > 0  # and Chromium one of aiortc's
            # The app offered every time (once, or twice when its media came late); aiortc
            # only answered.
            assert robot.signals_received["offer"] == (2 if media_late else 1)
            assert robot.signals_received["answer"] == 0
            await robot.until(robot.channel, 10, "the chat channel")
            await say(app, "hello robot")
            await hears(app, "robot: echo:hello robot")
            assert "hello robot" in robot.received_messages
            robot.check()
            no_page_errors(app)
        finally:
            await robot.close()


@pytest.mark.async_timeout(60)
async def test_the_app_says_when_the_room_is_full(chromium_path: str, web_dist: Path) -> None:
    async with session(chromium_path, web_dist, "--max-members", "1") as s:
        await s.join("alice")
        bob = await s.open("bob", f"/#{ROOM}")
        await bob.page.get_by_test_id("name-input").fill("bob")
        await bob.page.get_by_test_id("join-button").click()
        status = bob.page.locator('[data-testid="status"][data-state="closed"]')
        await status.wait_for(timeout=ms(10))
        assert await status.text_content() == "The room is full."
        assert await status.get_attribute("data-code") == "room-full"
        assert not bob.sent and not bob.received  # refused at the REST join: no WebSocket opened

"""A headless Chromium driven over the DevTools protocol (CDP), for end-to-end tests.

Why CDP directly rather than Selenium: it needs no chromedriver and no extra Python
package (websocket-client is already a test dependency), and it reports what the
browser's network stack actually sent and received on every WebSocket
(``Network.webSocketFrameSent/Received``), independently of the page's own code.

One WebSocket to the browser carries every command; pages are attached as "flat"
sessions. Reading is single-threaded: events are collected while a command waits for
its answer and while ``Page.wait_for`` polls, so nothing runs behind the test's back.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import websocket  # websocket-client

from tests.support import scaled

EXECUTABLES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

FLAGS = (
    "--headless=new",
    "--no-sandbox",  # containers run us as root, where the sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--metrics-recording-only",
    "--password-store=basic",
    "--mute-audio",
    # mDNS-obfuscated ".local" host candidates do not resolve in a container: gather
    # the real host addresses instead.
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    # Two pages in one browser: neither may be throttled as a "background tab".
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
    # No host name resolves (the rule covers IP literals too, hence the exclusion): nothing
    # can leave the machine by name.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--window-size=900,1000",
)


class CdpError(Exception):
    pass


def find_chromium() -> str | None:
    explicit = os.environ.get("SIGNALING_CHROMIUM")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    for name in EXECUTABLES:
        path = shutil.which(name)
        if path:
            return path
    return None


class Cdp:
    """One DevTools WebSocket: commands answered in order of ids, events kept in a list."""

    def __init__(self, url: str) -> None:
        # Chromium refuses DevTools connections that carry an Origin header.
        self.ws = websocket.create_connection(url, timeout=scaled(10), suppress_origin=True)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, session: str | None = None, timeout: float = 10, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        deadline = time.monotonic() + scaled(timeout)
        while True:
            reply = self._read(deadline)
            if reply is None:
                raise TimeoutError(f"CDP {method} did not answer within {scaled(timeout)} s")
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise CdpError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result

    def pump(self, seconds: float) -> None:
        """Collect events for up to ``seconds``."""
        deadline = time.monotonic() + seconds
        while self._read(deadline) is not None:
            pass

    def _read(self, deadline: float) -> dict[str, Any] | None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        self.ws.settimeout(remaining)
        try:
            message: dict[str, Any] = json.loads(self.ws.recv())
        except websocket.WebSocketTimeoutException:
            return None
        if "method" in message:
            self.events.append(message)
        return message

    def close(self) -> None:
        self.ws.close()


class Page:
    def __init__(self, cdp: Cdp, target_id: str, session: str) -> None:
        self.cdp = cdp
        self.target_id = target_id
        self.session = session

    def call(self, method: str, timeout: float = 10, **params: Any) -> dict[str, Any]:
        return self.cdp.call(method, self.session, timeout, **params)

    def navigate(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def evaluate(self, expression: str, timeout: float = 10) -> Any:
        """The value of a JS expression (awaited if it is a promise); page errors raise."""
        result = self.call("Runtime.evaluate", timeout, expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise CdpError(f"{expression!r} threw: {details.get('exception', {}).get('description') or details}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float, what: str) -> Any:
        """Poll a JS expression until it is truthy (bounded); returns its value."""
        deadline = time.monotonic() + scaled(timeout)
        value = None
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(expression)
            except CdpError as error:  # e.g. the page's module has not run yet
                value = error
            if value and not isinstance(value, CdpError):
                return value
            self.cdp.pump(0.05)  # collect events meanwhile: a short, bounded poll interval
        raise AssertionError(f"timed out after {scaled(timeout)} s waiting for {what}; last value: {value!r}")

    def events(self, method: str) -> list[dict[str, Any]]:
        return [e["params"] for e in self.cdp.events if e.get("sessionId") == self.session and e["method"] == method]

    def ws_frames(self, direction: str) -> list[dict[str, Any]]:
        """JSON text frames this page's WebSockets ``sent`` or ``received``, per the network stack."""
        method = {"sent": "Network.webSocketFrameSent", "received": "Network.webSocketFrameReceived"}[direction]
        return [json.loads(e["response"]["payloadData"]) for e in self.events(method) if e["response"]["opcode"] == 1]

    def console(self) -> list[str]:
        lines = [f"console.{e['type']}: " + " ".join(str(a.get("value", a.get("description", ""))) for a in e["args"])
                 for e in self.events("Runtime.consoleAPICalled")]
        lines += [f"exception: {e['exceptionDetails'].get('exception', {}).get('description', e['exceptionDetails'])}"
                  for e in self.events("Runtime.exceptionThrown")]
        lines += [f"log.{e['entry']['level']}: {e['entry']['text']}" for e in self.events("Log.entryAdded")]
        return lines

    def screenshot(self, path: str | Path) -> None:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        Path(path).write_bytes(base64.b64decode(data))

    def close(self) -> None:
        """Close the tab as a user would: unload handlers run."""
        self.cdp.call("Target.closeTarget", targetId=self.target_id)


class Browser:
    def __init__(self, proc: subprocess.Popen[bytes], cdp: Cdp, log_path: Path) -> None:
        self.proc = proc
        self.cdp = cdp
        self.log_path = log_path

    def new_page(self) -> Page:
        """A blank tab in its own browser context (own storage, like a separate user),
        with console, network and page events on: navigate it afterwards so no
        WebSocket frame is missed."""
        context = self.cdp.call("Target.createBrowserContext")["browserContextId"]
        target = self.cdp.call("Target.createTarget", url="about:blank", browserContextId=context)["targetId"]
        session = self.cdp.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        page = Page(self.cdp, target, session)
        for domain in ("Page", "Runtime", "Network", "Log"):
            page.call(f"{domain}.enable")
        return page

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""


@contextmanager
def launch(executable: str, *extra_flags: str) -> Iterator[Browser]:
    """Start headless Chromium on a free DevTools port; always kill it and its children."""
    with tempfile.TemporaryDirectory(prefix="e2e-chromium-") as tmp:
        profile = Path(tmp) / "profile"
        log_path = Path(tmp) / "chromium.log"
        with open(log_path, "wb") as log_file:
            # Own session (process group), so the renderer, GPU and network children are
            # reaped with it below.
            proc = subprocess.Popen(
                [executable, *FLAGS, *extra_flags, f"--user-data-dir={profile}", "--remote-debugging-address=127.0.0.1",
                 "--remote-debugging-port=0", "about:blank"],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file, start_new_session=True)
        cdp: Cdp | None = None
        try:
            # Chromium writes the port it picked, and the browser target's path, here.
            port_file = profile / "DevToolsActivePort"
            deadline = time.monotonic() + scaled(20)
            lines: list[str] = []
            while len(lines) < 2:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"Chromium did not start (exit {proc.poll()}): {log_path.read_text()[-3000:]}")
                time.sleep(0.05)  # bounded poll for a file; there is no event to wait on
                lines = port_file.read_text().split() if port_file.exists() else []
            cdp = Cdp(f"ws://127.0.0.1:{lines[0]}{lines[1]}")
            yield Browser(proc, cdp, log_path)
        finally:
            if cdp is not None:
                try:
                    cdp.call("Browser.close", timeout=5)
                except Exception:
                    pass  # it may be gone already; the kill below makes sure
                cdp.close()
            try:
                proc.wait(timeout=scaled(5))
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the group we started: stray children too
            except ProcessLookupError:
                pass
            proc.wait(timeout=scaled(10))

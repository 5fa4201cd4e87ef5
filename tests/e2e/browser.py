"""Headless Chromium for end-to-end tests: the machine's own Chromium (Debian's package)
driven by Playwright for Python, and the built browser app (web/dist) it opens.

Playwright never downloads a browser here: it launches the executable found on the
machine (``executable_path``). Everything stays on this machine: Chromium resolves no
host names, makes no background requests, and uses fake camera/microphone devices.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support import scaled

if TYPE_CHECKING:  # imported lazily below, so that collection works without Playwright
    from playwright.async_api import Browser, BrowserContext

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
DIST = WEB / "dist"

EXECUTABLES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

ARGS = (
    "--no-sandbox",  # containers run us as root, where the sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    # Chromium's synthetic camera (a test pattern) and microphone (a beep), and the
    # permission prompt answered yes.
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    # mDNS-obfuscated ".local" host candidates do not resolve in a container: gather the
    # real host addresses instead.
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    # Two pages in one browser: neither may be throttled as a "background tab".
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
    # No host name resolves (the rule covers IP literals too, hence the exclusion):
    # nothing can leave the machine by name.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def missing(reason: str) -> None:
    """A missing tool skips the test on a laptop, and fails it in CI, which must run it."""
    if in_ci():
        pytest.fail(f"{reason}: CI must run the browser tests")
    pytest.skip(reason)


def find_chromium() -> str | None:
    explicit = os.environ.get("SIGNALING_CHROMIUM")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    for name in EXECUTABLES:
        path = shutil.which(name)
        if path:
            return path
    return None


def require_chromium() -> str:
    executable = find_chromium()
    if executable is None:
        missing("Chromium not found (apt-get install chromium, or set SIGNALING_CHROMIUM)")
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        missing("the playwright package is not installed (pip install -e '.[test]')")
    assert executable is not None
    return executable


def _newest_source() -> float:
    sources = [
        WEB / "index.html",
        WEB / "package.json",
        WEB / "package-lock.json",
        WEB / "vite.config.ts",
        WEB / "tsconfig.json",
    ]
    for folder in (WEB / "src", WEB / "public"):
        sources.extend(p for p in folder.rglob("*") if p.is_file())
    return max(p.stat().st_mtime for p in sources if p.exists())


def require_node_modules() -> str:
    """npm, with web/node_modules installed from the lock file (npm ci) if missing or stale."""
    npm = shutil.which("npm")
    if npm is None:
        missing("npm not found: cannot build or test the browser app (web/)")
    assert npm is not None
    installed = WEB / "node_modules" / ".package-lock.json"
    if not installed.is_file() or installed.stat().st_mtime < (WEB / "package-lock.json").stat().st_mtime:
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=WEB, check=True, timeout=scaled(300))
    return npm


def require_built_app() -> Path:
    """web/dist, built now (npm ci && npm run build) if it is missing or older than its
    sources. .ci/run builds it before the tests; this keeps a developer's run honest."""
    index = DIST / "index.html"
    if index.is_file() and index.stat().st_mtime >= _newest_source():
        return DIST
    npm = require_node_modules()
    subprocess.run([npm, "run", "build"], cwd=WEB, check=True, timeout=scaled(300))
    assert index.is_file(), "npm run build wrote no web/dist/index.html"
    return DIST


@asynccontextmanager
async def chromium(executable: str) -> AsyncIterator[Browser]:
    """Headless Chromium on this machine's executable; always closed (Playwright kills
    the whole process tree it started)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=list(ARGS), timeout=scaled(30) * 1000
        )
        try:
            yield browser
        finally:
            await browser.close()


@asynccontextmanager
async def chromium_profile(executable: str, user_data_dir: Path) -> AsyncIterator[BrowserContext]:
    """Headless Chromium with a real profile on disk. Playwright's other contexts are
    incognito, where Chromium never offers to install an app; this one is not."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(user_data_dir), executable_path=executable, headless=True, args=list(ARGS), timeout=scaled(30) * 1000
        )
        try:
            yield context
        finally:
            await context.close()

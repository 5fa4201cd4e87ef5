"""The app is a real PWA: Chromium finds its manifest and service worker, says it is
installable, and opens the app shell with no network and no server; the service worker
never answers the API from a cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.browser import chromium_profile
from tests.support import scaled, server_process

pytestmark = pytest.mark.slow

# Every URL in every Cache Storage cache of the page's origin.
CACHED_URLS = """async () => {
  const urls = [];
  for (const name of await caches.keys()) {
    for (const request of await (await caches.open(name)).keys()) urls.push(new URL(request.url).pathname);
  }
  return urls;
}"""

# The page's fetch of a path: its status, or "failed" when no answer came at all.
FETCH = """async (path) => {
  const join = path.endsWith('/join');
  try { return (await fetch(path, { method: join ? 'POST' : 'GET', body: join ? '{}' : undefined })).status; }
  catch { return 'failed'; }
}"""


@pytest.mark.async_timeout(60)
async def test_the_app_installs_and_its_shell_opens_offline_without_caching_the_api(
    chromium_path: str, web_dist: Path, tmp_path: Path
) -> None:
    from playwright.async_api import Error as PlaywrightError

    with server_process("--web-root", str(web_dist)) as server:
        base = f"http://127.0.0.1:{server.port}"
        async with chromium_profile(chromium_path, tmp_path / "profile") as context:
            page = context.pages[0] if context.pages else await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(base + "/")
            await page.get_by_test_id("lobby").wait_for(timeout=scaled(10) * 1000)

            # The manifest, as the page links it and the server serves it.
            href = await page.locator('link[rel="manifest"]').get_attribute("href")
            assert href == "/manifest.webmanifest"
            response = await context.request.get(base + href)
            assert response.ok and response.headers["content-type"].startswith("application/manifest+json")
            manifest = json.loads(await response.text())
            assert manifest["display"] == "standalone" and manifest["start_url"] == "/"
            assert {icon["sizes"] for icon in manifest["icons"]} == {"192x192", "512x512"}
            for icon in manifest["icons"]:
                icon_response = await context.request.get(base + icon["src"])
                assert icon_response.ok and icon_response.headers["content-type"] == "image/png"

            # The service worker registers, activates and takes the page over.
            script = await page.evaluate("async () => (await navigator.serviceWorker.ready).active.scriptURL")
            assert script == base + "/sw.js"
            await page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=scaled(10) * 1000)

            # Chromium's own installability check: no errors at all.
            cdp = await context.new_cdp_session(page)
            installability = await cdp.send("Page.getInstallabilityErrors")
            assert installability["installabilityErrors"] == [], installability
            app_manifest = await cdp.send("Page.getAppManifest")
            assert app_manifest["errors"] == [], app_manifest["errors"]

            # The API goes to the network through the worker, and nothing of it is kept.
            for path in ("/healthz", "/readyz", "/rooms/pwa-room/join"):
                assert await page.evaluate(FETCH, path) == 200, path
            cached = await page.evaluate(CACHED_URLS)
            assert "/index.html" in cached and any(p.startswith("/assets/") and p.endswith(".js") for p in cached)
            assert not [p for p in cached if p.startswith(("/ws", "/rooms", "/healthz", "/readyz", "/openapi"))]

            # No network and no server: the shell still opens from the worker's cache,
            # while the API fails instead of being answered from a cache.
            server.proc.kill()
            server.proc.wait(scaled(10))
            await context.set_offline(True)
            await page.reload()
            await page.get_by_test_id("lobby").wait_for(timeout=scaled(10) * 1000)
            assert await page.get_by_test_id("join-button").is_visible()
            for path in ("/healthz", "/rooms/pwa-room/join"):
                assert await page.evaluate(FETCH, path) == "failed", path
            # A navigation to an API path is not answered with the app shell either.
            with pytest.raises(PlaywrightError):
                await page.goto(base + "/readyz")
            assert not errors, errors

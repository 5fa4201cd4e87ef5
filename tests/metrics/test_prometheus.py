"""A real Prometheus scrapes a real server process with the shipped config and rules.

Prometheus runs on 127.0.0.1 (a free port, storage in a tmp dir, a 1 s scrape
interval) with deploy/prometheus/prometheus.yml, its three example targets replaced by
the server under test (``signaling-server`` as a subprocess). Both are shared by this
module's tests and always stopped at its end. Through Prometheus's HTTP API the test sees the target up, the
counters move once real WebSocket clients talk, and the shipped alert rules loaded,
evaluated and quiet for a healthy server.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from tests.metrics.tools import DEPLOY, binary, eventually, free_port, traffic
from tests.support import ServerProcess, join, scaled, server_process

pytestmark = pytest.mark.slow


def shipped_config_for(target: str) -> str:
    """deploy/prometheus/prometheus.yml pointed at ``target`` and sped up for a test."""
    text = (DEPLOY / "prometheus" / "prometheus.yml").read_text()
    edits = [
        (r"scrape_interval: 15s", "scrape_interval: 1s"),
        (r"scrape_timeout: 10s", "scrape_timeout: 1s"),
        (r"evaluation_interval: 15s", "evaluation_interval: 1s"),
        (r"signaling-1\.internal:8081", target),
        (r"\n *- signaling-2\.internal:8081", ""),
        (r"\n *- signaling-3\.internal:8081", ""),
    ]
    for pattern, replacement in edits:
        text, count = re.subn(pattern, replacement, text)
        assert count == 1, f"prometheus.yml no longer has {pattern!r}: update this test with it"
    return text


@contextmanager
def prometheus(tmp_path: Path, target: str) -> Iterator[str]:
    """A Prometheus process scraping ``target``; yields its base URL once it is ready;
    always stops it."""
    exe = binary("prometheus")
    config = tmp_path / "prometheus.yml"
    config.write_text(shipped_config_for(target))
    shutil.copy(DEPLOY / "prometheus" / "alerts.yml", tmp_path / "alerts.yml")  # rule_files is relative
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with open(tmp_path / "prometheus.log", "w") as log:
        proc = subprocess.Popen(
            [
                exe,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + scaled(15)
            while not _ready(base):
                assert proc.poll() is None, f"prometheus exited: {(tmp_path / 'prometheus.log').read_text()}"
                assert time.monotonic() < deadline, "prometheus did not get ready"
                time.sleep(0.05)  # polling another process's readiness (a fixture: no loop here)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=scaled(10))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=scaled(10))


def _ready(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/-/ready", timeout=scaled(1)) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str, str]]:
    """A real server process and a real Prometheus scraping it, shared by this module's
    tests: Prometheus takes ~5 s (its discovery-update interval) to start scraping."""
    binary("prometheus")
    with server_process() as server:
        target = f"127.0.0.1:{server.metrics_port}"
        with prometheus(tmp_path_factory.mktemp("prometheus"), target) as base:
            yield server, base, target


async def api(base: str, path: str, **params: str) -> Any:
    """GET a Prometheus API path; the ``data`` of a success, None while it is not answering."""
    url = f"{base}{path}" + (f"?{urlencode(params)}" if params else "")
    response = await AsyncHTTPClient().fetch(HTTPRequest(url, request_timeout=scaled(2)), raise_error=False)
    if response.code != 200:
        return None
    body = json.loads(response.body)
    assert body["status"] == "success", body
    return body["data"]


async def query(base: str, promql: str) -> list[dict[str, Any]] | None:
    data = await api(base, "/api/v1/query", query=promql)
    return None if data is None else data["result"]


async def scalar(base: str, promql: str) -> float | None:
    """The single value of an instant query, or None while it has no result."""
    result = await query(base, promql)
    return float(result[0]["value"][1]) if result else None


async def wait_for_target(base: str, target: str) -> None:
    async def target_up() -> float | None:
        return await scalar(base, f'up{{job="signaling", instance="{target}"}} == 1')

    await eventually(target_up, 20, "Prometheus to scrape the server (up == 1)")


@pytest.mark.async_timeout(45)
async def test_a_real_prometheus_sees_the_target_up_and_the_counters_move_with_traffic(
    scraped: tuple[ServerProcess, str, str],
) -> None:
    server, base, target = scraped
    await wait_for_target(base, target)
    messages = 'sum(signaling_messages_total{job="signaling"})'
    before = await scalar(base, messages)
    assert before is not None  # the pre-initialised series are there before any traffic

    await traffic(server)
    a, _ = await join(server, "prom", "a")
    b, _ = await join(server, "prom", "b")
    await a.recv_type("peer-joined")
    for _ in range(20):
        a.signal("ice-candidate", to="b")
    for _ in range(20):
        await b.recv_type("ice-candidate")

    async def moved() -> float | None:
        value = await scalar(base, messages)
        return value if value is not None and value >= before + 25 else None

    await eventually(moved, 10, f"{messages} to rise by the 25 messages sent")

    async def two_clients() -> float | None:
        value = await scalar(base, 'sum(signaling_connected_clients{job="signaling"})')
        return value if value == 2 else None

    await eventually(two_clients, 10, "signaling_connected_clients == 2 in Prometheus")
    build = await query(base, 'signaling_build_info{job="signaling"}')
    assert build and build[0]["metric"]["version"]
    a.close()
    b.close()


@pytest.mark.async_timeout(45)
async def test_the_shipped_alert_rules_load_in_prometheus_and_stay_quiet_for_a_healthy_server(
    scraped: tuple[ServerProcess, str, str],
) -> None:
    server, base, target = scraped
    alert_names = set(re.findall(r"- alert: (\w+)", (DEPLOY / "prometheus" / "alerts.yml").read_text()))
    await wait_for_target(base, target)

    async def all_rules_evaluated() -> list[dict[str, Any]] | None:
        data = await api(base, "/api/v1/rules")
        rules = [rule for group in data["groups"] for rule in group["rules"]]
        return rules if rules and all(rule["health"] != "unknown" for rule in rules) else None

    rules = await eventually(all_rules_evaluated, 10, "every rule to be evaluated once")
    assert {rule["name"] for rule in rules} == alert_names
    for rule in rules:
        assert rule["type"] == "alerting" and rule["health"] == "ok", rule
    await traffic(server)
    # Rules evaluated before the first scrape saw no target (SignalingNoBackendUp
    # pending): wait for an evaluation of every rule after the target was up and the
    # traffic flowed. Then nothing may be pending or firing.
    seen = {rule["name"]: rule["lastEvaluation"] for rule in rules}

    async def evaluated_again() -> bool | None:
        data = await api(base, "/api/v1/rules")
        again = [rule["lastEvaluation"] != seen[rule["name"]] for group in data["groups"] for rule in group["rules"]]
        return True if all(again) else None

    await eventually(evaluated_again, 10, "every rule to be evaluated again")
    alerts = (await api(base, "/api/v1/alerts"))["alerts"]
    assert alerts == [], alerts

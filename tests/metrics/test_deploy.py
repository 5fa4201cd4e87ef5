"""What ships in deploy/: the scrape config, the alert rules and their unit tests, and
the Grafana dashboard, checked with Prometheus's own tools against a live server.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.metrics.tools import DEPLOY, promtool, sample_names, scrape
from tests.support import running_server

PROMETHEUS = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "signaling.json"

# Series Prometheus itself adds to every target.
SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}


# -- reading the shipped files ----------------------------------------------------


def alert_exprs(text: str) -> dict[str, tuple[str, int, int]]:
    """alert name -> (expr, first line, end line) in alerts.yml.

    A reader for the layout alerts.yml keeps (``- alert:`` then ``expr:``, inline or a
    ``|`` block indented deeper than the key), so that the tests need no YAML library.
    """
    lines = text.splitlines()
    out: dict[str, tuple[str, int, int]] = {}
    name = None
    i = 0
    while i < len(lines):
        line = lines[i]
        if m := re.match(r"\s*- alert: (\S+)\s*$", line):
            name = m.group(1)
        elif name and (m := re.match(r"(\s*)expr: ?(.*)$", line)):
            indent, value = len(m.group(1)), m.group(2).strip()
            start = i
            if value in ("|", ">", "|-", ">-"):
                block = []
                while i + 1 < len(lines) and (not lines[i + 1].strip() or _indent(lines[i + 1]) > indent):
                    i += 1
                    block.append(lines[i].strip())
                value = " ".join(b for b in block if b)
            out[name] = (value, start, i + 1)
            name = None
        i += 1
    return out


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def dashboard_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from dashboard_panels(panel.get("panels", []))  # rows, collapsed or not


def dashboard_exprs() -> list[tuple[str, str]]:
    """(panel title, expr) for every query target of every panel."""
    dashboard = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in dashboard_panels(dashboard["panels"]) for t in p.get("targets", [])]


def grafana_to_promql(expr: str) -> str:
    """Grafana's variables, replaced the way Grafana would before sending the query."""
    expr = re.sub(r"\$__(rate_interval|interval|range)\b", "5m", expr)
    expr = re.sub(r"\$\{?\w+\}?", ".*", expr)  # $instance inside a =~ matcher
    return expr


_NOT_METRICS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
}


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (the expression must already parse)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values
    e = re.sub(r"\[[^\]]*\]", "", e)  # ranges and subqueries
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)  # label lists
    e = re.sub(r"\{[^}]*\}", "", e)  # matchers
    names = set()
    for m in re.finditer(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*", e):
        if e[m.end() :].lstrip().startswith("("):
            continue  # a function or an aggregation
        if m.group().lower() not in _NOT_METRICS:
            names.add(m.group())
    return names


def check_parses(tmp_path: Path, exprs: list[str]) -> None:
    """Each expression as a recording rule through ``promtool check rules``: Prometheus's parser."""
    rules = {
        "groups": [
            {
                "name": "parse",
                "rules": [{"record": f"parse:expr_{i}", "expr": e} for i, e in enumerate(dict.fromkeys(exprs))],
            }
        ]
    }
    path = tmp_path / "exprs.yml"
    path.write_text(json.dumps(rules, indent=1))  # JSON is YAML
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


async def live_series_names() -> set[str]:
    async with running_server() as server:
        _, text = await scrape(server)
    return sample_names(text) | SYNTHETIC | cluster_series_names()


def cluster_series_names() -> set[str]:
    """What a backend adds in cluster mode (tests/cluster/ scrapes it live, with Redis)."""
    from prometheus_client import CollectorRegistry, generate_latest

    from metrics.signaling import ClusterMetrics

    registry = CollectorRegistry()
    ClusterMetrics(registry)
    return sample_names(generate_latest(registry).decode())


# -- Prometheus: scrape config, alert rules and their unit tests --------------------


def test_the_scrape_config_and_the_rule_file_it_loads_pass_promtool_check_config() -> None:
    result = promtool("check", "config", "prometheus.yml", cwd=PROMETHEUS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout


def test_the_alert_rules_pass_promtool_check_rules() -> None:
    result = promtool("check", "rules", "alerts.yml", cwd=PROMETHEUS)
    assert result.returncode == 0, result.stdout + result.stderr
    names = alert_exprs((PROMETHEUS / "alerts.yml").read_text())
    assert f"SUCCESS: {len(names)} rules found" in result.stdout


def test_the_alert_unit_tests_pass_promtool_test_rules() -> None:
    result = promtool("test", "rules", "alerts_test.yml", cwd=PROMETHEUS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_issue_asks_for_these_alerts() -> None:
    names = set(alert_exprs((PROMETHEUS / "alerts.yml").read_text()))
    assert {
        "SignalingBackendDown",
        "SignalingJoinErrorRate",
        "SignalingMessageErrorRate",
        "SignalingRelayLatencyHigh",
        "SignalingSlowReaderDisconnects",
        "SignalingRoomFailures",
        "SignalingMailboxBacklog",
    } <= names


@pytest.mark.parametrize(
    "mutant, proves",
    [
        ("vector(0) > 1", "fires when it should"),  # never fires: every firing expectation must fail
        ('count by (instance) ({__name__=~".+"})', "stays quiet when it should"),  # always fires, for every instance
    ],
)
def test_every_alert_has_unit_tests_that_catch_it_misbehaving(tmp_path: Path, mutant: str, proves: str) -> None:
    """Mutation testing of alerts_test.yml: replace every alert's expression by one that
    never (or always) fires; the unit tests must then fail for every single alert."""
    text = (PROMETHEUS / "alerts.yml").read_text()
    alerts = alert_exprs(text)
    lines = text.splitlines()
    for _, start, end in sorted(alerts.values(), key=lambda a: -a[1]):
        indent = lines[start][: _indent(lines[start])]
        lines[start:end] = [f"{indent}expr: '{mutant}'"]
    (tmp_path / "alerts.yml").write_text("\n".join(lines) + "\n")
    (tmp_path / "alerts_test.yml").write_text((PROMETHEUS / "alerts_test.yml").read_text())
    assert promtool("check", "rules", "alerts.yml", cwd=tmp_path).returncode == 0  # the mutant is valid
    result = promtool("test", "rules", "alerts_test.yml", cwd=tmp_path)
    caught = set(re.findall(r"alertname: (\w+), time:", result.stdout + result.stderr))
    assert result.returncode != 0
    assert caught == set(alerts), f"no test proves these {proves}: {sorted(set(alerts) - caught)}"


async def test_the_alert_rules_name_only_metrics_the_service_exports(tmp_path: Path) -> None:
    alerts = alert_exprs((PROMETHEUS / "alerts.yml").read_text())
    check_parses(tmp_path, [expr for expr, _, _ in alerts.values()])  # the reader read them whole
    exported = await live_series_names()
    for name, (expr, _, _) in alerts.items():
        used = metric_names(expr)
        assert used, f"{name}: no metric found in {expr}"
        assert used <= exported, f"{name} uses metrics the service does not export: {sorted(used - exported)}"


# -- Grafana ----------------------------------------------------------------------


def test_the_dashboard_is_importable_json_with_unique_panel_ids_and_a_datasource_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard.get("id") is None
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    panels = list(dashboard_panels(dashboard["panels"]))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert {t["refId"] for t in panel["targets"]} and all(
            t["datasource"]["uid"] == "${datasource}" for t in panel["targets"]
        )


async def test_every_dashboard_query_parses_and_names_only_metrics_the_service_exports(tmp_path: Path) -> None:
    exprs = dashboard_exprs()
    assert len(exprs) >= 20
    promql = [grafana_to_promql(expr) for _, expr in exprs]
    assert not any("$" in e for e in promql)
    check_parses(tmp_path, promql)
    exported = await live_series_names()
    variable_query = json.loads(DASHBOARD.read_text())["templating"]["list"][1]["definition"]
    used_by_panel: dict[str, set[str]] = {}
    for (title, _), e in zip(exprs, promql, strict=True):
        used = metric_names(e)
        assert used, f"panel {title!r}: {e} selects no metric"
        used_by_panel.setdefault(title, set()).update(used)
    used_by_panel["$instance variable"] = metric_names(re.sub(r"^label_values\((.*), *\w+\)$", r"\1", variable_query))
    for title, used in used_by_panel.items():
        assert used <= exported, f"panel {title!r} uses metrics the service does not export: {sorted(used - exported)}"
    # The dashboard covers what the issue asks operators to see at a glance.
    everything = set().union(*used_by_panel.values())
    assert {
        "signaling_connected_clients",
        "signaling_rooms",
        "signaling_relay_latency_seconds_bucket",
        "signaling_call_setup_seconds_bucket",
        "signaling_joins_total",
        "signaling_messages_total",
        "signaling_frame_errors_total",
        "signaling_room_failures_total",
        "signaling_room_mailbox_max_depth",
        "signaling_slow_reader_disconnects_total",
        "signaling_closes_total",
    } <= everything


def test_the_metric_name_reader_finds_selectors_and_skips_functions_labels_and_keywords() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, instance) (rate(a_bucket{job="x", le=~"1|b"}[5m] offset 1m)))'
        " / on (instance) group_left (version) b_info > bool 1 and c_total unless up"
    )
    assert metric_names(expr) == {"a_bucket", "b_info", "c_total", "up"}

"""The cost curves (``curves.py --quick``) end to end, and the SVG charts of plot.py.

One quick run against real server processes (the floor on both loops and the service)
serves every end-to-end test here. No timing assertions: only that every curve has
every point for every server, that every frame sent at these tiny rates arrived
exactly once (a broadcast once per other member), that a peer count beyond the
open-files limit is skipped with its reason, and that the plots are well-formed SVG
with one line per server. plot.py's axes and escaping are tested without processes.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from loadtests import plot
from tests.support import scaled

ROOT = Path(__file__).resolve().parents[2]
CURVES = ROOT / "loadtests" / "curves.py"
SERVERS = {"floor", "floor-uvloop", "service"}
SVG = "{http://www.w3.org/2000/svg}"
TOO_MANY = 2_000_000_000  # beyond any open-files limit Linux allows (fs.nr_open tops out near 2**30)
FIGURES = {"cpu_s_per_10k", "p50_ms", "p99_ms", "delivered_ratio", "lost", "server_cpu_util", "generator_cpu_util"}


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("curves") / "curves.json"
    # Its own session, so curves.py, its servers and its generators can all be killed at once.
    proc = subprocess.Popen(
        [sys.executable, str(CURVES), "--quick", "--out", str(out), "--peer-sizes", f"100,200,{TOO_MANY}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=scaled(200))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"curves.py --quick did not finish:\n{output[-4000:]}")
    leftover = group_alive(proc.pid)
    if leftover:
        os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, output[-4000:]
    assert not leftover, "curves.py left servers or generators running"
    result: dict[str, Any] = json.loads(out.read_text())
    result["_output"] = output
    result["_dir"] = out.parent
    return result


def every_point(result: dict[str, Any], curve: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(server, point, figures) of every repeat."""
    return [
        (kind, point, figures)
        for kind, reps in result["curves"][curve]["runs"].items()
        for rep in reps
        for point, figures in rep["points"].items()
    ]


# -- curves.py --quick, end to end --


@pytest.mark.slow
@pytest.mark.timeout(scaled(240))
def test_quick_curves_have_every_point_of_every_curve_for_every_server(quick_run: dict[str, Any]) -> None:
    config, curves = quick_run["config"], quick_run["curves"]
    wanted = {"rate": config["rates"], "peers": [100, 200], "roomsize": config["room_sizes"]}
    assert set(curves) == set(wanted)
    for curve, xs in wanted.items():
        assert curves[curve]["points"] == [str(x) for x in xs]
        assert set(curves[curve]["medians"]) == SERVERS
        for kind, by_point in curves[curve]["medians"].items():
            assert list(by_point) == curves[curve]["points"], (curve, kind)
            for point, figures in by_point.items():
                assert FIGURES <= set(figures), (curve, kind, point, FIGURES - set(figures))
        assert all(len(reps) == config["repeats"] == 1 for reps in curves[curve]["runs"].values())
    loops = {kind: {rep["loop"] for c in curves.values() for rep in c["runs"][kind]} for kind in SERVERS}
    assert loops == {"floor": {"asyncio"}, "floor-uvloop": {"uvloop"}, "service": {"uvloop"}}
    assert quick_run["machine"]["cores"] >= 1 and quick_run["machine"]["open_files_limit"] > 0
    assert "curves.py --quick" in quick_run["command"]


@pytest.mark.slow
@pytest.mark.timeout(scaled(240))
def test_every_frame_relayed_at_the_tiny_rates_arrives_exactly_once(quick_run: dict[str, Any]) -> None:
    for curve in ("rate", "peers"):
        for kind, point, f in every_point(quick_run, curve):
            where = (curve, kind, point)
            assert f["sent"] > 0, where
            assert f["delivered"] == f["expected"] == f["sent"], (where, f)
            assert f["lost"] == f["duplicates"] == f["misrouted"] == f["error_frames"] == 0, (where, f)
            assert f["delivered_ratio"] == 1.0, where


@pytest.mark.slow
@pytest.mark.timeout(scaled(240))
def test_a_broadcast_counts_one_copy_for_each_other_member_of_the_room(quick_run: dict[str, Any]) -> None:
    for kind, point, f in every_point(quick_run, "roomsize"):
        k = int(point)
        where = ("roomsize", kind, point)
        assert f["room_size"] == k and f["members"] == f["rooms"] * k > 0, (where, f)
        assert f["sent"] > 0 and f["expected"] == (k - 1) * f["sent"], (where, f)
        assert f["delivered"] == f["expected"], (where, f)
        assert f["lost"] == f["duplicates"] == f["misrouted"] == f["error_frames"] == 0, (where, f)


@pytest.mark.slow
@pytest.mark.timeout(scaled(240))
def test_a_peer_count_beyond_the_open_files_limit_is_skipped_with_its_reason(quick_run: dict[str, Any]) -> None:
    peers = quick_run["curves"]["peers"]
    [skipped] = peers["skipped"]
    assert skipped["n"] == TOO_MANY
    assert "open files" in skipped["reason"] and "ulimit -Hn" in skipped["reason"]
    assert f"skipping N={TOO_MANY}" in quick_run["_output"]
    assert f"Skipped N={TOO_MANY}" in (quick_run["_dir"] / "curves.md").read_text()
    # The measured pairs are not counted among the idle peers; RSS is recorded per N.
    for kind, point, f in every_point(quick_run, "peers"):
        assert f["idle_peers"] == int(point), (kind, point, f)
        assert f["rss_kb_total"] > 0 and math.isfinite(f["rss_kb_per_peer"]), (kind, point, f)
        # Call setups beside the idle peers, every one completed, their CPU measured.
        assert f["setup_setups_per_s"] > 0 and f["setup_failed"] == 0, (kind, point, f)
        assert f["setup_cpu_ms_per_setup"] > 0, (kind, point, f)


@pytest.mark.slow
@pytest.mark.timeout(scaled(240))
def test_each_curve_is_plotted_with_one_line_per_server_in_every_panel(quick_run: dict[str, Any]) -> None:
    for curve, panels in (("rate", 3), ("peers", 4), ("roomsize", 2)):
        root = ET.parse(quick_run["_dir"] / f"curves-{curve}.svg").getroot()
        assert root.tag == f"{SVG}svg"
        groups = [g for g in root.iter(f"{SVG}g") if g.get("class") == "panel"]
        assert len(groups) == panels, curve
        for group in groups:
            lines = [p for p in group.iter(f"{SVG}path") if p.get("class") == "series"]
            assert sorted(p.findtext(f"{SVG}title") for p in lines) == sorted(SERVERS), curve
            for line in lines:  # every point drawn, in one unbroken line
                points = len(quick_run["curves"][curve]["points"])
                assert len(re.findall(r"[ML]", line.get("d", ""))) == points, (curve, line.get("d"))
                assert line.get("d", "").count("M") == 1, (curve, line.get("d"))


@pytest.mark.slow
@pytest.mark.timeout(scaled(240))
def test_the_markdown_has_a_table_per_curve_with_a_row_per_point_and_server(quick_run: dict[str, Any]) -> None:
    table = (quick_run["_dir"] / "curves.md").read_text()
    for heading in ("### Rate to saturation", "### Live peers", "### Room size (broadcasts)"):
        assert heading in table
    rows = [line for line in table.splitlines() if re.match(r"\| \d+ \| (floor|floor-uvloop|service) \|", line)]
    points = sum(len(c["points"]) for c in quick_run["curves"].values())
    assert len(rows) == points * len(SERVERS)


# -- plot.py, no processes --


def test_linear_ticks_are_nice_round_steps_covering_the_values() -> None:
    assert plot.linear_ticks(0, 10) == [0, 2, 4, 6, 8, 10]
    assert plot.linear_ticks(0.3, 2.7) == [0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    assert plot.linear_ticks(0, 12_000) == [0, 2500, 5000, 7500, 10_000, 12_500]
    one = plot.linear_ticks(5, 5)  # one value still gets an axis with a length
    assert len(one) >= 2 and one[0] <= 5 < one[-1]


def test_log_ticks_are_decades_or_1_2_5_steps_on_a_short_axis() -> None:
    assert plot.log_ticks(0.5, 300) == [0.1, 1, 10, 100, 1000]
    assert plot.log_ticks(2, 16) == [2, 5, 10, 20]
    assert plot.log_ticks(0.3, 4) == [0.2, 0.5, 1, 2, 5]
    assert plot.log_ticks(3, 3) == [2, 5]
    with pytest.raises(ValueError):
        plot.log_ticks(0, 10)


def test_a_log_axis_spaces_decades_evenly_and_a_linear_cost_axis_starts_at_zero() -> None:
    log_axis = plot.make_axis([1, 100], log=True)
    assert log_axis.pixel(10, 0, 200) == pytest.approx(100)
    assert log_axis.pixel(1, 0, 200) == 0 and log_axis.pixel(100, 0, 200) == pytest.approx(200)
    linear = plot.make_axis([3, 7], log=False)
    assert linear.lo == 0 and linear.hi >= 7
    explicit = plot.make_axis([2, 16], log=True, ticks=[2, 4, 8, 16])
    assert (explicit.lo, explicit.hi, explicit.ticks) == (2, 16, [2, 4, 8, 16])
    assert explicit.pixel(4, 0, 300) == pytest.approx(100)


def test_tick_labels_are_short() -> None:
    assert [plot.tick_label(v) for v in (0, 250, 2500, 19_000, 0.25, 1.5)] == ["0", "250", "2.5k", "19k", "0.25", "1.5"]


def test_labels_and_titles_are_escaped_so_the_svg_stays_well_formed() -> None:
    nasty = 'a<b & "c"'
    svg = plot.chart(
        [plot.Panel([plot.Series(nasty, [(1, 1), (2, 2)], colour='red" onload="x')], y_label=nasty, x_label=nasty)],
        title=f"<title> {nasty}",
    )
    root = ET.fromstring(svg)
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert f"<title> {nasty}" in texts and nasty in texts
    [path] = [p for p in root.iter(f"{SVG}path") if p.get("class") == "series"]
    assert path.findtext(f"{SVG}title") == nasty
    assert path.get("stroke") == 'red" onload="x' and path.get("onload") is None


def test_a_missing_value_breaks_the_line_and_a_log_axis_skips_what_it_cannot_show() -> None:
    points: list[plot.Point] = [(1, 1.0), (2, None), (3, 3.0), (4, 0.0), (5, float("nan")), (6, 6.0)]
    svg = plot.chart([plot.Panel([plot.Series("s", points)], y_label="y", y_log=True)], "t")
    assert "nan" not in svg.lower()
    [path] = [p for p in ET.fromstring(svg).iter(f"{SVG}path") if p.get("class") == "series"]
    d = path.get("d", "")
    assert d.count("M") == 3 and d.count("L") == 0  # 1 | 3 | 6: every neighbour is missing
    assert len([c for c in ET.fromstring(svg).iter(f"{SVG}circle")]) == 3


def test_the_soak_plot_is_drawn_by_plot_py_with_a_warm_up_marker_per_panel() -> None:
    from loadtests import soak

    samples = [{"t": float(t), "rss_mb": 40 + t / 10, "rooms": t % 7} for t in range(0, 62, 2)]
    result = {
        "samples": samples,
        "config": {"warmup": 20, "duration": 60},
        "summary": {"achieved_rate": 20.0},
        "passed": True,
    }
    root = ET.fromstring(soak.svg_plot(result))
    lines = [p.findtext(f"{SVG}title") for p in root.iter(f"{SVG}path") if p.get("class") == "series"]
    assert lines == ["RSS (MB)", "live rooms"]
    markers = [m for m in root.iter(f"{SVG}line") if m.get("class") == "marker"]
    assert len(markers) == 2 and markers[0].get("x1") == markers[1].get("x1")

"""The HTML report in a real browser (headless Chromium): no JavaScript error, the table and every
plot drawn, the table sorts on a click; a screenshot is saved in the test's tmp folder.

The report is made by the installed ``hpogrid report`` command from a campaign store written
through the real Store API. The page is checked through ``--dump-dom``: a copy of the report gets a
probe script (first in <head>, it records errors; last in <body>, it counts drawn plots, clicks
the metric header and writes what it saw into the DOM).
"""

from __future__ import annotations

import csv
import html
import json
import math
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.client.test_report_stores import embedded_campaign, make_project
from tests.conftest import installed

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (tests/setup_system.sh installs "
                                                "Debian's package when run as root)"),
]

_ERRORS = """<script>window.__errors = [];
window.addEventListener("error", function (e) { window.__errors.push(String(e.message || e)); });
window.addEventListener("unhandledrejection", function (e) { window.__errors.push("rejection: " + String(e.reason)); });
</script>"""

_PROBE = """<script>setTimeout(function () {
  var plots = document.querySelectorAll(".js-plotly-plot"), drawn = [];
  plots.forEach(function (p) {
    var svg = p.querySelector("svg.main-svg");
    var marks = p.querySelectorAll("path, .point, text").length;
    if (svg && marks > 20) { drawn.push(p.id); }
  });
  var heads = Array.prototype.map.call(document.querySelectorAll("#results th"), function (th) { return th.textContent; });
  var rows = document.querySelectorAll("#results tbody tr");
  var metricCol = heads.indexOf("accuracy");
  var th = document.querySelectorAll("#results th")[metricCol];
  th.click();  /* ascending: the worst finished point first, empty cells last */
  var firstAsc = document.querySelector("#results tbody tr").cells[metricCol].textContent;
  th.click();  /* descending: the best first */
  var firstDesc = document.querySelector("#results tbody tr").cells[metricCol].textContent;
  var out = document.createElement("pre");
  out.id = "hpogrid-probe";
  out.textContent = JSON.stringify({errors: window.__errors, plots: plots.length, drawn: drawn, heads: heads,
                                    rows: rows.length, first_asc: firstAsc, first_desc: firstDesc,
                                    parcoords: document.querySelectorAll(".parcoords canvas, .gl-canvas").length});
  document.body.appendChild(out);
}, 1500);</script>"""

_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
          "--enable-unsafe-swiftshader"]  # software WebGL for the parallel-coordinates plot (a trusted local file)


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tempfile.mkdtemp(dir=tmp_path, prefix="chromium-profile-")
    argv = [CHROMIUM, *_FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def _probe(tmp_path: Path, report_html: Path) -> dict:
    """Open a probed copy of the report in Chromium; what the page saw (errors, plots, table, sorting)."""
    page = report_html.read_text(encoding="utf-8")
    probed = tmp_path / f"probed-{report_html.name}"
    probed.write_text(page.replace("<head>", "<head>" + _ERRORS, 1).replace("</body>", _PROBE + "</body>", 1),
                      encoding="utf-8")
    dom = _chromium(tmp_path, "--virtual-time-budget=30000", "--dump-dom", probed.as_uri())
    match = re.search(r'<pre id="hpogrid-probe">(.*?)</pre>', dom.stdout, re.S)
    assert match, f"the probe did not run; chromium said: {dom.stderr[-2000:]}"
    seen = json.loads(html.unescape(match.group(1)))
    assert seen["errors"] == [], seen["errors"]
    assert "Uncaught" not in dom.stderr, dom.stderr[-2000:]
    return seen


def _accuracies(page: str) -> list[float]:
    """The metric cells of the report's table (sixth cell of each row, with its sort value)."""
    return [float(v) for v in re.findall(r'<tr class="[^"]*">(?:<td[^>]*>[^<]*</td>){5}<td data-v="([^"]+)"', page)]


PLOTS = ["plot-parallel_coordinates", "plot-best_so_far", "plot-metric_vs_params", "plot-importance"]
CURVES = "plot-learning_curves"  # drawn when points report the metric more than once


def test_html_report_renders_in_chromium(tmp_path: Path, cli_env: dict[str, str]) -> None:
    make_project(tmp_path)
    embedded_campaign(n=14).close()
    out = tmp_path / "out"
    out.mkdir()
    done = subprocess.run([installed("hpogrid"), "report", "demo", "--to_html", "--to_pcp", "-o", "report"],
                          cwd=out, env=cli_env, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr

    seen = _probe(tmp_path, out / "report.html")
    assert seen["plots"] == 5 and sorted(seen["drawn"]) == sorted([*PLOTS, CURVES]), seen
    assert seen["parcoords"] > 0  # the parallel-coordinates lines are drawn on WebGL canvases
    assert seen["rows"] == 14 and seen["heads"][:6] == ["#", "point", "lr", "layers", "optimizer", "accuracy"]
    accuracies = _accuracies((out / "report.html").read_text(encoding="utf-8"))
    assert len(accuracies) == 12
    assert float(seen["first_desc"]) == pytest.approx(max(accuracies), rel=1e-5)
    assert float(seen["first_asc"]) == pytest.approx(min(accuracies), rel=1e-5)

    shot = tmp_path / "report.png"
    _chromium(tmp_path, "--window-size=1300,3600", "--virtual-time-budget=20000", f"--screenshot={shot}",
              (out / "report.html").as_uri())
    assert shot.is_file() and shot.stat().st_size > 50_000, "no screenshot"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    pcp = _chromium(tmp_path, "--virtual-time-budget=20000", "--dump-dom",
                    (out / "report_parallel_coordinate_plot.html").as_uri())
    assert "js-plotly-plot" in pcp.stdout and "Uncaught" not in pcp.stderr


_SCRIPT = """import math


def objective(config):
    if config["optimizer"] == "sgd" and config["layers"] >= 4:
        raise ValueError("diverged: sgd with deep nets")
    acc = 0.92 - 0.06 * (math.log10(config["lr"]) + 2.5) ** 2 - 0.02 * abs(config["layers"] - 3)
    return {"accuracy": acc + (0.03 if config["optimizer"] == "adam" else 0.0)}
"""
_SPACE = ('{"lr": {"method": "loguniform", "dimension": {"low": 1e-4, "high": 1e-1}}, '
          '"layers": {"method": "uniformint", "dimension": {"low": 1, "high": 5}}, '
          '"optimizer": {"method": "categorical", "dimension": {"categories": ["adam", "sgd"]}}}')


def test_report_on_an_embedded_campaign_run_by_submit_idds(tmp_path: Path, cli_env: dict[str, str]) -> None:
    """As a user types it: configs, project, a small embedded campaign, then every report output."""
    (tmp_path / "train.py").write_text(_SCRIPT)
    hpogrid = installed("hpogrid")

    def sh(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([hpogrid, *args], cwd=tmp_path, env=cli_env, capture_output=True, text=True,
                              timeout=timeout, check=False)
        assert done.returncode == 0, f"hpogrid {' '.join(args)}: {done.stderr[-3000:]}"
        return done

    sh("model_config", "create", "m", "--script", "train.py", "--model", "objective")
    sh("search_space", "create", "s", _SPACE)
    sh("hpo_config", "create", "h", "--algorithm", "random", "--metric", "accuracy", "--mode", "max",
       "--num_trials", "12", "--max_concurrent", "2", "--seed", "3")
    sh("grid_config", "create", "g", "--backend", "embedded")
    sh("project", "create", "e2e", "--scripts_path", "train.py", "-m", "m", "-s", "s", "-o", "h", "-g", "g")
    sh("submit_idds", "e2e", "--progress", "none", "--max_attempts", "1", timeout=300)

    shown = sh("report", "e2e", "--to_csv", "--to_json", "--to_html", "-o", "out/e2e", "-e", "host,duration")
    table = shown.stdout
    assert "★ 1" in table and "accuracy ↑" in table and "embedded" in table
    recs = json.loads((tmp_path / "out" / "e2e.json").read_text())
    rows = list(csv.DictReader((tmp_path / "out" / "e2e.csv").open()))
    assert len(recs) == len(rows) == 12 and [r["point"] for r in recs] == [int(r["point"]) for r in rows]
    finished = [r for r in recs if r["status"] == "finished"]
    failed = [r for r in recs if r["status"] == "failed"]
    assert len(finished) + len(failed) == 12 and finished
    assert [r["accuracy"] for r in finished] == sorted((r["accuracy"] for r in finished), reverse=True)
    for r in finished:
        expected = 0.92 - 0.06 * (math.log10(r["lr"]) + 2.5) ** 2 - 0.02 * abs(r["layers"] - 3) + (
            0.03 if r["optimizer"] == "adam" else 0.0)
        assert r["accuracy"] == pytest.approx(expected) and r["loss"] == pytest.approx(-expected)
        assert r["backend"] == "embedded" and r["host"] and r["iterations"] >= 1 and r["duration_s"] >= 0
    for r in failed:
        assert r["optimizer"] == "sgd" and r["layers"] >= 4 and "diverged" in r["message"]
        assert "diverged" in table
    assert f"best accuracy = {finished[0]['accuracy']:.6g} (max)" in table
    assert f"{len(finished)} finished, {len(failed)} failed" in table

    seen = _probe(tmp_path, tmp_path / "out" / "e2e.html")
    expected_plots = PLOTS if len(finished) >= 8 else PLOTS[:3]
    assert sorted(seen["drawn"]) == sorted(expected_plots) and seen["rows"] == 12

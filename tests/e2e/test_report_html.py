"""The HTML report in a real browser (headless Chromium): no JavaScript error, the table and every
plot drawn, the table sorts on a click; a screenshot is saved in the test's tmp folder.

The report is made by the installed ``hpogrid report`` command from a campaign store written
through the real Store API. The page is checked through ``--dump-dom``: a copy of the report gets a
probe script (first in <head>, it records errors; last in <body>, it counts drawn plots, clicks
the metric header and writes what it saw into the DOM).
"""

from __future__ import annotations

import html
import json
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


def test_html_report_renders_in_chromium(tmp_path: Path, cli_env: dict[str, str]) -> None:
    make_project(tmp_path)
    embedded_campaign(n=14).close()
    out = tmp_path / "out"
    out.mkdir()
    done = subprocess.run([installed("hpogrid"), "report", "demo", "--to_html", "--to_pcp", "-o", "report"],
                          cwd=out, env=cli_env, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr
    page = (out / "report.html").read_text(encoding="utf-8")

    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("<head>", "<head>" + _ERRORS, 1).replace("</body>", _PROBE + "</body>", 1),
                      encoding="utf-8")
    dom = _chromium(tmp_path, "--virtual-time-budget=30000", "--dump-dom", probed.as_uri())
    match = re.search(r'<pre id="hpogrid-probe">(.*?)</pre>', dom.stdout, re.S)
    assert match, f"the probe did not run; chromium said: {dom.stderr[-2000:]}"
    seen = json.loads(html.unescape(match.group(1)))
    assert seen["errors"] == []
    assert not re.search(r"Uncaught|CONSOLE\(\d+\)\].*Error", dom.stderr), dom.stderr[-2000:]
    expected = ["plot-parallel_coordinates", "plot-best_so_far", "plot-metric_vs_params", "plot-importance"]
    assert seen["plots"] == 4 and sorted(seen["drawn"]) == sorted(expected), seen
    assert seen["rows"] == 14 and seen["heads"][:6] == ["#", "point", "lr", "layers", "optimizer", "accuracy"]
    accuracies = [float(v) for v in re.findall(r'<tr class="[^"]*">(?:<td[^>]*>[^<]*</td>){5}<td data-v="([^"]+)"',
                                               page)]
    assert float(seen["first_desc"]) == pytest.approx(max(accuracies), rel=1e-5)
    assert float(seen["first_asc"]) == pytest.approx(min(accuracies), rel=1e-5)

    shot = tmp_path / "report.png"
    _chromium(tmp_path, "--window-size=1300,3600", "--virtual-time-budget=20000", f"--screenshot={shot}",
              (out / "report.html").as_uri())
    assert shot.is_file() and shot.stat().st_size > 50_000, "no screenshot"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    pcp_dom = _chromium(tmp_path, "--virtual-time-budget=20000", "--dump-dom",
                        (out / "report_parallel_coordinate_plot.html").as_uri())
    assert 'class="js-plotly-plot"' in pcp_dom.stdout or "js-plotly-plot" in pcp_dom.stdout
    assert "Uncaught" not in pcp_dom.stderr

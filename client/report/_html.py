"""The HTML report (one self-contained file: plotly.js embedded, opens offline) and the
parallel-coordinates plot alone. Plots are plotly figures; the table is plain HTML made sortable by
a few lines of script (plotly's own table cannot be sorted)."""

from __future__ import annotations

import datetime as _dt
import html
import math
from pathlib import Path
from typing import Any

from ._deps import require
from ._files import atomic_write_text
from ._load import NoResultsError, Results, iter_reports, point_params
from ._table import fmt_seconds, fmt_value, summary

__all__ = ["figures", "parallel_coordinates", "best_so_far", "metric_vs_params", "learning_curves", "importance_bars",
           "write_html", "write_pcp", "html_report"]

_LOG_METHODS = ("loguniform", "qloguniform", "lognormal", "qlognormal")
_TEMPLATE = "plotly_white"
MAX_CURVES = 100  # learning curves drawn at most (finished best first, then points stopped early)


def _log_params(results: Results) -> set[str]:
    from ._importance import _log_params as lp

    return {p for p in lp(results) if (results.rated[results.param_columns[p]].dropna() > 0).all()}


def _require_rated(results: Results) -> Any:
    rated = results.rated
    if rated.empty:
        c = results.counts()
        raise NoResultsError(f"no finished point to plot in {results.label()} of {results.project!r} "
                             f"({c['failed']} failed, {c['running']} running, {c['proposed']} waiting)")
    return rated


def _categories(values: list[Any]) -> list[str]:
    return sorted({fmt_value(v) for v in values}, key=lambda s: (len(s), s) if s.lstrip("-").isdigit() else (0, s))


def _colorscale(results: Results) -> dict[str, Any]:
    # Bright (yellow) = better, whatever the mode.
    return {"colorscale": "Viridis", "reversescale": results.mode == "min"}


def parallel_coordinates(results: Results) -> Any:
    """Hyperparameters (categoricals as labelled axes, log-scaled ones in log10) and the metric,
    one line per finished point, coloured by the metric."""
    go = require("plotly.graph_objects")
    rated = _require_rated(results)
    logs = _log_params(results)
    dims = []
    for p in results.params:
        col = list(rated[results.param_columns[p]])
        if p in results.categorical:
            cats = _categories(col)
            index = {c: i for i, c in enumerate(cats)}
            dims.append({"label": p, "values": [index[fmt_value(v)] for v in col], "tickvals": list(range(len(cats))),
                         "ticktext": cats, "range": [-0.25, len(cats) - 0.75] if len(cats) > 1 else [-1, 1]})
        elif p in logs:
            values = [math.log10(float(v)) for v in col]
            lo, hi = math.floor(min(values)), math.ceil(max(values))
            ticks = list(range(lo, hi + 1))
            dims.append({"label": f"{p} (log)", "values": values, "tickvals": ticks,
                         "ticktext": [f"1e{t}" for t in ticks], "range": [min(values), max(values)]})
        else:
            dims.append({"label": p, "values": [float(v) if v is not None else math.nan for v in col]})
    metric = [float(v) for v in rated["metric"]]
    dims.append({"label": f"{results.metric_name} ({results.mode})", "values": metric})
    fig = go.Figure(go.Parcoords(
        line={"color": metric, "showscale": True, "colorbar": {"title": {"text": results.metric_name}},
              **_colorscale(results)},
        dimensions=dims, labelangle=0, labelside="top",
    ))
    fig.update_layout(template=_TEMPLATE, height=480, margin={"l": 70, "r": 40, "t": 70, "b": 30},
                      title={"text": f"{results.project}: hyperparameters coloured by {results.metric_name}",
                             "y": 0.98})
    return fig


def best_so_far(results: Results) -> Any:
    """Every finished point's metric against its evaluation number, and the best so far."""
    go = require("plotly.graph_objects")
    rated = _require_rated(results).sort_values("order", kind="stable")
    xs = list(range(1, len(rated) + 1))
    ys = [float(v) for v in rated["metric"]]
    best, running = [], None
    for y in ys:
        running = y if running is None or results.better(y, running) else running
        best.append(running)
    hover = ["point " + results.point_label(r) + "<br>" + "<br>".join(
        f"{k}={fmt_value(v)}" for k, v in point_params(results, r).items()) for _, r in rated.iterrows()]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", name=results.metric_name, text=hover,
                             hovertemplate="%{text}<br>" + results.metric_name + "=%{y}<extra></extra>",
                             marker={"color": ys, "size": 8, **_colorscale(results)}))
    fig.add_trace(go.Scatter(x=xs, y=best, mode="lines", name="best so far", line={"shape": "hv", "width": 2}))
    fig.update_layout(template=_TEMPLATE, height=400, title={"text": f"best {results.metric_name} so far"},
                      xaxis_title="evaluation number (finished points, by end time)",
                      yaxis_title=f"{results.metric_name} ({results.mode})",
                      legend={"orientation": "h", "y": 1.08, "x": 1, "xanchor": "right"})
    return fig


def metric_vs_params(results: Results) -> Any:
    """The metric against each hyperparameter (categories on a category axis, log params on a log axis)."""
    go = require("plotly.graph_objects")
    subplots = require("plotly.subplots")
    rated = _require_rated(results)
    logs = _log_params(results)
    n = len(results.params)
    cols = min(3, max(n, 1))
    rows = max(1, math.ceil(n / cols))
    fig = subplots.make_subplots(rows=rows, cols=cols, subplot_titles=results.params or ["(no hyperparameters)"],
                                 horizontal_spacing=0.08, vertical_spacing=0.18 if rows > 1 else 0.1)
    ys = [float(v) for v in rated["metric"]]
    labels = ["point " + results.point_label(r) for _, r in rated.iterrows()]
    for i, p in enumerate(results.params):
        r, c = i // cols + 1, i % cols + 1
        raw = list(rated[results.param_columns[p]])
        if p in results.categorical:
            xs = [fmt_value(v) for v in raw]
        else:
            xs = [float(v) if v is not None else None for v in raw]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", text=labels, showlegend=False,
                                 hovertemplate="%{text}<br>" + p + "=%{x}<br>" + results.metric_name
                                 + "=%{y}<extra></extra>",
                                 marker={"color": ys, "size": 8, **_colorscale(results)}), row=r, col=c)
        if p in results.categorical:
            fig.update_xaxes(type="category", categoryorder="array", categoryarray=_categories(raw), row=r, col=c)
        elif p in logs:
            fig.update_xaxes(type="log", row=r, col=c)
        if c == 1:
            fig.update_yaxes(title_text=results.metric_name, row=r, col=c)
    fig.update_layout(template=_TEMPLATE, height=330 * rows + 60,
                      title={"text": f"{results.metric_name} against each hyperparameter"})
    return fig


def curves(results: Results, row: Any) -> tuple[list[int], list[float]]:
    """A point's metric per iteration, from the results it reported (empty when it never reported it)."""
    steps, values = [], []
    for step, _ts, metrics in iter_reports(row["reports"]):
        if results.metric_name in metrics:
            steps.append(step)
            values.append(metrics[results.metric_name])
    return steps, values


def learning_curves(results: Results) -> Any | None:
    """The metric per iteration of each point: finished points as solid lines coloured by their
    final metric, points stopped early by the scheduler as grey dashed lines. ``None`` when no point
    reported the metric more than once (nothing to draw as a curve)."""
    go = require("plotly.graph_objects")
    frame = results.frame
    chosen = frame[(frame["status"] == "finished") | (frame["status"] == "stopped")]
    chosen = chosen.iloc[:MAX_CURVES]
    drawn = [(row, *curves(results, row)) for _, row in chosen.iterrows()]
    drawn = [(row, xs, ys) for row, xs, ys in drawn if xs]
    if not any(len(xs) > 1 for _row, xs, _ys in drawn):
        return None
    finals = [ys[-1] for row, xs, ys in drawn if row["status"] == "finished"]
    lo, hi = (min(finals), max(finals)) if finals else (0.0, 1.0)
    colours = require("plotly.colors")
    scale = colours.get_colorscale("Viridis")
    fig = go.Figure()
    legend_stopped = True
    for row, xs, ys in drawn:
        label = "point " + results.point_label(row)
        hover = label + "<br>" + "<br>".join(f"{k}={fmt_value(v)}" for k, v in point_params(results, row).items())
        if row["status"] == "stopped":
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name="stopped early", legendgroup="stopped",
                                     showlegend=legend_stopped, text=[hover] * len(xs), opacity=0.6,
                                     hovertemplate="%{text}<br>(stopped early)<br>iteration %{x}: %{y}<extra></extra>",
                                     line={"color": "#999999", "dash": "dash", "width": 1}, marker={"size": 4}))
            legend_stopped = False
            continue
        t = 0.5 if hi == lo else (ys[-1] - lo) / (hi - lo)
        if results.mode == "min":
            t = 1 - t  # bright (yellow) = better, as in the other plots
        colour = colours.sample_colorscale(scale, [t])[0]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=label, showlegend=False,
                                 text=[hover] * len(xs), line={"color": colour, "width": 2}, marker={"size": 5},
                                 hovertemplate="%{text}<br>iteration %{x}: %{y}<extra></extra>"))
    n_all = int(((frame["status"] == "finished") | (frame["status"] == "stopped")).sum())
    shown = f" (the first {len(chosen)} of {n_all}, best first)" if n_all > len(chosen) else ""
    fig.update_layout(template=_TEMPLATE, height=420, xaxis_title="iteration",
                      yaxis_title=f"{results.metric_name} ({results.mode})",
                      title={"text": f"{results.metric_name} per iteration{shown}"},
                      legend={"orientation": "h", "y": 1.08, "x": 1, "xanchor": "right"})
    return fig


def importance_bars(importance: dict[str, float], note: str) -> Any:
    go = require("plotly.graph_objects")
    names = list(importance)[::-1]
    fig = go.Figure(go.Bar(x=[importance[k] for k in names], y=names, orientation="h",
                           text=[f"{importance[k]:.2f}" for k in names], textposition="auto"))
    fig.update_layout(template=_TEMPLATE, height=max(280, 140 + 40 * len(names)), yaxis={"automargin": True},
                      xaxis={"range": [0, 1], "title": "importance"},
                      title={"text": f"hyperparameter importance ({note})"})
    return fig


def figures(results: Results, *, importance: Any = "auto", importance_note: str | None = None) -> dict[str, Any]:
    """``{"parallel_coordinates", "best_so_far", "metric_vs_params"[, "learning_curves"][, "importance"]}``
    plotly figures. Only finished points are plotted against each other; points stopped early by
    the scheduler appear in the learning curves alone, dashed."""
    out = {"parallel_coordinates": parallel_coordinates(results), "best_so_far": best_so_far(results),
           "metric_vs_params": metric_vs_params(results)}
    curves_fig = learning_curves(results)
    if curves_fig is not None:
        out["learning_curves"] = curves_fig
    if isinstance(importance, str) and importance == "auto":
        from ._importance import importance as compute

        importance, importance_note = compute(results)
    if importance:
        out["importance"] = importance_bars(importance, importance_note or "fANOVA")
    return out


_SORT_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var asc = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var c = row.cells[col];
        return c.hasAttribute("data-v") ? c.getAttribute("data-v") : c.textContent;
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === "" || y === "") { return x === y ? 0 : (x === "" ? 1 : -1); }
        var nx = Number(x), ny = Number(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
.meta { color: #555; } .summary { background: #f5f7fa; padding: 10px 14px; border-radius: 6px; }
table.results { border-collapse: collapse; font-size: 0.88em; }
table.results th, table.results td { border-bottom: 1px solid #e3e3e3; padding: 4px 8px; text-align: right; }
table.results th { cursor: pointer; background: #fafafa; position: sticky; top: 0; user-select: none; }
table.results th[aria-sort=ascending]::after { content: " \\25B2"; }
table.results th[aria-sort=descending]::after { content: " \\25BC"; }
table.results td { white-space: nowrap; } table.results td.text { text-align: left; }
table.results td.msg { white-space: normal; min-width: 18em; } tr.best td { background: #e8f6e8; font-weight: 600; }
tr.failed td { color: #a33; } tr.stopped td { color: #777; font-style: italic; } .tablewrap { max-height: 520px; overflow: auto; border: 1px solid #ddd; }
.plot { margin-top: 8px; }
"""


def _text(v: Any) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)


def _table_html(results: Results) -> str:
    frame = results.frame
    loss = [] if results.loss_is_metric else ["loss (minimised)"]
    heads = ["#", "point", *results.params, results.metric_name, *loss, "status", "attempts", "site/host",
             "started (UTC)", "duration", "iterations", "message"]
    out = ['<div class="tablewrap"><table class="results sortable" id="results"><thead><tr>']
    out += [f"<th>{html.escape(h)}</th>" for h in heads]
    out.append("</tr></thead><tbody>")
    rank = 0
    from ._load import _iso

    for _, row in frame.iterrows():
        rated = row["status"] == "finished" and not math.isnan(row["metric"])
        rank += rated
        cls = "best" if rated and rank == 1 else (row["status"] if row["status"] in ("failed", "stopped") else "")
        cells: list[tuple[str, str | None, bool | str]] = [(("★ 1" if rank == 1 else str(rank)) if rated else "",
                                                      str(rank) if rated else "", False),
                                                     (results.point_label(row), None, False)]
        for v in point_params(results, row).values():
            numeric = isinstance(v, (int, float)) and not isinstance(v, bool)
            cells.append((fmt_value(v), repr(v) if numeric and not (isinstance(v, float) and math.isnan(v)) else None,
                          not numeric))
        for col in ("metric",) if results.loss_is_metric else ("metric", "loss"):
            v = row[col]
            cells.append((fmt_value(v), "" if math.isnan(v) else repr(float(v)), False))
        where = _text(row["site"]) or _text(row["host"])
        started = _iso(row["started"]) or ""
        dur = row["duration_s"]
        cells += [(row["status"], None, True), (str(row["attempts"]), None, False), (str(where), None, True),
                  (started.replace("+00:00", "").replace("T", " "), None, True),
                  (fmt_seconds(dur), "" if math.isnan(dur) else repr(float(dur)), False),
                  (str(row["iterations"]), None, False), (_text(row["message"]), None, "msg")]
        tds = []
        for text, v, is_text in cells:
            klass = is_text if isinstance(is_text, str) else ("text" if is_text else "")
            attrs = (f' class="{klass}"' if klass else "") + (f' data-v="{html.escape(v)}"' if v is not None else "")
            tds.append(f"<td{attrs}>{html.escape(text)}</td>")
        out.append(f'<tr class="{cls}">' + "".join(tds) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def html_report(results: Results, *, importance: Any = "auto", importance_note: str | None = None) -> str:
    """The whole report as one HTML document (plotly.js inlined once)."""
    figs = figures(results, importance=importance, importance_note=importance_note)
    titles = {"parallel_coordinates": "Parallel coordinates", "best_so_far": "Best so far",
              "metric_vs_params": f"{results.metric_name} against each hyperparameter",
              "learning_curves": "Learning curves",
              "importance": "Hyperparameter importance"}
    parts = []
    first = True
    for name, fig in figs.items():
        div = fig.to_html(full_html=False, include_plotlyjs=first, div_id=f"plot-{name}",
                          config={"responsive": True, "displaylogo": False})
        first = False
        parts.append(f'<section id="{name}"><h2>{html.escape(titles[name])}</h2>'
                     f'<div class="plot">{div}</div></section>')
    if "importance" not in figs:
        from ._importance import importance as compute

        note = importance_note if importance_note else compute(results)[1]
        parts.append(f'<section id="importance"><h2>Hyperparameter importance</h2><p class="meta">'
                     f'{html.escape(note)}</p></section>')
    n_stopped = len(results.stopped)
    if n_stopped:  # said once, above the plots
        where = "dashed in the learning curves" if "learning_curves" in figs else "listed in the table"
        parts.insert(0, f'<p class="meta" id="stopped-note">{n_stopped} point{"s" * (n_stopped != 1)} stopped early '
                        f'by the scheduler {"are" if n_stopped != 1 else "is"} not plotted with the finished ones '
                        f'(fewer iterations); {"they are" if n_stopped != 1 else "it is"} {where}.</p>')
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    title = f"hpogrid report: {results.project}"
    campaigns = "; ".join(f"{c.id} ({c.backend}, {c.status})" for c in results.campaigns)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f"<p class=\"meta\">metric <b>{html.escape(results.metric_name)}</b> ({results.mode}); "
        f"campaigns: {html.escape(campaigns)}; generated {now}</p>"
        f"<p class=\"summary\">{html.escape(summary(results))}</p>"
        f"<section id=\"table\"><h2>Points ({len(results.frame)})</h2>"
        "<p class=\"meta\">Click a column header to sort.</p>"
        f"{_table_html(results)}</section>"
        + "".join(parts)
        + f"<script>{_SORT_SCRIPT}</script></body></html>\n"
    )


def write_html(results: Results, path: str | Path, *, importance: Any = "auto",
               importance_note: str | None = None) -> Path:
    """Write the HTML report atomically; ``NoResultsError`` (and no file) when nothing finished."""
    path = Path(path)
    text = html_report(results, importance=importance, importance_note=importance_note)
    atomic_write_text(path, text)
    return path


def write_pcp(results: Results, path: str | Path) -> Path:
    """The parallel-coordinates plot alone, as a self-contained HTML file."""
    path = Path(path)
    fig = parallel_coordinates(results)
    atomic_write_text(path, fig.to_html(full_html=True, include_plotlyjs=True, div_id="plot-parallel_coordinates",
                                        config={"displaylogo": False}))
    return path

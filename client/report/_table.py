"""The terminal report: a rich table (best first), the failures with their reasons, a summary line."""

from __future__ import annotations

import math
from typing import Any, Sequence

from ..records import PointState
from ._load import Results, point_params

__all__ = ["EXTRA_COLUMNS", "EXTRA_ALIASES", "DEFAULT_ROWS", "render", "summary", "fmt_value", "fmt_seconds"]

# The terminal table shows this many rows (best first) and says how many more there are.
DEFAULT_ROWS = 20

# Columns ``--extra`` can add to the terminal table (files always have all of them).
EXTRA_COLUMNS = ("loss", "attempts", "site", "host", "started", "ended", "duration", "iterations", "campaign",
                 "backend", "message")
# hpogrid 1.x names for the same things.
EXTRA_ALIASES = {"task_time_s": "duration", "time_s": "duration", "taskid": "campaign",
                 "start_timestamp": "started", "start_datetime": "started", "end_datetime": "ended"}


def fmt_value(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        return f"{v:.6g}"
    return str(v)


def fmt_seconds(s: float | None) -> str:
    if s is None or (isinstance(s, float) and math.isnan(s)):
        return ""
    s = float(s)
    if s < 1:
        return f"{s:.2f}s"
    if s < 60:
        return f"{s:.1f}s"
    m, sec = divmod(int(round(s)), 60)
    if m < 60:
        return f"{m}m{sec:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{sec:02d}s"


def _cell(results: Results, row: Any, column: str) -> str:
    from ._load import _iso

    if column == "duration":
        return fmt_seconds(row["duration_s"])
    if column in ("started", "ended"):
        return (_iso(row[column]) or "").replace("+00:00", "Z")
    if column in ("site", "host"):
        v = row[column]
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
    return fmt_value(row[column])


def summary(results: Results) -> str:
    """One line: points done/failed, best metric and parameters, wall time, evaluation time."""
    c = results.counts()
    total = len(results.frame)
    parts = [f"{results.project}, {results.label()}: {total} point{'s' * (total != 1)}",
             f"{c['finished']} finished"]
    if c["stopped"]:
        parts.append(f"{c['stopped']} stopped early by the scheduler")
    parts.append(f"{c['failed']} failed")
    if c["running"]:
        parts.append(f"{c['running']} running")
    if c["proposed"]:
        parts.append(f"{c['proposed']} waiting")
    line = ", ".join(parts)
    best = results.best()
    if best is not None:
        params = ", ".join(f"{k}={fmt_value(v)}" for k, v in point_params(results, best).items())
        line += (f"; best {results.metric_name} = {fmt_value(best['metric'])} ({results.mode}) "
                 f"at point {results.point_label(best)}: {params}")
    else:
        line += "; no finished point"
    wall = results.wall_time()
    if wall is not None:
        line += f"; wall time {fmt_seconds(wall)}"
    line += f"; evaluation time {fmt_seconds(results.evaluation_time())}"
    return line


def render(results: Results, *, extra: Sequence[str] = (), console: Any = None,
           importance: dict[str, float] | None = None, importance_note: str | None = None,
           rows: int | None = DEFAULT_ROWS) -> None:
    """Print the report on ``console`` (a rich Console; stdout by default).

    The table lists finished points (best first, ranked), then points stopped early (not ranked:
    fewer iterations than a full run), then running and waiting ones; ``rows`` caps it (``None`` or
    0: every row) and a line says how many more there are.
    """
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    if console is None:
        console = Console()
        if not console.is_terminal:  # a pipe or a file: whole rows, one per line, nothing folded
            console = Console(width=max(console.width, 400))
    extra = [EXTRA_ALIASES.get(e, e) for e in extra]
    extra = [e for e in dict.fromkeys(extra) if not (e == "loss" and results.loss_is_metric)]
    rated = results.frame[results.frame["status"] != PointState.FAILED]
    hidden = 0
    if rows and len(rated) > rows:
        rated, hidden = rated.iloc[:rows], len(rated) - rows
    arrow = "↓" if results.mode == "min" else "↑"
    if not rated.empty:
        table = Table(title=f"{results.project}: {results.label()} ({results.campaigns[0].backend})"
                      if len(results.campaigns) == 1 else f"{results.project}: {results.label()}",
                      header_style="bold", show_lines=False)
        table.add_column("#", justify="right")
        table.add_column("point", justify="right")
        for p in results.params:
            table.add_column(p, overflow="fold", justify="left" if p in results.categorical else "right")
        table.add_column(f"{results.metric_name} {arrow}", justify="right", style="bold")
        table.add_column("status")
        for e in extra:
            numeric = e in ("loss", "attempts", "duration", "iterations")
            table.add_column("loss (minimised)" if e == "loss" else e, justify="right" if numeric else "left",
                             overflow="fold")
        rank = 0
        for _, row in rated.iterrows():
            finished = row["status"] == PointState.FINISHED and not math.isnan(row["metric"])
            rank += finished
            mark = Text("★ 1", style="bold green") if finished and rank == 1 else Text(str(rank) if finished else "")
            cells = [mark, results.point_label(row)]
            cells += [fmt_value(v) for v in point_params(results, row).values()]
            cells += [fmt_value(row["metric"]), row["status"]]
            cells += [_cell(results, row, e) for e in extra]
            table.add_row(*cells, style="green" if finished and rank == 1 else None)
        console.print(table)
        if hidden:
            console.print(f"… and {hidden} more point{'s' * (hidden != 1)} (--rows 0 shows all)", highlight=False)
    failed = results.failed
    if not failed.empty:
        ft = Table(title=f"failed points ({len(failed)})", header_style="bold red", title_style="red")
        ft.add_column("point", justify="right")
        for p in results.params:
            ft.add_column(p, overflow="fold", justify="left" if p in results.categorical else "right")
        ft.add_column("attempts", justify="right")
        ft.add_column("reason", overflow="fold", style="red")
        for _, row in (failed.iloc[:rows] if rows else failed).iterrows():
            ft.add_row(results.point_label(row), *[fmt_value(v) for v in point_params(results, row).values()],
                       str(row["attempts"]), row["message"] or "(no reason recorded)")
        console.print(ft)
        if rows and len(failed) > rows:
            console.print(f"… and {len(failed) - rows} more failed (--rows 0 shows all)", highlight=False)
    console.print(summary(results), highlight=False, soft_wrap=True)
    if importance:
        shown = ", ".join(f"{k} {v:.2f}" for k, v in importance.items())
        console.print(f"hyperparameter importance ({importance_note or 'fANOVA'}): {shown}", highlight=False,
                      soft_wrap=True)
    elif importance_note:
        console.print(f"hyperparameter importance: {importance_note}", highlight=False, soft_wrap=True)

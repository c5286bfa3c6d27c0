"""Watching a campaign: a live rich display on a terminal, plain lines elsewhere, and the final summary."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Callable, TextIO

from ..records import CampaignState
from ._loop import Progress

__all__ = ["LiveDisplay", "PlainDisplay", "make_display", "format_duration", "summary_lines", "failure_lines"]

REASONS_SHOWN = 5


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "--"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:d}:{s:02d}"


def _params(params: dict[str, Any]) -> str:
    parts = []
    for k, v in params.items():
        parts.append(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={json.dumps(v)}")
    return ", ".join(parts)


def status_line(p: Progress) -> str:
    best = "--"
    if p.best is not None:
        best = f"{p.metric_name}={p.best['metric']:.6g} (point {p.best['id']}: {_params(p.best['params'])})"
    return (f"campaign {p.campaign_id}: {p.done}/{p.total} done ({p.finished} finished, {p.failed} failed), "
            f"{p.running} running, {p.waiting} waiting | best {best} | elapsed {format_duration(p.elapsed)}"
            f" eta {format_duration(p.eta)}" + (f" | last failure: {_short(p.last_failure)}" if p.last_failure else ""))


def _short(text: str, limit: int = 120) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def failure_lines(reasons: dict[str, int], limit: int = REASONS_SHOWN) -> list[str]:
    """The failed points grouped by reason, most frequent first (at most ``limit`` reasons)."""
    if not reasons:
        return []
    ranked = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
    lines = [f"failures by reason ({sum(reasons.values())} failed point{'s' if sum(reasons.values()) != 1 else ''}):"]
    lines += [f"  {n:>4} x {_short(reason, 160)}" for reason, n in ranked[:limit]]
    if len(ranked) > limit:
        rest = sum(n for _, n in ranked[limit:])
        lines.append(f"  {rest:>4} x {len(ranked) - limit} other reason(s) (`hpogrid tasks show -i {{id}} -m` lists each)")
    return lines


def summary_lines(p: Progress) -> list[str]:
    lines = [f"campaign {p.campaign_id} {p.status}: {p.finished} finished, {p.failed} failed of {p.total} points "
             f"in {format_duration(p.elapsed)}" + (f", seed {p.seed}" if p.seed is not None else "")
             + (f" ({p.message})" if p.message and p.status != CampaignState.FINISHED else "")]
    lines += [line.replace("{id}", str(p.campaign_id)) for line in failure_lines(p.failure_reasons)]
    if p.best is None:
        lines.append("best point: none (no point has a result)")
    else:
        lines.append(f"best point: {p.best['id']}  {p.metric_name} = {p.best['metric']:.6g}")
        lines.append(f"  parameters: {json.dumps(p.best['params'])}")
    return lines


class PlainDisplay:
    """A line every ``every`` seconds or every 10% of the budget (for logs, pipes, CI)."""

    def __init__(self, stream: TextIO | None = None, every: float = 10.0):
        self.stream = stream or sys.stderr
        self.every = every
        self._last = 0.0
        self._last_done = -1

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        step = max(1, p.total // 10)
        if now - self._last >= self.every or (p.done // step != self._last_done // step and p.done != self._last_done):
            self._last, self._last_done = now, p.done
            print(status_line(p), file=self.stream, flush=True)

    def close(self) -> None:
        pass


class LiveDisplay:
    """rich: a progress bar with done/failed/running of total, best so far, elapsed and ETA."""

    def __init__(self, console: Any = None):
        from rich.console import Console
        from rich.live import Live

        self.console = console or Console(stderr=True)
        self._live = Live(console=self.console, refresh_per_second=4, transient=False)
        self._last = 0.0
        self._started = False

    def _render(self, p: Progress) -> Any:
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        table = Table.grid(padding=(0, 1))
        table.add_column(justify="right", style="bold")
        table.add_column()
        bar = Table.grid(padding=(0, 1))
        bar.add_row(ProgressBar(total=max(1, p.total), completed=p.done, width=30),
                    f"{p.done}/{p.total}  [green]{p.finished} finished[/]  [red]{p.failed} failed[/]  "
                    f"[cyan]{p.running} running[/]  {p.waiting} waiting")
        table.add_row(f"campaign {p.campaign_id}", bar)
        if p.best is not None:
            table.add_row("best", f"{p.metric_name} = [bold]{p.best['metric']:.6g}[/] (point {p.best['id']}: "
                                  f"{_params(p.best['params'])})")
        else:
            table.add_row("best", "--")
        table.add_row("time", f"elapsed {format_duration(p.elapsed)}  eta {format_duration(p.eta)}  rounds {p.rounds}"
                              + (f"  seed {p.seed}" if p.seed is not None else ""))
        if p.last_failure:
            table.add_row("last failure", Text(_short(p.last_failure), style="red"))
        return table

    def __call__(self, p: Progress) -> None:
        if not self._started:
            self._live.start()
            self._started = True
        now = time.monotonic()
        if now - self._last >= 0.25 or p.status != CampaignState.RUNNING:
            self._last = now
            self._live.update(self._render(p))

    def close(self) -> None:
        if self._started:
            self._live.stop()


def make_display(kind: str | None = None) -> Callable[[Progress], None] | None:
    """``"live"`` on a terminal, ``"plain"`` otherwise (``kind`` forces one; ``"none"`` for quiet)."""
    if kind == "none":
        return None
    if kind is None:
        kind = "live" if sys.stderr.isatty() else "plain"
    return LiveDisplay() if kind == "live" else PlainDisplay()

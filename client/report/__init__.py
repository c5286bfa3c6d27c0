"""Reports: a project's results from any campaign source, as a terminal table, CSV/JSON, an HTML
report with plots, a parallel-coordinates plot, an MLflow experiment, and hyperparameter importances.

    >>> from hpogrid.client import report
    >>> results = report.load("my_project")            # latest campaign; or campaign=3, days=7, ...
    >>> report.render(results)                         # the terminal table and summary
    >>> report.write_csv(results, "hpo_result.csv")
    >>> report.write_html(results, "hpo_result.html")  # self-contained, opens offline
    >>> report.export_mlflow(results, "sqlite:///mlflow.db")
    >>> report.importance(results)                     # {"lr": 0.8, "layers": 0.2}

pandas, plotly, optuna, scikit-learn and mlflow are imported at first use (``hpogrid[report]``).
"""

from __future__ import annotations

from typing import Any

from ._deps import MissingDependencyError
from ._load import FIXED_COLUMNS, NoResultsError, Results, load, load_stores, parse_range, select_campaigns
from ._table import DEFAULT_ROWS, EXTRA_ALIASES, EXTRA_COLUMNS, render, summary

__all__ = [
    "Results", "NoResultsError", "MissingDependencyError", "FIXED_COLUMNS", "EXTRA_COLUMNS", "EXTRA_ALIASES",
    "MIN_POINTS_FOR_IMPORTANCE", "DEFAULT_ROWS", "load", "load_stores", "select_campaigns", "parse_range", "render", "summary",
    "records", "write_csv", "write_json", "write_html", "write_pcp", "figures", "importance",
    "export_mlflow", "default_mlflow_uri",
]

MIN_POINTS_FOR_IMPORTANCE = 8


def records(results: Results) -> list[dict[str, Any]]:
    from ._files import records as _records

    return _records(results)


def write_csv(results: Results, path: Any) -> Any:
    from ._files import write_csv as _write

    return _write(results, path)


def write_json(results: Results, path: Any) -> Any:
    from ._files import write_json as _write

    return _write(results, path)


def write_html(results: Results, path: Any, **kwargs: Any) -> Any:
    from ._html import write_html as _write

    return _write(results, path, **kwargs)


def write_pcp(results: Results, path: Any) -> Any:
    from ._html import write_pcp as _write

    return _write(results, path)


def figures(results: Results, **kwargs: Any) -> Any:
    from ._html import figures as _figures

    return _figures(results, **kwargs)


def importance(results: Results, **kwargs: Any) -> Any:
    from ._importance import importance as _importance

    return _importance(results, **kwargs)


def export_mlflow(results: Results, tracking_uri: str | None = None, **kwargs: Any) -> Any:
    from ._mlflow import export as _export

    return _export(results, tracking_uri, **kwargs)


def default_mlflow_uri() -> str:
    from ._mlflow import default_uri

    return default_uri()

"""CSV and JSON reports: one row per point, the same columns for every source, written atomically."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..home import atomic_write_text
from ._load import Results

__all__ = ["atomic_write_text", "to_csv_text", "to_json_text", "write_csv", "write_json", "records"]


def records(results: Results) -> list[dict[str, Any]]:
    """The rows as plain JSON-ready dicts (missing values are ``None``)."""
    out = []
    raw = {results.param_columns[p]: list(results.frame[results.param_columns[p]]) for p in results.params}
    for i, rec in enumerate(results.table().to_dict(orient="records")):
        for col, values in raw.items():  # lists and objects stay JSON (the CSV has them as JSON text)
            rec[col] = values[i]
        out.append({k: _plain(v) for k, v in rec.items()})
    return out


def _plain(v: Any) -> Any:
    if v is None:
        return None
    if hasattr(v, "item") and not isinstance(v, (str, bytes, list, dict)) and getattr(v, "ndim", 0) == 0:
        v = v.item()  # numpy scalars
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def to_csv_text(results: Results) -> str:
    return results.table().to_csv(index=False)


def to_json_text(results: Results) -> str:
    return json.dumps(records(results), indent=1, allow_nan=False) + "\n"


def write_csv(results: Results, path: str | Path) -> Path:
    path = Path(path)
    atomic_write_text(path, to_csv_text(results))
    return path


def write_json(results: Results, path: str | Path) -> Path:
    path = Path(path)
    atomic_write_text(path, to_json_text(results))
    return path

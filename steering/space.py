"""The search space: hpogrid's neutral JSON format, validated once, mapped to every library.

Format (hpogrid 1.x's, docs/HPOGRID1.md): ``{"<name>": {"method": "<method>", "dimension": {...}}, ...}``.

The meaning of every dimension, stated here and nowhere else:

============  ==========================  =====================================================
method        dimensions                  value
============  ==========================  =====================================================
categorical   categories, [grid_search]   one of ``categories``, with its JSON type kept; with
                                          ``grid_search: 1`` every category is tried (grid)
uniform       low, high                   a float in ``[low, high]``
uniformint    low, high                   an int in ``[low, high]``, both bounds included
quniform      low, high, q                a multiple of ``q`` in ``[low, high]``
loguniform    low, high, [base=10]        a float in ``[low, high]`` whose log is uniform;
                                          ``low``/``high`` bound the value itself (``1e-5``..
                                          ``1e-2``), so ``base`` does not change the law
qloguniform   low, high, q, [base=10]     loguniform rounded to a multiple of ``q`` in bounds
normal        mu, sigma                   a float drawn from N(mu, sigma)
qnormal       mu, sigma, q                normal rounded to a multiple of ``q``
lognormal     mu, sigma, [base=e]         ``base ** N(mu, sigma)``
qlognormal    mu, sigma, q, [base=e]      lognormal rounded to a multiple of ``q``
fixed         value                       always ``value`` (kept from hpogrid 1.x)
============  ==========================  =====================================================

Rules: ``low < high``; ``q > 0``; ``sigma > 0``; ``base > 0`` and ``base != 1``; ``loguniform``
needs ``low > 0``; ``uniformint`` bounds are integers; categories are a non-empty list of distinct
values. A quantised method returns ints when ``q`` (and, for bounded methods, ``low`` and ``high``)
are JSON integers, floats otherwise.

Every dimension maps the unit interval onto its law (``from_unit`` is the inverse CDF), so an
algorithm that works in a unit cube (random, QMC, CMA-ES, Gaussian processes) honours priors,
bounds, integers and ``q`` for free.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, Iterator, Mapping, Sequence

from .errors import SpaceError, shown

__all__ = ["METHODS", "Dimension", "SearchSpace", "point_key"]

Number = int | float

# method -> (required dimensions, optional dimensions with defaults)
METHODS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "categorical": (("categories",), {"grid_search": 0}),
    "uniform": (("low", "high"), {}),
    "uniformint": (("low", "high"), {}),
    "quniform": (("low", "high", "q"), {}),
    "loguniform": (("low", "high"), {"base": 10}),
    "qloguniform": (("low", "high", "q"), {"base": 10}),
    "normal": (("mu", "sigma"), {}),
    "qnormal": (("mu", "sigma", "q"), {}),
    "lognormal": (("mu", "sigma"), {"base": math.e}),
    "qlognormal": (("mu", "sigma", "q"), {"base": math.e}),
    "fixed": (("value",), {}),
}

_STD_NORMAL = NormalDist()
_EPS = 1e-12


def point_key(point: Mapping[str, Any]) -> str:
    """A canonical string for a point, to find duplicates (same values, same JSON types)."""
    return json.dumps(point, sort_keys=True, separators=(",", ":"))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _clean(value: Any) -> Any:
    """Plain Python scalars only (numpy scalars would not serialise to JSON)."""
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        return value.item()
    return value


@dataclass(frozen=True)
class Dimension:
    """One hyperparameter: its name, its method and the method's dimensions (defaults filled)."""

    name: str
    method: str
    args: dict[str, Any] = field(hash=False)

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def parse(cls, name: Any, spec: Any) -> "Dimension":
        if not isinstance(name, str) or not name.strip():
            raise SpaceError(f"a hyperparameter name must be a non-empty string, got {shown(name)}")
        if not isinstance(spec, Mapping):
            raise SpaceError(f"hyperparameter {shown(name)}: expected an object with 'method' and 'dimension', got {shown(spec)}")
        if "type" in spec and "method" not in spec:
            spec = _from_idds_form(name, spec)
        extra = set(spec) - {"method", "dimension"}
        if extra:
            raise SpaceError(f"hyperparameter {shown(name)}: unknown key(s) {sorted(extra)}; expected 'method' and 'dimension'")
        method = spec.get("method")
        if method not in METHODS:
            raise SpaceError(f"hyperparameter {shown(name)}: unknown method {shown(method)}; valid methods: {', '.join(METHODS)}")
        dims = spec.get("dimension")
        if not isinstance(dims, Mapping):
            raise SpaceError(f"hyperparameter {shown(name)}: 'dimension' must be an object, got {shown(dims)}")
        required, optional = METHODS[method]
        unknown = set(dims) - set(required) - set(optional)
        if unknown:
            raise SpaceError(
                f"hyperparameter {shown(name)}: unknown dimension(s) {sorted(unknown)} for method '{method}'; "
                f"valid: {', '.join(required + tuple(optional))}"
            )
        missing = [d for d in required if d not in dims]
        if missing:
            raise SpaceError(f"hyperparameter {shown(name)}: method '{method}' needs dimension(s) {', '.join(missing)}")
        args = {**optional, **dict(dims)}
        dim = cls(name, method, args)
        dim._validate()
        return dim

    def _validate(self) -> None:
        a, name, m = self.args, self.name, self.method
        for key in ("low", "high", "q", "mu", "sigma", "base"):
            if key in a and not _is_number(a[key]):
                raise SpaceError(f"hyperparameter {shown(name)}: '{key}' must be a finite number, got {shown(a[key])}")
        if m == "categorical":
            cats = a["categories"]
            if not isinstance(cats, list) or not cats:
                raise SpaceError(f"hyperparameter {shown(name)}: 'categories' must be a non-empty list, got {shown(cats)}")
            keys = [json.dumps(c, sort_keys=True) for c in cats]
            if len(set(keys)) != len(keys):
                raise SpaceError(f"hyperparameter {shown(name)}: categories must be distinct, got {shown(cats)}")
            if a["grid_search"] not in (0, 1, True, False):
                raise SpaceError(f"hyperparameter {shown(name)}: 'grid_search' must be 0 or 1, got {shown(a['grid_search'])}")
        if "low" in a and not a["low"] < a["high"]:
            raise SpaceError(f"hyperparameter {shown(name)}: low < high must hold, got low={a['low']}, high={a['high']}")
        if "q" in a and not a["q"] > 0:
            raise SpaceError(f"hyperparameter {shown(name)}: q > 0 must hold, got q={a['q']}")
        if "sigma" in a and not a["sigma"] > 0:
            raise SpaceError(f"hyperparameter {shown(name)}: sigma > 0 must hold, got sigma={a['sigma']}")
        if "base" in a and not (a["base"] > 0 and a["base"] != 1):
            raise SpaceError(f"hyperparameter {shown(name)}: base > 0 and base != 1 must hold, got base={a['base']}")
        if m in ("loguniform", "qloguniform") and not a["low"] > 0:
            raise SpaceError(f"hyperparameter {shown(name)}: {m} needs low > 0, got low={a['low']}")
        if m == "uniformint":
            for key in ("low", "high"):
                if not float(a[key]).is_integer():
                    raise SpaceError(f"hyperparameter {shown(name)}: uniformint '{key}' must be an integer, got {a[key]}")
        if m in ("quniform", "qloguniform") and self._q_range()[0] > self._q_range()[1]:
            raise SpaceError(
                f"hyperparameter {shown(name)}: no multiple of q={a['q']} lies in [low, high] = [{a['low']}, {a['high']}]"
            )

    # ---- properties ---------------------------------------------------------------------
    @property
    def is_categorical(self) -> bool:
        return self.method in ("categorical", "fixed")

    @property
    def is_grid(self) -> bool:
        return self.method == "categorical" and bool(self.args["grid_search"])

    @property
    def categories(self) -> list[Any]:
        """The choices of a categorical (or the one value of a fixed) dimension."""
        if self.method == "fixed":
            return [self.args["value"]]
        if self.method == "categorical":
            return list(self.args["categories"])
        raise SpaceError(f"hyperparameter {shown(self.name)} ({self.method}) has no categories")

    @property
    def is_int(self) -> bool:
        """Values are ints (uniformint, or a quantised method with integer q and bounds)."""
        a = self.args
        if self.method == "uniformint":
            return True
        if self.method in ("quniform", "qloguniform"):
            return all(isinstance(a[k], int) for k in ("q", "low", "high"))
        if self.method in ("qnormal", "qlognormal"):
            return isinstance(a["q"], int)
        return False

    @property
    def is_log(self) -> bool:
        return self.method in ("loguniform", "qloguniform", "lognormal", "qlognormal")

    @property
    def bounded(self) -> bool:
        return "low" in self.args

    @property
    def q(self) -> Number | None:
        return self.args.get("q")

    @property
    def bounds(self) -> tuple[Number, Number]:
        """Bounds of the value: ``[low, high]`` (quantised: the extreme multiples of q)."""
        if self.method in ("quniform", "qloguniform"):
            return self._q_range()
        if self.bounded:
            return self.args["low"], self.args["high"]
        raise SpaceError(f"hyperparameter {shown(self.name)} ({self.method}) is unbounded")

    def _q_range(self) -> tuple[Number, Number]:
        a = self.args
        q = a["q"]
        lo = math.ceil(a["low"] / q - 1e-9) * q
        hi = math.floor(a["high"] / q + 1e-9) * q
        return self._fmt(lo), self._fmt(hi)

    # ---- mapping --------------------------------------------------------------------------
    def _fmt(self, value: float) -> Number:
        """Round away float noise (3 * 0.1) and give ints where the dimension is integer."""
        if self.is_int:
            return int(round(value))
        return float(f"{value:.12g}")

    def _quantise(self, value: float) -> Number:
        q = self.args["q"]
        value = round(value / q) * q
        if self.bounded:
            lo, hi = self._q_range()
            value = min(max(value, lo), hi)
        return self._fmt(value)

    def from_unit(self, u: float) -> Any:
        """Map ``u`` in [0, 1] to a value (the inverse CDF of the dimension's law)."""
        u = min(max(float(u), 0.0), 1.0)
        a, m = self.args, self.method
        if self.is_categorical:
            cats = self.categories
            return cats[min(int(u * len(cats)), len(cats) - 1)]
        if m == "uniformint":
            lo, hi = int(a["low"]), int(a["high"])
            return min(lo + int(u * (hi - lo + 1)), hi)
        if m in ("uniform", "quniform"):
            value = a["low"] + u * (a["high"] - a["low"])
        elif m in ("loguniform", "qloguniform"):
            lo, hi = math.log(a["low"]), math.log(a["high"])
            value = math.exp(lo + u * (hi - lo))
        else:  # normal family
            z = _STD_NORMAL.inv_cdf(min(max(u, _EPS), 1 - _EPS))
            value = a["mu"] + a["sigma"] * z
            if m in ("lognormal", "qlognormal"):
                value = a["base"] ** value
        if "q" in a:
            return self._quantise(value)
        if self.bounded:
            value = min(max(value, a["low"]), a["high"])
        return self._fmt(value)

    def to_unit(self, value: Any) -> float:
        """Map a valid value to [0, 1] (the CDF); the inverse of ``from_unit`` up to quantisation."""
        a, m = self.args, self.method
        if self.is_categorical:
            cats = self.categories
            return (self._index(value) + 0.5) / len(cats)
        value = float(value)
        if m == "uniformint":
            lo, hi = int(a["low"]), int(a["high"])
            return min(max((value - lo + 0.5) / (hi - lo + 1), 0.0), 1.0)
        if m in ("uniform", "quniform"):
            u = (value - a["low"]) / (a["high"] - a["low"])
        elif m in ("loguniform", "qloguniform"):
            lo, hi = math.log(a["low"]), math.log(a["high"])
            u = (math.log(max(value, a["low"])) - lo) / (hi - lo)
        else:
            if m in ("lognormal", "qlognormal"):
                value = math.log(max(value, 1e-300)) / math.log(a["base"])
            u = _STD_NORMAL.cdf((value - a["mu"]) / a["sigma"])
        return min(max(u, 0.0), 1.0)

    def index(self, value: Any) -> int:
        """Position of a valid category; JSON types kept apart, so ``True`` is not ``1``
        (``list.index`` would confuse them)."""
        return self._index(value, strict=True)

    def _index(self, value: Any, strict: bool = False) -> int:
        """Position of ``value`` among the categories, JSON types kept apart (1, 1.0, true)."""
        cats = self.categories
        key = json.dumps(_clean(value), sort_keys=True)
        for i, c in enumerate(cats):
            if json.dumps(c, sort_keys=True) == key:
                return i
        if not strict and _is_number(_clean(value)):
            # a library may hand back 32.0 for the category 32: accept a unique numeric match
            hits = [i for i, c in enumerate(cats) if _is_number(c) and c == _clean(value)]
            if len(hits) == 1:
                return hits[0]
        raise SpaceError(f"hyperparameter {shown(self.name)}: {shown(value)} is not one of {shown(cats)}")

    def canonical(self, value: Any) -> Any:
        """Coerce a library's raw output to a valid value of this dimension.

        Categories come back as the original objects (so types survive a round trip through a
        library that stringifies or indexes them); numbers are clipped, quantised and cast.
        """
        value = _clean(value)
        if self.is_categorical:
            return self.categories[self._index(value)]
        if not _is_number(value):
            raise SpaceError(f"hyperparameter {shown(self.name)}: expected a number, got {shown(value)}")
        a = self.args
        if "q" in a:
            return self._quantise(value)
        if self.method == "uniformint":
            return int(min(max(round(value), a["low"]), a["high"]))
        if self.bounded:
            value = min(max(value, a["low"]), a["high"])
        return self._fmt(value)

    def contains(self, value: Any) -> bool:
        """Is ``value`` a value this dimension can produce (type included)?"""
        if self.is_categorical:
            try:
                self._index(value, strict=True)
                return True
            except SpaceError:
                return False
        if not _is_number(value):
            return False
        if self.is_int and not isinstance(value, int):
            return False
        if self.bounded:
            lo, hi = self.bounds
            if not lo - 1e-9 * max(1.0, abs(lo)) <= value <= hi + 1e-9 * max(1.0, abs(hi)):
                return False
        if "q" in self.args:
            k = value / self.args["q"]
            return abs(k - round(k)) < 1e-6
        return True

    def sample(self, rng: Any) -> Any:
        """A random value from the dimension's law; ``rng`` is a ``numpy.random.Generator``."""
        return self.from_unit(float(rng.random()))

    def cardinality(self) -> int | None:
        """Number of distinct values, or None when there are infinitely many."""
        if self.is_categorical:
            return len(self.categories)
        if self.method == "uniformint":
            return int(self.args["high"]) - int(self.args["low"]) + 1
        if self.method in ("quniform", "qloguniform"):
            lo, hi = self._q_range()
            return int(round((hi - lo) / self.args["q"])) + 1
        return None

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "dimension": dict(self.args)}


def _from_idds_form(name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """Accept iDDS's own example form: {"type": "Choice", "params": {"choices": [...]}} and
    {"type": "Scalar", "bounds": [low, high]}."""
    kind = spec.get("type")
    if kind == "Choice":
        choices = (spec.get("params") or {}).get("choices")
        return {"method": "categorical", "dimension": {"categories": choices}}
    if kind == "Scalar":
        bounds = spec.get("bounds")
        if not (isinstance(bounds, list) and len(bounds) == 2):
            raise SpaceError(f"hyperparameter {shown(name)}: Scalar needs 'bounds': [low, high], got {shown(bounds)}")
        return {"method": "uniform", "dimension": {"low": bounds[0], "high": bounds[1]}}
    raise SpaceError(f"hyperparameter {shown(name)}: unknown type {shown(kind)}; expected 'Choice' or 'Scalar'")


class SearchSpace:
    """An ordered set of dimensions (the JSON key order), validated at construction."""

    def __init__(self, dims: Sequence[Dimension]):
        if not dims:
            raise SpaceError("the search space is empty: it needs at least one hyperparameter")
        self.dims: tuple[Dimension, ...] = tuple(dims)
        self._by_name = {d.name: d for d in self.dims}

    @classmethod
    def parse(cls, spec: Any) -> "SearchSpace":
        """Validate a search space given as a dict or a JSON string."""
        if isinstance(spec, (str, bytes)):
            try:
                spec = json.loads(spec)
            except json.JSONDecodeError as exc:
                raise SpaceError(f"the search space is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
        if isinstance(spec, SearchSpace):
            return spec
        if not isinstance(spec, Mapping):
            raise SpaceError(f"the search space must be a JSON object of hyperparameters, got {type(spec).__name__}")
        return cls([Dimension.parse(name, s) for name, s in spec.items()])

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.dims]

    def __getitem__(self, name: str) -> Dimension:
        return self._by_name[name]

    def __iter__(self) -> Iterator[Dimension]:
        return iter(self.dims)

    def __len__(self) -> int:
        return len(self.dims)

    def to_json(self) -> dict[str, Any]:
        return {d.name: d.to_json() for d in self.dims}

    # ---- points --------------------------------------------------------------------------
    def canonical(self, point: Mapping[str, Any]) -> dict[str, Any]:
        """A valid point from raw library output: every name present, values coerced."""
        if not isinstance(point, Mapping):
            raise SpaceError(f"a point must be an object of hyperparameter values, got {shown(point)}")
        missing = [n for n in self.names if n not in point]
        if missing:
            raise SpaceError(f"point {shown(dict(point))} lacks hyperparameter(s) {', '.join(missing)}")
        return {d.name: d.canonical(point[d.name]) for d in self.dims}

    def contains(self, point: Mapping[str, Any]) -> bool:
        return (
            isinstance(point, Mapping)
            and set(point) == set(self.names)
            and all(d.contains(point[d.name]) for d in self.dims)
        )

    def sample(self, rng: Any) -> dict[str, Any]:
        return {d.name: d.sample(rng) for d in self.dims}

    def from_unit(self, u: Sequence[float]) -> dict[str, Any]:
        return {d.name: d.from_unit(x) for d, x in zip(self.dims, u)}

    def to_unit(self, point: Mapping[str, Any]) -> list[float]:
        return [d.to_unit(point[d.name]) for d in self.dims]

    # ---- grids ---------------------------------------------------------------------------
    @property
    def grid_dims(self) -> list[Dimension]:
        return [d for d in self.dims if d.is_grid]

    def grid_combinations(self) -> list[dict[str, Any]]:
        """The Cartesian product of the ``grid_search`` categories, in a stable order
        (dimension order, then category order)."""
        gd = self.grid_dims
        return [dict(zip((d.name for d in gd), combo)) for combo in itertools.product(*(d.categories for d in gd))]

    def cardinality(self) -> int | None:
        """Number of distinct points, or None when infinite."""
        total = 1
        for d in self.dims:
            c = d.cardinality()
            if c is None:
                return None
            total *= c
        return total

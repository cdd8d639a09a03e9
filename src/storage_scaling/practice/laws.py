"""Which law a plan uses, and the range it holds on: a saved law file, a committed fit of the
book, or the paper's published constants (borrowed).

A law only holds on the range it was fitted on: a law fitted on 32 px images (L of a few hundred
bytes) says nothing about full-size photos (tens of kB). So every law carries its fitted ranges
of n, L and storage n L, and, when it came from runs, the runs themselves (a few dozen rows), so
that :func:`intervals` can bootstrap the prediction at any budget.

``--law`` accepts

* a path to a law file (JSON, written by ``storage-scaling fit --save-law`` or
  ``storage-scaling pilot``);
* ``book:DATASET/MODEL``: one of the book's committed fits (``results/law_grid_bootstrap.csv``,
  its point estimates; the runs and ranges from ``results/training_grid_<model>.csv``);
* ``paper:food101`` (or ``paper:cityscapes``, ``paper:isaid``): the published constants, marked
  as borrowed; their ranges are the authors' grids, and they have no runs, so no interval.

Only numpy, pandas and the law module are imported here (``storage-scaling fit`` uses it).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import atomic, law, paths, provenance
from .units import format_size

FORMAT = "storage-scaling-law/1"
DEFAULT_LAW = "paper:food101"
BOOK_FIT_TABLE = "law_grid_bootstrap"


@dataclass(frozen=True)
class SavedLaw:
    """A law with the ranges it was fitted on, where it came from, and (if any) its runs."""

    label: str
    params: law.LawParams
    with_floor: bool
    n_range: tuple[float, float]
    L_range: tuple[float, float]
    storage_range: tuple[float, float]
    source: str
    borrowed: bool = False
    method: str = "robust"
    metric: str = "error"
    runs: pd.DataFrame | None = None  # columns n, L, error
    provenance: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"format": FORMAT, "label": self.label, "params": self.params.as_dict(),
                "with_floor": self.with_floor, "method": self.method, "metric": self.metric,
                "fitted_range": {"n": list(self.n_range), "L_bytes": list(self.L_range),
                                 "storage_bytes": list(self.storage_range)},
                "source": self.source, "borrowed": self.borrowed,
                "runs": None if self.runs is None else self.runs[["n", "L", "error"]].to_numpy(float).tolist(),
                "provenance": self.provenance}

    def save(self, path) -> Path:
        path = Path(path)
        atomic.write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    def range_text(self) -> str:
        lo_n, hi_n = self.n_range
        lo_L, hi_L = self.L_range
        return (f"n {lo_n:,.0f}-{hi_n:,.0f} images, L {lo_L:,.0f}-{hi_L:,.0f} bytes per image, "
                f"storage {format_size(self.storage_range[0])}-{format_size(self.storage_range[1])}")

    def describe(self) -> str:
        return f"{self.label}, fitted on {self.range_text()}"

    def outside(self, n: float, L: float) -> list[str]:
        """Which of n and L lie outside the fitted ranges (a small tolerance for rounding)."""
        out = []
        for name, value, (lo, hi) in (("n", n, self.n_range), ("L", L, self.L_range)):
            if not lo * 0.999 <= value <= hi * 1.001:
                out.append(name)
        return out


def ranges_of(runs: pd.DataFrame) -> tuple[tuple, tuple, tuple]:
    n = runs["n"].to_numpy(float)
    L = runs["L"].to_numpy(float)
    return (float(n.min()), float(n.max())), (float(L.min()), float(L.max())), \
        (float((n * L).min()), float((n * L).max()))


def from_fit(fit: law.LawFit, data: law.LawData, *, label: str, source: str) -> SavedLaw:
    """A law file's content for a fit of ``data`` (what ``fit --save-law`` and ``pilot`` write)."""
    runs = pd.DataFrame({"n": data.n, "L": data.L, "error": data.err})
    n_range, L_range, s_range = ranges_of(runs)
    return SavedLaw(label, fit.params, fit.with_floor, n_range, L_range, s_range, source, method=fit.method,
                    metric=data.metric, runs=runs, provenance=provenance.stamp())


def read_law_file(path) -> SavedLaw:
    """A law file written by :meth:`SavedLaw.save`; anything else is one ValueError."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"--law {path} cannot be read as a law file ({exc}); write one with "
                         "`storage-scaling fit RUNS.csv --save-law LAW.json` or `storage-scaling pilot`") from exc
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ValueError(f"--law {path} is not a law file of format {FORMAT!r}; write one with "
                         "`storage-scaling fit RUNS.csv --save-law LAW.json` or `storage-scaling pilot`")
    try:
        params = law.LawParams(**{k: float(v) for k, v in raw["params"].items()})
        rng = raw["fitted_range"]
        runs = raw.get("runs")
        runs = None if not runs else pd.DataFrame(runs, columns=["n", "L", "error"])
        return SavedLaw(str(raw["label"]), params, bool(raw["with_floor"]), tuple(map(float, rng["n"])),
                        tuple(map(float, rng["L_bytes"])), tuple(map(float, rng["storage_bytes"])),
                        str(raw.get("source", path)), bool(raw.get("borrowed", False)),
                        str(raw.get("method", "robust")), str(raw.get("metric", "error")), runs,
                        dict(raw.get("provenance") or {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"--law {path} is damaged ({type(exc).__name__}: {exc}); write it again") from exc


def paper(key: str = "food101") -> SavedLaw:
    """The published constants of ``key``: borrowed, with the authors' grids as fitted range."""
    if key not in law.PAPER_N_GRIDS or key not in law.PAPER_SIZE_TABLES:
        raise ValueError(f"--law paper:{key}: no published law with a known fitted range; choose one of "
                         f"{['paper:' + k for k in sorted(law.PAPER_N_GRIDS)]}")
    f = law.PAPER_FITS[key]
    ns, Ls = law.PAPER_N_GRIDS[key], list(law.PAPER_SIZE_TABLES[key].values())
    n_range, L_range = (float(min(ns)), float(max(ns))), (float(min(Ls)), float(max(Ls)))
    return SavedLaw(f"the paper's {f['task']} law (BORROWED: fitted by Mentzer & Montanari on their data, "
                    "not on yours)", law.paper_law(key), f["E"] > 0, n_range, L_range,
                    (n_range[0] * L_range[0], n_range[1] * L_range[1]), law.PAPER_SOURCE, borrowed=True,
                    method="paper", metric=f["metric"], provenance={"constants": f["provenance"]})


def book_fits(results_dir: Path | None = None) -> list[str]:
    """The committed fits of the book, as ``book:DATASET/MODEL`` names."""
    path = (results_dir or paths.results_dir()) / f"{BOOK_FIT_TABLE}.csv"
    if not path.is_file():
        return []
    frame = pd.read_csv(path)
    return sorted({f"book:{d}/{m}" for d, m in zip(frame["dataset"], frame["model"])})


def book(name: str, results_dir: Path | None = None) -> SavedLaw:
    """A committed fit of the book (``DATASET/MODEL``): its point estimates, the runs of its grid."""
    from .. import experiments, law_report

    folder = results_dir or paths.results_dir()
    known = book_fits(folder)
    if f"book:{name}" not in known:
        raise ValueError(f"--law book:{name}: no committed fit of that dataset and model in "
                         f"{folder / (BOOK_FIT_TABLE + '.csv')}; choose one of {known or 'none (none committed yet)'}")
    dataset, model = name.split("/", 1)
    table = pd.read_csv(folder / f"{BOOK_FIT_TABLE}.csv")
    meta = json.loads((folder / f"{BOOK_FIT_TABLE}.json").read_text())
    rows = table[(table["dataset"] == dataset) & (table["model"] == model) & (table["kind"] == "interval")]
    if "fit" in rows.columns:  # the table bootstraps several fits: the book's law is the robust one with a floor
        rows = rows[rows["fit"] == law_report.fit_label("robust", True)]
    point = rows.set_index("quantity")["point"]
    params = law.LawParams(**{k: float(point[k]) if k in point else 0.0 for k in law.PARAMETERS})
    groups = law_report.read_grid(experiments.result_path("grid", "*", folder),
                                  experiments.setting_progress("grid", folder))
    if groups is None or (dataset, model) not in groups.frames:
        raise ValueError(f"--law book:{name}: the runs of that fit ({experiments.result_path('grid', model, folder)}) "
                         "are missing")
    part = groups.frames[(dataset, model)]
    runs = pd.DataFrame({"n": part["n"].astype(float), "L": part["L"].astype(float),
                         "error": part["error"].astype(float)}).reset_index(drop=True)
    n_range, L_range, s_range = ranges_of(runs)
    recorded = meta.get("params", {}).get("grid_sha1")
    note = {} if recorded == groups.digest else {
        "warning": f"the committed fit was made on grid {recorded}, the grid now committed is {groups.digest}"}
    return SavedLaw(f"the book's committed fit for {dataset}, model {model}", params, True, n_range, L_range, s_range,
                    f"results/{BOOK_FIT_TABLE}.csv ({dataset}, {model}, robust fit with floor; code "
                    f"{meta.get('code_version')})", method="robust", runs=runs,
                    provenance={k: meta.get(k) for k in ("code_version", "device", "finished_at")} | note)


def unusable_reason(saved: SavedLaw) -> str:
    """Why a law cannot split a budget between n and L (a parameter on its bound), or ''."""
    zero = [k for k in ("A", "alpha", "B", "beta") if getattr(saved.params, k) <= 0]
    if not zero:
        return ""
    return (f"the law has {', '.join(zero)} = 0, so it has no storage-optimal split (its runs show no effect of "
            f"{'L' if set(zero) & {'B', 'beta'} else 'n'} on the error)")


def load(spec: str | None) -> SavedLaw:
    """The law named by ``--law`` (see the module docstring); None means :data:`DEFAULT_LAW`.
    A law that cannot split a budget (a parameter on its bound) is refused here."""
    spec = DEFAULT_LAW if spec in (None, "") else str(spec)
    if spec.startswith("paper:"):
        saved = paper(spec[len("paper:"):])
    elif spec.startswith("book:"):
        saved = book(spec[len("book:"):])
    else:
        path = Path(spec).expanduser()
        if not path.is_file():
            raise ValueError(f"--law {spec}: no such law file; give a file from `storage-scaling fit --save-law` or "
                             f"`storage-scaling pilot`, one of the book's fits {book_fits() or '(none committed)'}, "
                             "or paper:food101 (the paper's constants, borrowed)")
        saved = read_law_file(path)
    problem = unusable_reason(saved)
    if problem:
        raise ValueError(f"--law {spec}: {problem}; refit it on more runs (more n, more distances, more seeds)")
    return saved


# ---------------------------------------------------------------------------------------------
# Predictions with intervals


def clip_error(value: float) -> float:
    """An error rate as a prediction can mean it: at most 1 (a law far outside its fitted range
    gives more; see :attr:`Prediction.above_one`)."""
    return min(float(value), 1.0) if math.isfinite(value) else float(value)


def _clip_interval(interval):
    return None if interval is None else tuple(clip_error(v) for v in interval)


@dataclass(frozen=True)
class Prediction:
    """The storage-optimal allocation at one budget and the error at other (n, L) points, each
    with a bootstrap interval when the law has runs (``None`` otherwise).

    Errors and their intervals are clipped at 1; ``error_law`` and each point's ``error_law``
    keep what the law gave, and :attr:`above_one` lists those above 1 (the law used outside its
    range: such a prediction says only that the plan lies beyond what the law knows)."""

    budget: float
    n: float
    L: float
    error: float
    pool_capped: bool
    n_interval: tuple[float, float] | None
    L_interval: tuple[float, float] | None
    error_interval: tuple[float, float] | None
    points: list[dict]  # {"n", "L", "error", "interval", "error_law"} for each extra point
    resamples: int = 0
    error_law: float = math.nan  # the law's value before clipping

    @property
    def above_one(self) -> list[float]:
        """The law's predicted errors above 1 (the optimum's, then each point's)."""
        values = [self.error_law] + [p.get("error_law", p["error"]) for p in self.points]
        return [float(v) for v in values if v == v and v > 1]


def predict(saved: SavedLaw, budget: float, *, n_max: float | None = None, points=(), n_boot: int = 200,
            seed: int = 0, level: float = 0.95) -> Prediction:
    """n*, L* and the error at ``budget`` (n capped at ``n_max``, the images there are), and the
    error at each extra ``(n, L)`` point, with percentile intervals from ``n_boot`` resamples of
    the law's runs (refits of the same form and method)."""
    budget = float(budget)
    alloc = saved.params.allocation([budget], n_max=n_max).iloc[0]
    extra = []
    for n, L in points:
        raw = float(saved.params.error(n, L))
        extra.append({"n": float(n), "L": float(L), "error": clip_error(raw), "interval": None, "error_law": raw})
    raw_opt = float(alloc["error_star"])
    if saved.runs is None or n_boot <= 0:
        return Prediction(budget, float(alloc["n_star"]), float(alloc["L_star"]), clip_error(raw_opt),
                          bool(alloc["pool_capped"]), None, None, None, extra, error_law=raw_opt)
    boot = law.bootstrap(saved.runs, method=saved.method, with_floor=saved.with_floor, n_boot=n_boot,
                         budgets=[budget], seed=seed, level=level, n_max=n_max)
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
    samples = boot.samples
    column = {q: next(c for c in samples.columns if c.startswith(q + "@")) for q in ("n_star", "L_star", "error_star")}

    def ci(values) -> tuple[float, float]:
        values = np.asarray(values, dtype=float)
        values = values[np.isfinite(values)]
        return (float(np.quantile(values, lo_q)), float(np.quantile(values, hi_q))) if values.size else (math.nan,) * 2

    for p in extra:
        err = (samples["E"] + samples["A"] * p["n"] ** (-samples["alpha"]) + samples["B"] * p["L"] ** (-samples["beta"]))
        p["interval"] = _clip_interval(ci(err))
    return Prediction(budget, float(alloc["n_star"]), float(alloc["L_star"]), clip_error(raw_opt),
                      bool(alloc["pool_capped"]), ci(samples[column["n_star"]]),
                      ci(samples[column["L_star"]]), _clip_interval(ci(samples[column["error_star"]])), extra,
                      resamples=len(samples), error_law=raw_opt)

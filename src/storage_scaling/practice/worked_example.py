"""The appendix's worked example: plan and compress the 300 full-size Food-101 originals.

The 300 originals of ``../shared/data/food101-originals`` are a sample of the images the paper
trained on, so we treat them as a practitioner would treat a sample of their own dataset: a
folder of JPEGs standing for a dataset of ``pool_size`` images (Food-101's 60,600-image training
pool). :func:`example_table` (the ``full`` table ``results/plan_food101_originals.csv``) measures
every sampled image at the plan's grid of distances, plans at the budget with the paper's
Food-101 law (borrowed, and here in its own range), and then compresses the images at the
planned distance with ``compress``, keeping the real bytes. :func:`example_report` turns the table
into the plan (the same :func:`plan.make_plan` the command runs) and the numbers the appendix
glues (``plan_...``). The notebook ``08_plan_your_dataset`` only calls these, plots and glues.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import data, law
from ..compress import codecs
from . import cluster, compress_folder, images as images_mod, laws, plan

DATASET = "food101-originals"
TABLE = "plan_food101_originals"


def example_params(images: int, *, budget: float = law.PAPER_BUDGETS["food101"][0],
                   pool_size: int = law.PAPER_POOL_SIZE["food101"], distances=plan.DEFAULT_GRID,
                   law_name: str = "paper:food101", seed: int = 0) -> dict:
    """The recorded parameters of the table (``images``: how many originals are measured)."""
    return {"dataset": DATASET, "images": int(images), "budget": float(budget), "pool_size": int(pool_size),
            "distances": [float(d) for d in distances], "law": law_name, "seed": int(seed),
            "effort": codecs.DEFAULT_EFFORT, "bootstrap": 0}


def _settings(params: dict) -> plan.PlanSettings:
    return plan.PlanSettings(law=params["law"], sample=params["images"], distances=tuple(params["distances"]),
                             pool_size=params["pool_size"], bootstrap=params["bootstrap"], seed=params["seed"],
                             effort=params["effort"])


def _write_sample(folder: Path, params: dict) -> int:
    """The first ``images`` originals of a seeded sample, written as the JPEG files they are
    (``<class>/<file>``): what a practitioner's folder looks like."""
    pack = data.load(DATASET, data.pool_split(DATASET))
    pick = plan.sample_indices(len(pack), params["images"], params["seed"])
    for i in pick:
        target = folder / str(pack.ids[i])
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(pack.encoded[i])
    return len(pick)


def example_table(params: dict, *, workers: int | None = None, progress: bool = False) -> pd.DataFrame:
    """``tables.profile_table`` compute function: per sampled image its stored bytes, its JPEG XL
    bytes at every distance of the grid, and the real bytes of ``compress`` at the planned
    distance (long format: id, scheme, distance, bytes)."""
    settings = _settings(params)
    with tempfile.TemporaryDirectory(prefix="plan-example-") as tmp, \
            cluster.open_pool(processes=workers) as pool:
        folder = Path(tmp) / "images"
        _write_sample(folder, params)
        found = images_mod.open_images(folder)
        sample = plan.measure(found, pool, sample=len(found), grid=settings.distances, effort=settings.effort,
                              seed=settings.seed, progress=progress)
        result = plan.make_plan(sample, laws.load(settings.law), params["budget"], pool_size=settings.pool_size,
                                n_boot=0, seed=settings.seed)
        summary = compress_folder.run(folder, Path(tmp) / "out", compress_folder.Options(distance=result.distance),
                                      pool=pool, progress=progress)
        manifest = pd.read_csv(Path(tmp) / "out" / compress_folder.MANIFEST)
    rows = []
    for k, image_id in enumerate(sample.ids):
        rows.append({"id": image_id, "scheme": "stored", "distance": 0.0, "bytes": int(sample.original[k])})
        rows += [{"id": image_id, "scheme": "jxl", "distance": float(d), "bytes": int(b)}
                 for d, b in zip(sample.grid, sample.sizes[k])]
    ok = manifest[manifest["status"] == "ok"]
    rows += [{"id": r["id"], "scheme": "compressed", "distance": float(r["distance"]), "bytes": int(r["bytes"])}
             for _, r in ok.iterrows()]
    if summary.ok != len(sample.ids):
        raise RuntimeError(f"compress wrote {summary.ok} of the {len(sample.ids)} measured images")
    return pd.DataFrame(rows)


def sample_from_table(frame: pd.DataFrame, params: dict) -> plan.SizeSample:
    """The :class:`plan.SizeSample` the table holds (the measurement, without re-encoding)."""
    jxl = frame[frame["scheme"] == "jxl"].pivot(index="id", columns="distance", values="bytes").sort_index()
    stored = frame[frame["scheme"] == "stored"].set_index("id")["bytes"].reindex(jxl.index)
    grid = np.asarray(sorted(jxl.columns), dtype=float)
    sizes = jxl[grid].to_numpy(np.int64)
    return plan.SizeSample(list(jxl.index), sizes, grid, stored.to_numpy(np.int64), np.zeros(len(jxl), np.int64),
                           listed=len(jxl), sampled=len(jxl))


@dataclass
class ExampleReport:
    plan: plan.Plan
    numbers: dict  # glue name (without the plan_ prefix) -> value
    sizes: pd.DataFrame  # the size curve as the appendix prints it


def example_report(frame: pd.DataFrame, params: dict) -> ExampleReport:
    """The plan of the worked example and every number the appendix quotes."""
    sample = sample_from_table(frame, params)
    settings = _settings(params)
    result = plan.make_plan(sample, laws.load(settings.law), params["budget"], pool_size=settings.pool_size,
                            n_boot=0, seed=settings.seed)
    result.sample_source = f"{len(sample.ids)} Food-101 originals standing for {settings.pool_size:,} images"
    compressed = frame[frame["scheme"] == "compressed"]
    real_mean = float(compressed["bytes"].mean())
    d_real = float(compressed["distance"].iloc[0])
    if abs(d_real - result.distance) > 1e-9:
        raise ValueError(f"the table compressed at d = {d_real} but the plan now says d = {result.distance}: "
                         "recompute the table (storage-scaling book --only 08_plan_your_dataset --profile full)")
    p = result.prediction
    food = law.paper_allocation_table().query("dataset == 'food101'").iloc[0]
    numbers = {
        "images": len(sample.ids), "pool": settings.pool_size, "budget_mb": params["budget"] / 1e6,
        "n_star": p.n, "L_star": p.L, "distance": result.distance,
        "distance_lo": result.distance_interval[0], "distance_hi": result.distance_interval[1],
        "error_opt": p.error, "n_orig": result.n_original, "L_orig": result.L_original,
        "error_orig": result.original["error"], "stored_total_mb": result.n_original * result.L_original / 1e6,
        "real_mean": real_mean, "real_vs_Lstar": real_mean / p.L - 1,
        "n_star_total_mb": p.n * real_mean / 1e6, "fill": p.n * real_mean / params["budget"],
        "paper_err_opt": float(food["err_opt_measured"]), "paper_err_orig": float(food["err_original_measured"]),
        "L_d1": float(sample.sizes[:, list(sample.grid).index(1.0)].mean()) if 1.0 in sample.grid else float("nan"),
        "L_d15": float(sample.sizes[:, -1].mean()), "orig_mean": float(sample.original.mean()),
        "law_range": result.saved.range_text(), "problems": "; ".join(result.problems) or "none",
    }
    c = result.curve
    sizes = pd.DataFrame({"distance": ["original"] + [f"{d:g}" for d in c["distance"]],
                          "mean bytes": [c["original_mean"]] + c["mean"],
                          "95% interval (bytes)": [f"{c['original_lo']:,.0f}-{c['original_hi']:,.0f}"]
                          + [f"{lo:,.0f}-{hi:,.0f}" for lo, hi in zip(c["lo"], c["hi"])]})
    return ExampleReport(result, numbers, sizes)


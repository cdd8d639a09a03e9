"""The book's comparisons in words, re-derived from ``results/`` with plain pandas and looked up in
the text the executed publish notebooks glued: a sentence whose numbers disagree with the
committed tables fails here, whatever the report code computed.

Each check recomputes a number from the raw rows (seed-paired where the chapter pairs), formats it
as the chapter prints it, and asserts that the glued sentence contains it. The notebooks are the
publish ones that ``test_book_e2e`` leaves behind; any that are missing or from another profile
are executed here first (publish loads committed tables: a few minutes, no training).
"""

import json
import subprocess
import sys

import nbformat
import numpy as np
import pandas as pd
import pytest

from storage_scaling import book, paths

ROOT = paths.repo_root()
RESULTS = ROOT / "results"
NOTEBOOKS = ("02_training_grid", "03_scaling_law", "04_randomized_compression", "06_blog", "07_jpeg_dl")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.xdist_group("book"),  # these share book/executed/: one worker, in file order
    pytest.mark.skipif(paths.data_root() is None, reason="needs ../shared/data (offline data packs) to run the notebooks"),
]


@pytest.fixture(scope="module")
def glued() -> dict[str, dict[str, str]]:
    chosen = [nb for nb in book.discover(ROOT) if nb.name in NOTEBOOKS]
    stale = [nb for nb in chosen if not nb.executed_path(ROOT).exists()
             or book.executed_profile(ROOT, [nb]) != "publish"]
    if stale:
        only = [arg for nb in stale for arg in ("--only", nb.name)]
        done = subprocess.run([sys.executable, "-m", "storage_scaling.book", "--profile", "publish", "--no-build",
                               *only], cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return {nb.name: book.glued_text(nbformat.read(nb.executed_path(ROOT), as_version=4)) for nb in chosen}


def table(name: str) -> pd.DataFrame:
    return pd.read_csv(RESULTS / f"{name}.csv")


def tables(kind: str) -> pd.DataFrame:
    """Every model's table of one experiment, with a ``model`` column (the file's suffix)."""
    parts = [table(p.stem).assign(model=p.stem.removeprefix(f"training_{kind}_"))
             for p in sorted(RESULTS.glob(f"training_{kind}_*.csv"))]
    assert parts, f"no committed results/training_{kind}_*.csv"
    return pd.concat(parts, ignore_index=True)


def format_label(frame: pd.DataFrame) -> pd.Series:
    return np.where(frame["codec"] == "original", "original", "d=" + frame["distance"].map("{:g}".format))


def test_blog_verdict_is_the_seed_paired_gain_at_d10_and_the_best_format(glued):
    verdict = glued["06_blog"]["blog_verdict"]
    rows = tables("blog").assign(format=format_label)
    gains = []
    for _, part in rows.groupby(["dataset", "model"]):
        acc = part.pivot_table(index="seed", columns="format", values="accuracy")
        at10 = 100 * (acc["d=10"] - acc["original"]).dropna()
        gains.append(at10.mean())
        assert f"{at10.mean():+.1f} points (seeds {at10.min():+.1f} to {at10.max():+.1f})" in verdict
        best = acc.mean().idxmax()
        assert f": {best} ({100 * (acc[best] - acc['original']).mean():+.1f} points)" in verdict
    reproduced = sum(g > 10 for g in gains)
    assert ("is not reproduced" in verdict) == (reproduced == 0)


def test_scheme_differences_are_seed_paired_means_over_budgets(glued):
    text = glued["04_randomized_compression"]["rand_mean_text"]
    schemes = {"randomized": tables("randomized"), "optimal": tables("budget"), "original": tables("original")}
    randomized = schemes["randomized"]
    collapsed = (randomized["d_max"] - randomized["d_min"]).abs() < 1e-9
    if "allocation_rule" in randomized:
        collapsed |= randomized["allocation_rule"].astype(str).eq("keep_originals")
    schemes["randomized"] = randomized[~collapsed]  # nothing randomized: not a randomization result
    optimal = schemes["optimal"]
    if "allocation_rule" in optimal:  # the law kept the originals: storage-optimal is the original run itself
        kept = optimal.loc[optimal["allocation_rule"].astype(str).eq("keep_originals"), ["dataset", "model", "budget"]]
        marked = optimal.merge(kept.drop_duplicates().assign(kept=True), how="left", on=["dataset", "model", "budget"])
        schemes["optimal"] = optimal[marked["kept"].isna().to_numpy()]
    error = pd.concat([f.assign(scheme=s) for s, f in schemes.items()]).pivot_table(
        index=["dataset", "model", "budget", "seed"], columns="scheme", values="error")
    for (ds, model), part in error.groupby(level=["dataset", "model"]):
        for first, second in (("randomized", "optimal"), ("optimal", "original")):
            paired = 100 * (part[first] - part[second]).dropna()
            if paired.empty:
                continue
            per_budget = paired.groupby(level="budget").mean()
            assert f"{first} - {second} {per_budget.mean():+.2f} points" in text, (ds, model, first, second)


def test_grid_cells_and_lowest_error_are_those_of_the_rows(glued):
    cells_text = glued["03_scaling_law"]["law_cells_text"]
    highlights = glued["02_training_grid"]["grid_highlights_text"]
    for _, part in tables("grid").groupby(["dataset", "model"]):
        runs, cells_nd = len(part), part.groupby(["n", "codec", "distance"], dropna=False).ngroups
        cells_nl = part.groupby(["n", "mean_bytes"]).ngroups
        assert f"{runs:,} runs in {cells_nl:,} distinct (n, L) cells ({cells_nd:,} (n, format) cells)" in cells_text
        means = part.assign(format=format_label).groupby(["n", "format"])["error"].mean()
        n, fmt = means.idxmin()
        assert f"lowest error {means.min():.3f} (n = {n:,}, {fmt})" in highlights


def test_jpeg_dl_gains_are_seed_paired_over_the_committed_rows(glued):
    g = glued["07_jpeg_dl"]
    runs = table("jpeg_dl_cnn_cpu")  # one row per (seed, variant), its evaluations as JSON: expanded here
    rows = pd.DataFrame([{"seed": run["seed"], "variant": run["variant"], **evaluation}
                         for run in runs.to_dict("records") for evaluation in json.loads(run["evaluations"])])
    mode = rows["attack_mode"]
    soft = rows["eval_mode"] == "soft"  # hard rounding at test is an arm of its own, in both attack modes
    arm = np.select([rows["variant"] == "baseline", soft & (mode == "bpda"), soft], ["baseline", "bpda", "soft"],
                    "other")
    rows = rows.assign(arm=arm)
    clean = rows[rows["scored_on"] == "test"].pivot_table(index="seed", columns="arm", values="accuracy")
    assert g["jdl_diff"] == f"{100 * (clean['soft'] - clean['baseline']).mean():+.2f}"
    attacked = rows[rows["scored_on"] == "attack_subset"].pivot_table(
        index=["attack", "eps_255", "seed"], columns="arm", values="accuracy")
    for attack in ("fgsm", "pgd"):
        part = attacked.loc[attack]
        gain = (100 * (part["soft"] - part["baseline"])).groupby(level="eps_255").mean()
        eps = gain.idxmax()
        assert g[f"jdl_{attack}_best_gain"] == f"{gain.max():+.1f}" and g[f"jdl_{attack}_best_eps"] == f"{eps:g}"
        if "bpda" not in part:
            assert "has not been run" in g[f"jdl_bpda_{attack}"]
            continue
        bpda = (100 * (part.loc[eps, "bpda"] - part.loc[eps, "baseline"])).mean()
        assert g[f"jdl_{attack}_bpda_gain"] == f"{bpda:+.1f}"
        assert f"is {bpda:+.1f} points" in g[f"jdl_bpda_{attack}"]
        stronger = part[["soft", "bpda"]].min(axis=1)  # per seed, the attack that left the lower accuracy
        strong = (100 * (stronger.loc[eps] - part.loc[eps, "baseline"])).mean()
        assert f"in each seed it is {strong:+.1f} points" in g[f"jdl_bpda_{attack}"]

"""The experiments of the paper, one class each: how a dataset block becomes runs, which images a
run trains on, and at which bytes.

An experiment knows three things; the runner (:mod:`.runner`) does the rest:

``expand(block, base, pool, seeds)``  the runs of one dataset block (flat dicts of every parameter);
``plan(run)``                         which images (and at which distances) a run trains on, checked
                                      before any training (an infeasible budget fails here); computed
                                      once per training and handed on, so it holds plain values
                                      (indices, sizes, the prefix found), never the pool or a store,
                                      and pickles cheaply to a worker of a cluster (a lazily filled
                                      size table leaves its images behind and rebuilds them there);
``training_set(run, plan)``           an :class:`.inputs.TrainingSet`: the store and rows, labels,
                                      storage metrics, and the held-out 20 % stored the same way (for
                                      models that choose settings on validation data).

Adding an experiment is one class here, registered in :data:`EXPERIMENTS`, plus its spec files
``specs/<name>.<profile>.toml``. After Mentzer & Montanari (2024):

``grid``        n x format x seed: nested stratified subsets of the train pool (``data.nested_subset``),
                every image of a run stored in one format (the original files, or JPEG XL at one distance).
``budget``      storage-optimal: for a budget s and a chosen n (explicit, or n*(s) of the law fitted to
                our grid), the single distance at which those n images fit in s (binary search to 1e-3 on
                interpolated per-image sizes, then real encodes until within the budget and 0.5 % of it).
``original``    the largest prefix of the nested order whose stored files fit in s.
``naive``       one fixed distance for every budget: more images until s or the pool runs out.
``randomized``  the same subsets as ``budget``; every image gets its own distance spread uniformly over
                [d_min, d_max] in random order, one end found by binary search; images below the
                zero-gain distance keep their original file. The held-out 20 % the probe chooses its
                penalty on follows the same rule (:func:`.inputs.randomized_held_out`).
``cross``       a model trained at one format, scored on the test set in each format: the grid's
                whole-pool model when this machine kept it (evaluation only; the row's
                ``model_from`` names the grid row), else trained here (``model_from`` empty). The entry
                ``"randomized"`` in a block's ``distances`` adds the randomized model: the same
                subset with every image at its own distance, uniform over [``range_start``,
                ``range_end``] (default: the study range [0.5, 15]) in the random order of
                ``rank_seed``, with no budget search and no image kept original. Its rows have
                ``codec = "jxl-randomized"``, ``distance`` empty and the range and rank seed as
                parameters (the other rows keep their identity: they carry none of these keys).
``select``      the validation sweep that chooses the step budget and learning rate of a network
                (see ``train``'s docstring; never uses the test set).
``quality``     the quality checks of a model: the whole pool at the original format, and a doubled
                step budget at the smallest and largest n.
``blog``        the Granica blog's experiment: one budget (the whole pool at d = 10); at the original
                format and each distance the largest prefix of the nested order that fits; the same
                training protocol at every format.
``jpeg_dl``     JPEG-DL (chapter 7): the network with and without a trainable JPEG layer, scored clean
                and under attack; its runs train and score themselves (:meth:`Experiment.execute`).

The budgets of budget, original, naive and randomized (:func:`budget_list`) are bytes, bytes per
pool image, or the paper's placement ``budgets_per_l15``: s = f x (pool size) x L(15).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from .. import data, paths
from ..results import read_rows
from ..compress import budget as budgets
from ..compress import codecs
from ..learn import jpeg_dl
from .inputs import TrainingSet, compress, held_out, original_sizes, per_image_store, randomized_held_out
from .values import LawTable, ListOf, Pair, Scalar, Value

ORIGINAL = "original"  # in a list of formats (distances): the stored original files
RANDOMIZED = "randomized"  # in a cross block's training formats: per-image distances over a range
RANDOMIZED_CODEC = "jxl-randomized"  # the ``codec`` of such a run's rows
EVAL_KEYS = ("test_codec", "test_distance")  # runs differing only in these share one training


# ---------------------------------------------------------------------------------------------
# Shared pieces


def randomized_range(block: dict, where: str = "a block") -> tuple[float, float]:
    """``range_start`` and ``range_end`` of a block (default: the study range), checked."""
    lo = float(block.get("range_start", codecs.STUDY_DISTANCES[0]))
    hi = float(block.get("range_end", codecs.STUDY_DISTANCES[1]))
    if not codecs.STUDY_DISTANCES[0] <= lo < hi <= codecs.STUDY_DISTANCES[1]:
        raise ValueError(f"randomized range [{lo}, {hi}] (range_start, range_end) of {where} must lie in "
                         f"{list(codecs.STUDY_DISTANCES)} with start < end")
    return lo, hi


def check_distance(d, what="distance") -> float:
    d = float(d)
    lo, hi = codecs.DISTANCE_RANGE
    if not lo < d <= hi:
        raise ValueError(f"{what} {d} must be a JPEG XL distance in ({lo:g}, {hi:g}], or {ORIGINAL!r}")
    return d


def run_format(d, what="distance") -> dict:
    """``codec`` and ``distance`` of a run for one entry of a list of formats."""
    if d is None or d == ORIGINAL:
        return {"codec": "original", "distance": None}
    if isinstance(d, str):
        raise ValueError(f"{what} {d!r} must be a number or {ORIGINAL!r}")
    return {"codec": "jxl", "distance": check_distance(d, what)}


def sizes_n(block: dict, pool_size: int, key_list="ns", key_frac="fractions") -> list[int]:
    if key_list in block:
        ns = [int(n) for n in block[key_list]]
    elif key_frac in block:
        ns = [max(1, int(f * pool_size)) for f in block[key_frac]]
    else:
        raise ValueError(f"a dataset block needs {key_list!r} or {key_frac!r}")
    for n in ns:
        if not 1 <= n <= pool_size:
            raise ValueError(f"n={n} is larger than the training pool ({pool_size} images of "
                             f"{block['dataset']!r}); choose n <= {pool_size}")
    return ns


BUDGET_KEYS = ("budgets", "budgets_per_pool_image", "budgets_per_l15")  # one of them sets a block's budgets


def l15_mean_bytes(the_pool: data.ImageSet, effort) -> float:
    """L(15): the pool's mean bytes per image at the study's largest distance (the grid's store)."""
    return float(compress(the_pool, "jxl", codecs.STUDY_DISTANCES[1], int(effort)).mean_bytes)


def original_mean_bytes(the_pool: data.ImageSet) -> float:
    """The pool's mean bytes per image in the original format (:func:`.inputs.original_sizes`)."""
    return float(np.mean(original_sizes(the_pool)))


QUALITY_SAMPLE = 2000  # images whose mean bytes at the smallest distance estimate the pool's


def top_quality_mean_bytes(the_pool: data.ImageSet, effort) -> float:
    """The pool's mean bytes per image at the study's smallest distance, estimated on the first
    :data:`QUALITY_SAMPLE` images of the seed-0 nested order (class-balanced); the one store this
    encodes is small and cached. The most bytes an image can take in a storage-optimal run."""
    order = data.nested_order(the_pool.labels, 0)[:QUALITY_SAMPLE]
    sample = the_pool.subset(np.sort(order))
    return float(compress(sample, "jxl", codecs.STUDY_DISTANCES[0], int(effort)).mean_bytes)


def check_budgets(block: dict, where: str = "a budget block") -> tuple[str, list]:
    """The block's one budget key and its values, refused before any work when malformed."""
    given = [k for k in BUDGET_KEYS if k in block]
    if len(given) != 1:
        raise ValueError(f"{where} needs exactly one of {list(BUDGET_KEYS)}, got {given or 'none'}; keep one")
    key = given[0]
    values = block[key]
    if not isinstance(values, list) or not values or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{key!r} must be a non-empty list of numbers, got {values!r}")
    if any(v <= 0 for v in values):
        raise ValueError(f"{key!r} must all be positive, got {values}; budgets are positive bytes")
    return key, values


def budget_list(block: dict, the_pool: data.ImageSet) -> list[tuple[float, dict]]:
    """A block's budgets as (bytes, columns saying how the budget was set) pairs.

    One of three keys, each a list:

    ``budgets``                 bytes;
    ``budgets_per_pool_image``  bytes per pool image: s = b x (pool size);
    ``budgets_per_l15``         the paper's placement, fractions f of the pool stored at the study's
                                largest distance: s = f x (pool size) x L(15), L(15) the pool's mean
                                bytes per image at d = ``codecs.STUDY_DISTANCES[1]`` and the block's
                                effort, rounded to whole bytes. The paper's Food-101 budgets are
                                f = 0.14, 0.28, 0.85, 1.42, 2.13 of its L(15). Each run records f in
                                ``budget_per_l15`` (its ``budget`` column holds s), so tables group by f.
    """
    key, values = check_budgets(block)
    if key == "budgets":
        return [(float(s), {}) for s in values]
    if key == "budgets_per_pool_image":
        return [(float(b) * len(the_pool), {}) for b in values]
    l15 = l15_mean_bytes(the_pool, block.get("effort", codecs.DEFAULT_EFFORT))
    return [(float(round(f * len(the_pool) * l15)), {"budget_per_l15": float(f)}) for f in values]


def storage(sizes, budget=None) -> dict:
    sizes = np.asarray(sizes, dtype=np.int64)
    out = {"mean_bytes": float(sizes.mean()), "total_bytes": int(sizes.sum())}
    if budget is not None:
        out["budget_fill"] = float(sizes.sum() / budget)
    return out


def run_pool(run: dict) -> data.ImageSet:
    return data.pool(run["dataset"], run["pool"], run["classes"], run["pool_limit"])


def pool_subset(run: dict, indices) -> data.ImageSet:
    """Rows ``indices`` of the run's pool (picklable with :func:`functools.partial`: a worker's way
    to the images of a plan)."""
    return run_pool(run).subset(indices)


def subset_indices(run: dict, the_pool: data.ImageSet) -> np.ndarray:
    return data.nested_subset(the_pool.labels, int(run["n"]), int(run["seed"]))


def prefix_plan(run: dict, the_pool: data.ImageSet, sizes, budget, what: str) -> dict:
    """The plan of a scheme that fills a budget image by image (original, naive, blog): the largest
    prefix of the seed's nested order of the pool whose ``sizes`` (bytes of each pool image) fit in
    ``budget``; ``what`` names those images when not even one fits."""
    order = data.nested_order(the_pool.labels, int(run["seed"]))
    pre = budgets.largest_prefix(np.asarray(sizes)[order], budget, what=what)
    return {"indices": np.sort(order[: pre.n]), "prefix": pre}


def size_grid(step: float) -> np.ndarray:
    """The study's distance range in ``step`` (its end always included, so the whole range is covered)."""
    lo, hi = codecs.STUDY_DISTANCES
    if not 0 < step <= (hi - lo) / 2:
        raise ValueError(f"size_grid_step must be in (0, {(hi - lo) / 2:g}], got {step}")
    grid = np.round(np.arange(lo, hi + 1e-9, step), 6)
    return grid if grid[-1] == hi else np.append(grid, hi)


def grid_law(dataset: str, model: str) -> dict:
    """The paper-style law fit (no floor) of our grid results for (dataset, model)."""
    from .. import law

    path = result_path(Grid.name, model, paths.results_dir())
    rows = read_rows(path) if path.is_file() else pd.DataFrame({"dataset": []})
    rows = rows[rows["dataset"] == dataset]
    if rows.empty:
        raise ValueError(f"the {dataset} block of model {model!r} (allocation 'grid_fit') cannot be listed yet: "
                         f"it needs the law of our grid, and {path} has no {dataset} rows; run the grid first "
                         f"(storage-scaling run grid --profile full --models {model} --datasets {dataset}), or give "
                         "explicit 'allocations' [[budget, n], ...] or law parameters")
    return law.fit_paper(rows, with_floor=False, metric="error").params.as_dict()


# ---------------------------------------------------------------------------------------------
# What this module's block keys accept (the value types are in :mod:`.values`)


DISTANCE = Scalar("number", *codecs.DISTANCE_RANGE, open_lo=True, name="JPEG XL distance", example="10.0")
FORMAT = Scalar("number", *codecs.DISTANCE_RANGE, open_lo=True, name="JPEG XL distance", texts=(ORIGINAL,),
                none=True)  # None (JSON null): the original, as ORIGINAL (:func:`run_format`)
SEEDS = ListOf(Scalar("integer", 0), "seed", example="[0, 1]")
SIZES = ListOf(Scalar("integer", 1), "n", example="[50, 100, 200]")
FRACTIONS = ListOf(Scalar("number", 0, 1, open_lo=True, name="fraction"), "fraction", example="[0.05, 0.2, 1.0]")
FORMATS = ListOf(FORMAT, "distance", example='["original", 1.0, 4.0, 15.0]', required=True)
POSITIVE = Scalar("number", 0, open_lo=True, range_words="positive")
# one of them sets a block's budgets (:func:`check_budgets` also says a block has exactly one)
BUDGET_VALUES = {
    "budgets": ListOf(POSITIVE, "budget", example="[40000, 80000]", words="a non-empty list of numbers > 0 (bytes)"),
    "budgets_per_pool_image": ListOf(POSITIVE, "budget", example="[30, 60, 120]",
                                     words="a non-empty list of numbers > 0 (bytes per pool image)"),
    "budgets_per_l15": ListOf(POSITIVE, "budget", example="[0.14, 0.28, 0.85]",
                              words="a non-empty list of numbers > 0 (f in s = f x pool size x L(15))"),
}
RANDOMIZED_RANGE = {  # :func:`randomized_range` also says start < end
    "range_start": Scalar("number", *codecs.STUDY_DISTANCES, name="distance", example="0.5"),
    "range_end": Scalar("number", *codecs.STUDY_DISTANCES, name="distance", example="15.0"),
    "rank_seed": Scalar("integer", 0, example="2024"),
}


# ---------------------------------------------------------------------------------------------
# The experiments


class Experiment:
    """Base: a run trains on a nested subset of the pool at one format."""

    name = ""
    result_file = ""
    keys: dict[str, Value] = {}  # block keys beyond the common ones, and what each accepts
    with_model_params = True  # rows carry the model's params (select varies them itself)
    cheap_to_list = True  # listing the runs needs no size tables (partial tables can be shown)

    def lists_cheaply(self, block: dict) -> bool:
        """Whether a block's runs are listed without encoding anything (so a partial table can be shown)."""
        return self.cheap_to_list and "budgets_per_l15" not in block  # L(15) needs the pool's d=15 store

    def count_runs(self, block: dict) -> int | None:
        """How many runs a block expands to, when that is known without encoding (else None)."""
        return None

    def check_block(self, block: dict, where: str) -> None:
        """Rules between a block's keys (each value is already checked against :attr:`keys`),
        before any data is read; ``where`` names the block in a message."""

    @staticmethod
    def needs_sizes(block: dict, where: str) -> None:
        if "ns" not in block and "fractions" not in block:
            raise ValueError(f"{where} needs 'ns' (subset sizes, e.g. ns = {SIZES.example}) or 'fractions' "
                             f"(of the pool, e.g. fractions = {FRACTIONS.example})")

    def expand(self, block: dict, base: dict, pool: data.ImageSet, seeds: list[int]) -> list[dict]:
        raise NotImplementedError

    executes_itself = False  # True: :meth:`execute` trains and scores a run (not the runner's fit and evaluate)

    def execute(self, run: dict, plan: dict, device=None) -> dict:
        """The metrics of one run that trains and scores itself (:attr:`executes_itself`)."""
        raise NotImplementedError

    def keeps_model(self, run: dict, plan: dict) -> bool:
        """Whether the runner keeps this run's fitted model for another experiment (:mod:`.kept`)."""
        return False

    def model_source(self, run: dict) -> dict | None:
        """The run of another experiment whose kept model this run scores instead of training one."""
        return None

    def plan(self, run: dict) -> dict:
        """Plain values only (see the module docstring): the pool is :func:`run_pool` again later."""
        return {"indices": subset_indices(run, run_pool(run))}

    def training_set(self, run: dict, plan: dict) -> TrainingSet:
        the_pool, idx = run_pool(run), plan["indices"]
        entry = compress(the_pool, run["codec"], run["distance"], run["effort"])
        # the original format counts the stored file, as chapter 1 does
        return TrainingSet(entry, the_pool.labels[idx], idx, storage(entry.sizes[idx]),
                           lambda: held_out(run, run["codec"], run["distance"]))


class Grid(Experiment):
    name, result_file = "grid", "training_grid"
    keys = {"ns": SIZES, "fractions": FRACTIONS, "distances": FORMATS}

    def check_block(self, block, where):
        self.needs_sizes(block, where)

    def expand(self, block, base, pool, seeds):
        # seed outermost: an interrupted grid has whole seeds, not ragged cells
        return [{**base, "n": n, **run_format(d), "budget": None, "seed": seed}
                for seed in seeds for n in sizes_n(block, len(pool)) for d in block["distances"]]

    def keeps_model(self, run, plan):
        return len(plan["indices"]) == len(run_pool(run))  # the whole pool: cross-compression scores it


class Cross(Experiment):
    name, result_file = "cross", "training_cross"
    keys = {"n": Scalar("integer", 1, example="200"),
            "fraction": Scalar("number", 0, 1, open_lo=True, name="fraction", example="1.0"),
            "distances": ListOf(Scalar("number", *codecs.DISTANCE_RANGE, open_lo=True, name="JPEG XL distance",
                                       texts=(ORIGINAL, RANDOMIZED), none=True), "distance", required=True,
                                example='["original", 1.0, 15.0, "randomized"]'),
            "test_distances": ListOf(FORMAT, "test distance", example='["original", 1.0, 15.0]', required=True),
            **RANDOMIZED_RANGE}
    randomized_keys = tuple(RANDOMIZED_RANGE)  # only with "randomized" in distances

    def check_block(self, block, where):
        given = [k for k in self.randomized_keys if k in block]
        if given and RANDOMIZED not in block["distances"]:
            raise ValueError(f"{given} set the randomized model of a cross block ({where}); add {RANDOMIZED!r} to "
                             "its 'distances' (training formats), or leave them out")
        if RANDOMIZED in block["distances"]:
            randomized_range(block, where)

    def train_format(self, d, block: dict) -> dict:
        """A training format's run keys: :func:`run_format`, or the randomized model's."""
        if d != RANDOMIZED:
            return run_format(d)
        lo, hi = randomized_range(block)
        return {"codec": RANDOMIZED_CODEC, "distance": None, "range_start": lo, "range_end": hi,
                "rank_seed": int(block.get("rank_seed", 2024))}

    def expand(self, block, base, pool, seeds):
        n = int(block["n"]) if "n" in block else max(1, int(block.get("fraction", 1.0) * len(pool)))
        sizes_n({"ns": [n], "dataset": block["dataset"]}, len(pool))
        formats = [self.train_format(d, block) for d in block["distances"]]
        tests = [run_format(dt, "test distance") for dt in block["test_distances"]]
        runs = []
        for fmt in formats:
            for seed in seeds:
                for test in tests:
                    runs.append({**base, "n": n, **fmt, "budget": None, "seed": seed,
                                 "test_codec": test["codec"], "test_distance": test["distance"]})
        return runs

    def model_source(self, run):
        """The grid's run at the same n, format, seed and recipe (scored at the original format);
        the randomized model is not a grid cell and is trained here."""
        if run["codec"] == RANDOMIZED_CODEC:
            return None
        return {**run, "experiment": Grid.name, **dict(zip(EVAL_KEYS, (ORIGINAL, None)))}

    def training_set(self, run, plan):
        if run["codec"] != RANDOMIZED_CODEC:
            return super().training_set(run, plan)
        subset = run_pool(run).subset(plan["indices"])
        lo, hi = run["range_start"], run["range_end"]
        distances = budgets.randomized_distances(budgets.permutation_ranks(len(subset), run["rank_seed"]), lo, hi)
        entry = per_image_store(subset, distances, run["effort"])
        validation, used = randomized_held_out(run, lo, hi, None)
        out = storage(entry.sizes)
        out.update(mean_distance=float(distances.mean()), **used)
        return TrainingSet(entry, subset.labels, None, out, validation)


class Select(Experiment):
    name, result_file = "select", "protocol_selection"
    keys = {"ns": SIZES, "fractions": FRACTIONS,
            "step_multipliers": ListOf(POSITIVE, "multiplier", example="[1, 2, 4, 8]", required=True,
                                       words="a non-empty list of numbers > 0 (of the step floor)"),
            "lr_multipliers": ListOf(POSITIVE, "multiplier", example="[0.5, 1.0, 2.0]", required=True,
                                     words="a non-empty list of numbers > 0 (of the recipe's learning rate)"),
            "floor_n": Scalar("integer", 1, example="40")}
    with_model_params = False

    def check_block(self, block, where):
        from ..learn import learners

        self.needs_sizes(block, where)
        if not isinstance(learners.get(block["model"]), learners.Network):
            raise ValueError(f"the select experiment chooses a network's step budget and learning rate; "
                             f"model {block['model']!r} of {where} has neither")

    def expand(self, block, base, pool, seeds):
        from ..learn import learners, train

        ns = sizes_n(block, len(pool))
        network = learners.get(block["model"])  # a network (check_block)
        overrides = {k: v for k, v in block.get("train", {}).items() if k not in ("steps", "epochs")}
        reference = train.recipe(block["model"], steps=1, **overrides)
        floor = train.steps_for_pool(int(block.get("floor_n", max(ns))), reference.batch_size)
        runs = []
        for mult in block["step_multipliers"]:
            for lm in block["lr_multipliers"]:
                cfg = network.params({**overrides, "steps": int(floor * mult), "lr": reference.lr * float(lm)})
                for n in ns:
                    for seed in seeds:
                        runs.append({**base, **cfg, "eval_split": "val", "n": n, "codec": "original",
                                     "distance": None, "budget": None, "seed": seed,
                                     "step_multiplier": mult, "lr_multiplier": float(lm)})
        return runs


class Quality(Experiment):
    name, result_file = "quality", "training_quality"
    keys = {"ns": SIZES, "fractions": FRACTIONS,
            "whole_pool": Scalar(texts=("paper", "all"), example='"paper"'),  # the pool of the whole-pool check
            "doubling_seeds": ListOf(Scalar("integer", 0), "seed", example="[0]")}  # of the step-doubling check

    def expand(self, block, base, pool, seeds):
        whole_kind = block.get("whole_pool", base["pool"])
        whole = data.pool(block["dataset"], whole_kind, base["classes"], base["pool_limit"])
        runs = [{**base, "pool": whole_kind, "check": "whole_pool", "n": len(whole), "codec": "original",
                 "distance": None, "budget": None, "seed": seed} for seed in seeds]
        if "protocol" not in base:  # a model without a step budget (the probe): the floor check only
            return runs
        if base["protocol"] != "fixed_steps":
            raise ValueError("the quality experiment doubles a fixed step budget: use protocol 'fixed_steps'")
        steps = int(base["steps"])
        for n in sizes_n(block, len(pool)):
            for s in (steps, 2 * steps):
                for seed in [int(x) for x in block.get("doubling_seeds", seeds)]:
                    runs.append({**base, "steps": s, "check": "doubling", "n": n, "codec": "original",
                                 "distance": None, "budget": None, "seed": seed})
        return runs


def budget_runs(block: dict, per_budget: int = 1) -> int:
    """Runs of a budget-type block: budgets (or explicit allocations) x seeds x ``per_budget``."""
    key = "allocations" if "allocations" in block else check_budgets(block)[0]
    return len(block[key]) * len(block.get("seeds", [0])) * per_budget


class Original(Experiment):
    name, result_file = "original", "training_original"

    def count_runs(self, block):
        return budget_runs(block)
    keys = BUDGET_VALUES

    def check_block(self, block, where):
        check_budgets(block, where)

    def expand(self, block, base, pool, seeds):
        return [{**base, **how, "budget": s, "codec": "original", "seed": seed}
                for s, how in budget_list(block, pool) for seed in seeds]

    def plan(self, run):
        return originals_plan(run)

    def training_set(self, run, plan):
        return originals_training_set(run, plan)


def originals_plan(run: dict) -> dict:
    """The largest prefix of the nested order whose original files fit in the run's budget."""
    the_pool = run_pool(run)
    return prefix_plan(run, the_pool, original_sizes(the_pool), run["budget"],
                       f"stored originals of {run['dataset']!r}")


def originals_training_set(run: dict, plan: dict) -> TrainingSet:
    the_pool, idx = run_pool(run), plan["indices"]
    entry = compress(the_pool, "original")
    out = storage(entry.sizes[idx], run["budget"])
    out.update(n=len(idx), pool_exhausted=plan["prefix"].pool_exhausted)
    return TrainingSet(entry, the_pool.labels[idx], idx, out, lambda: held_out(run, "original", None))


class Naive(Experiment):
    name, result_file = "naive", "training_naive"

    def count_runs(self, block):
        return budget_runs(block, len(block.get("distances", [])))
    keys = {**BUDGET_VALUES, "distances": ListOf(DISTANCE, "distance", example="[3.0, 8.0, 13.0]", required=True)}

    def check_block(self, block, where):
        check_budgets(block, where)

    def expand(self, block, base, pool, seeds):
        return [{**base, **how, "budget": s, "codec": "jxl", "distance": check_distance(d), "seed": seed}
                for s, how in budget_list(block, pool) for d in block["distances"] for seed in seeds]

    def plan(self, run):
        the_pool = run_pool(run)
        return prefix_plan(run, the_pool, self.entry(run, the_pool).sizes, run["budget"],
                           f"images of {run['dataset']!r} at d={run['distance']}")

    @staticmethod
    def entry(run: dict, the_pool: data.ImageSet):
        return compress(the_pool, "jxl", run["distance"], run["effort"])

    def training_set(self, run, plan):
        the_pool, idx = run_pool(run), plan["indices"]
        entry = self.entry(run, the_pool)
        out = storage(entry.sizes[idx], run["budget"])
        out.update(n=len(idx), pool_exhausted=plan["prefix"].pool_exhausted)
        return TrainingSet(entry, the_pool.labels[idx], idx, out, lambda: held_out(run, "jxl", run["distance"]))


KEEP_ORIGINALS = "keep_originals"  # ``allocation_rule`` of a budget run whose law keeps the originals


def keep_originals(law_params, s: float, n_star: float, largest: float, originals: float, pool_size: int) -> bool:
    """Whether the law's answer at budget ``s`` is "keep the originals" (:meth:`Budget.allocations`):
    its L* is at least the originals' mean bytes, or lies above the largest JPEG XL size
    (``largest``, d = 0.5) and the law predicts a lower error for the originals' split than for the
    split capped at d = 0.5."""
    L_star = s / n_star
    if L_star >= originals:
        return True
    if L_star <= largest:
        return False
    capped = law_params.error(min(pool_size, s / largest), largest)
    kept = law_params.error(min(pool_size, s / originals), originals)
    return bool(kept < capped)


class Budget(Experiment):
    name, result_file = "budget", "training_budget"

    def count_runs(self, block):
        return budget_runs(block)
    keys = {**BUDGET_VALUES, "allocations": ListOf(Pair(), "allocation", example="[[40000, 120], [80000, 200]]"),
            "allocation": LawTable('"grid_fit"'),
            "size_grid_step": Scalar("number", 0, (codecs.STUDY_DISTANCES[1] - codecs.STUDY_DISTANCES[0]) / 2,
                                     open_lo=True, example="0.25")}

    def check_block(self, block, where):
        if "allocations" not in block:  # explicit allocations carry their own budgets
            check_budgets(block, where)
    cheap_to_list = False

    def allocations(self, block: dict, the_pool: data.ImageSet) -> list[tuple[float, int, dict]]:
        """(budget bytes, n, extra params) triples: explicit pairs, or n*(s) of a law.

        With a law (``allocation``: "grid_fit" = the paper-style fit of our grid results for this
        dataset and model, or a dict of A, alpha, B, beta[, E]), n*(s) is rounded and kept where
        the codec can fill the budget: at most the pool size and the images that fit at the largest
        distance (the pool's mean bytes there, plus 1 %), and at least the images the budget holds
        at the smallest distance (:func:`top_quality_mean_bytes`, less 3 % for the sample's
        error). The last cap is the law's own optimum on the sizes the codec reaches: when the law
        asks for more bytes per image than d = 0.5 gives, error along the budget line falls
        towards that end, so the best reachable split stores every image at about d = 0.5 and
        fills the budget with more of them, instead of leaving part of it unused. The uncapped n*
        and whether a cap applied are recorded in the run's parameters.

        **Keep the originals.** JPEG XL cannot store an image in more bytes than at d = 0.5, and on
        small JPEG originals d = 0.5 can cost more than the original file (Food-101 64 px: about
        1,940 B against 1,810 B). So when the law's L* = s / n*(s) is at least the originals' mean
        bytes, or lies between the d = 0.5 size and the originals and the law predicts a lower error
        for the originals than for the capped d = 0.5 split, the law's answer is "keep the
        originals": the run trains on the largest prefix of the nested order whose original files
        fit (the original-format scheme's images), with ``codec = "original"``, no ``n`` parameter
        and ``allocation_rule = "keep_originals"``. It never transcodes to more bytes than the
        originals cost. (A randomized run with this allocation keeps every image original: it is
        degenerate, and reported so.)

        **Below the grid's smallest distance.** A capped or uncapped allocation may ask for a
        distance below the grid's smallest (d = 1 in the full specs), down to the study's 0.5: the
        run's own size table measures those bytes by real encodes, but the law's error there is an
        extrapolation beyond the L the grid measured (the chapter counts such runs).
        """
        from .. import law

        pool_size = len(the_pool)
        if "allocations" in block:
            pairs = [(float(s), int(n), {}) for s, n in block["allocations"]]
        else:
            check_budgets(block)
            law_params = block.get("allocation", "grid_fit")
            if law_params == "grid_fit":
                law_params = grid_law(block["dataset"], block["model"])
            fitted = law.LawParams(**law_params) if isinstance(law_params, dict) else law_params
            effort = block.get("effort", codecs.DEFAULT_EFFORT)
            smallest, largest = l15_mean_bytes(the_pool, effort), 0.97 * top_quality_mean_bytes(the_pool, effort)
            originals = original_mean_bytes(the_pool)
            pairs = []
            for s, how in budget_list(block, the_pool):
                n_star = float(fitted.n_star(s))
                recorded = {**how, "n_star": round(n_star, 1)}
                if keep_originals(fitted, s, n_star, largest, originals, pool_size):
                    pairs.append((s, None, {**recorded, "allocation_capped": True, "allocation_rule": KEEP_ORIGINALS}))
                    continue
                n = max(round(n_star), int(np.ceil(s / largest)))  # more bytes than d = 0.5 gives: more images
                n = int(min(pool_size, n, s // (1.01 * smallest)))
                pairs.append((s, n, {**recorded, "allocation_capped": n != round(n_star)}))
        for s, n, _ in pairs:
            if n is None:  # keep the originals: the prefix that fits is found per seed (originals_plan)
                continue
            if n < 1:
                raise ValueError(f"allocation n={n} for budget {s:,.0f} B of {block['dataset']!r} has no image; raise "
                                 "the budget (a law's n*(s) is capped at the images that fit at the largest distance)")
            if n > pool_size:
                raise ValueError(f"allocation n={n} for budget {s:,.0f} B is larger than the pool ({pool_size}) "
                                 f"of {block['dataset']!r}")
            if s <= 0:
                raise ValueError(f"budget {s} must be positive (bytes)")
        return pairs

    def extra(self, block: dict) -> dict:
        return {"size_grid_step": float(block.get("size_grid_step", 0.25))}

    def expand(self, block, base, pool, seeds):
        extra = self.extra(block)
        return [{**base, **extra, **alloc, "budget": s, **({"codec": "original"} if n is None else {"n": n, "codec": "jxl"}),
                 "seed": seed}
                for s, n, alloc in self.allocations(block, pool) for seed in seeds]

    def plan(self, run):
        """The subset's size table, then a feasibility check at the far end (the originals' prefix
        when the law keeps the originals). The table is filled lazily: the searches encode only the
        entries they read (:class:`store.LazySizeTable`), the same sizes as the whole table."""
        from ..compress import store

        if run["codec"] == "original":
            return originals_plan(run)
        the_pool = run_pool(run)
        idx = subset_indices(run, the_pool)
        subset = the_pool.subset(idx)
        sizes = store.lazy_size_table(subset, distances=size_grid(run["size_grid_step"]), effort=run["effort"],
                                      progress=False, source=partial(pool_subset, run, idx))
        out = {"indices": idx, "sizes": sizes, "grid": sizes.grid}
        self.check_feasible(run, out, subset)
        return out

    def check_feasible(self, run: dict, plan: dict, subset: data.ImageSet) -> None:
        """Raises when even the far end does not fit; may add to ``plan`` what the search needs."""
        budgets.distance_for_budget(plan["sizes"], plan["grid"], run["budget"])  # raises when even d=15 is too big

    def training_set(self, run, plan):
        if run["codec"] == "original":
            training = originals_training_set(run, plan)
            training.storage.update(within_tolerance=True, encodes=0)
            return training
        subset, sizes, grid = run_pool(run).subset(plan["indices"]), plan["sizes"], plan["grid"]
        fit = budgets.fit_real_bytes(
            lambda t: budgets.distance_for_budget(sizes, grid, t),
            lambda d: compress(subset, "jxl", float(d), run["effort"]).total_bytes, run["budget"])
        entry = compress(subset, "jxl", float(fit.candidate), run["effort"])
        out = storage(entry.sizes, run["budget"])
        out.update(distance=float(fit.candidate), within_tolerance=fit.within_tolerance, encodes=fit.encodes)
        return TrainingSet(entry, subset.labels, None, out, lambda: held_out(run, "jxl", float(fit.candidate)))


class Randomized(Budget):
    name, result_file = "randomized", "training_randomized"
    keys = {**Budget.keys, **RANDOMIZED_RANGE,
            "zero_below": Scalar("number", *codecs.DISTANCE_RANGE, texts=("auto",), name="distance", none=True,
                                 none_words=", or null (no image keeps its original file)", example='"auto"')}

    def check_block(self, block, where):
        super().check_block(block, where)
        randomized_range(block, where)

    def extra(self, block):
        lo, hi = randomized_range(block)
        zb = block.get("zero_below", "auto")
        if not (zb is None or zb == "auto" or isinstance(zb, (int, float))):
            raise ValueError(f"zero_below must be None, 'auto' or a distance, got {zb!r}")
        return {**super().extra(block), "range_start": lo, "range_end": hi,
                "rank_seed": int(block.get("rank_seed", 2024)), "zero_below": zb}

    def check_feasible(self, run, plan, subset):
        plan["original_sizes"] = original_sizes(subset)
        zb = run["zero_below"]
        plan["zero_below"] = (budgets.zero_gain_distance(plan["sizes"], plan["grid"], plan["original_sizes"])
                              if zb == "auto" else zb)
        plan["ranks"] = budgets.permutation_ranks(len(subset), run["rank_seed"])
        self._search(run, plan, run["budget"])

    def _search(self, run, plan, target):
        return budgets.randomized_range_for_budget(plan["sizes"], plan["grid"], target, plan["ranks"],
                                                   (run["range_start"], run["range_end"]), plan["zero_below"],
                                                   plan["original_sizes"])

    def training_set(self, run, plan):
        if run["codec"] == "original":  # the law keeps the originals: nothing to randomize (degenerate)
            training = originals_training_set(run, plan)
            n = len(plan["indices"])
            training.storage.update(d_min=0.0, d_max=0.0, moved=0.0, mean_distance=0.0, n_kept_original=n,
                                    zero_below_used=None, within_tolerance=True, encodes=0)
            return training
        subset, original = run_pool(run).subset(plan["indices"]), plan["original_sizes"]

        def encode(f):
            lossy = f.distances > 0
            total = int(original[~lossy].sum())
            if lossy.any():
                total += compress(subset.subset(np.flatnonzero(lossy)), "jxl", f.distances[lossy],
                                  run["effort"]).total_bytes
            return total

        fit = budgets.fit_real_bytes(lambda t: self._search(run, plan, t), encode, run["budget"])
        f = fit.candidate
        entry = per_image_store(subset, f.distances, run["effort"])
        validation, used = randomized_held_out(run, f.d_min, f.d_max, plan["zero_below"])
        out = storage(entry.sizes, run["budget"])
        out.update(d_min=f.d_min, d_max=f.d_max, moved=f.moved, mean_distance=float(f.distances.mean()),
                   n_kept_original=int((f.distances == 0).sum()), zero_below_used=plan["zero_below"],
                   within_tolerance=fit.within_tolerance, encodes=fit.encodes, **used)
        return TrainingSet(entry, subset.labels, None, out, validation)


class Blog(Experiment):
    """The Granica blog's experiment (Part 2): one budget, the bytes of the whole pool stored at
    ``budget_distance`` (default 10); at each format of ``distances`` the largest prefix of the
    seed's nested order that fits (so at the budget's own distance the whole pool); every format
    trained with the same protocol (a network's fixed step budget, the probe's one fit).

    The budget is measured in ``plan`` and recorded in each row (``budget``, with ``n``, the bytes
    and ``pool_exhausted``); a run is named by ``budget_distance``, so listing the runs needs no
    encoding and a partial table can be shown.
    """

    name, result_file = "blog", "training_blog"
    keys = {"budget_distance": Scalar("number", *codecs.DISTANCE_RANGE, open_lo=True, example="10.0",
                                      words=f"a JPEG XL distance {DISTANCE.range_words} (the budget is the "
                                            "whole pool stored at it; the budget_distance of the blog post is 10)"),
            "distances": ListOf(FORMAT, "distance", example='["original", 2.0, 4.0, 6.0, 8.0, 10.0]', required=True)}

    def expand(self, block, base, pool, seeds):
        where = f"the blog block of {block['dataset']!r}"
        budget_distance = block.get("budget_distance", 10.0)
        lo, hi = codecs.DISTANCE_RANGE
        if isinstance(budget_distance, bool) or not isinstance(budget_distance, (int, float)) \
                or not lo < budget_distance <= hi:
            raise ValueError(f"budget_distance of {where} must be a JPEG XL distance in ({lo:g}, {hi:g}] (the "
                             f"budget is the whole pool stored at it; the blog's is 10), got {budget_distance!r}")
        formats = block.get("distances")
        if not isinstance(formats, list) or not formats:
            raise ValueError(f"{where} needs 'distances': a non-empty list of JPEG XL distances and/or "
                             f"{ORIGINAL!r}, e.g. [{ORIGINAL!r}, 2, 4, 6, 8, 10]")
        if base.get("protocol", "fixed_steps") != "fixed_steps":
            raise ValueError(f"the blog trains every format with the same number of steps: {where} must use "
                             f"protocol 'fixed_steps', not {base['protocol']!r}")
        return [{**base, **run_format(d), "budget_distance": float(budget_distance), "seed": seed}
                for seed in seeds for d in formats]

    def budget(self, run: dict, the_pool: data.ImageSet) -> int:
        """Bytes of the whole pool stored at the budget distance."""
        return int(compress(the_pool, "jxl", run["budget_distance"], run["effort"]).sizes.sum())

    @staticmethod
    def entry(run: dict, the_pool: data.ImageSet):
        """The run's format of the pool: the stored files (their sizes counted as chapter 1 does), or JPEG XL."""
        if run["codec"] == "original":
            return compress(the_pool, "original")
        return compress(the_pool, "jxl", run["distance"], run["effort"])

    def plan(self, run):
        the_pool = run_pool(run)
        budget = self.budget(run, the_pool)
        sizes = np.asarray(self.entry(run, the_pool).sizes)
        what = "stored originals" if run["codec"] == "original" else f"images at d={run['distance']:g}"
        return {**prefix_plan(run, the_pool, sizes, budget, f"{what} of {run['dataset']!r}"),
                "sizes": sizes, "budget": budget}

    def training_set(self, run, plan):
        the_pool, idx = run_pool(run), plan["indices"]
        entry = self.entry(run, the_pool)
        out = storage(plan["sizes"][idx], plan["budget"])
        out.update(budget=plan["budget"], n=len(idx), pool_size=len(the_pool),
                   pool_exhausted=plan["prefix"].pool_exhausted)
        return TrainingSet(entry, the_pool.labels[idx], idx, out,
                           lambda: held_out(run, run["codec"], run["distance"]))


class JpegDL(Experiment):
    """JPEG-DL (Salamah et al.), chapter 7: for each seed, the block's network trained twice on the
    whole pool under the same recipe and seed, as the ``baseline`` and with a trainable JPEG layer in
    front (``jpeg_dl``: 128 quantisation steps with their own Adam); each model is scored clean and
    under FGSM and PGD (:mod:`..learn.jpeg_dl`). A run is one (seed, variant); it trains and scores
    itself (:meth:`execute`), and its row holds every evaluation as JSON (``evaluations``), which
    ``jpeg_dl.evaluation_rows`` expands for the report.
    """

    name, result_file = "jpeg_dl", "jpeg_dl"
    executes_itself = True
    keys = {
        "jpeg_quality": Scalar("integer", 1, 100, name="JPEG quality", example="75"),
        "jpeg_hardness": Scalar("number", 0, open_lo=True, name="hardness", example="5.0"),
        "jpeg_max_step": Scalar("number", 1, name="step", example="10.0"),
        "jpeg_lr": Scalar("number", 0, open_lo=True, name="learning rate", example="0.03"),
        "attacks": ListOf(Scalar(texts=jpeg_dl.ATTACKS), "attack", example='["fgsm", "pgd"]'),
        "attack_modes": ListOf(Scalar(texts=jpeg_dl.ATTACK_MODES), "attack mode", example='["soft", "bpda"]'),
        "eps_255": ListOf(Scalar("number", 0, 255, open_lo=True, name="attack size in grey levels"), "eps",
                          example="[1, 2, 3, 4]"),
        "pgd_steps": Scalar("integer", 1, example="5"),
        "attack_n": Scalar("integer", 1, example="2000", required=True),
        "attack_batch": Scalar("integer", 1, example="500"),
    }
    DEFAULTS = {"jpeg_quality": 75, "jpeg_hardness": 5.0, "jpeg_max_step": 10.0, "jpeg_lr": 0.03,
                "attacks": list(jpeg_dl.ATTACKS), "attack_modes": list(jpeg_dl.ATTACK_MODES),
                "eps_255": [1, 2, 3, 4], "pgd_steps": 5, "attack_batch": 500}

    def check_block(self, block, where):
        from ..learn import learners

        model = learners.get(block["model"])
        if not isinstance(model, learners.Network):
            raise ValueError(f"JPEG-DL puts a trainable JPEG layer in front of a network; model {block['model']!r} "
                             f"of {where} is not one")
        owned = sorted(k for k in block.get("train", {}) if k.startswith("jpeg_") or k == "protocol")
        if owned:
            raise ValueError(f"'train' of {where} may not set {owned}: the jpeg_* knobs are keys of the block, "
                             "and both variants train for the recipe's fixed number of steps")
        for key in ("attacks", "attack_modes", "eps_255"):
            if key in block and len(set(block[key])) != len(block[key]):
                raise ValueError(f"{key} in {where} lists a value twice: {block[key]!r}")
        if block.get("test_n") is not None and block["attack_n"] > block["test_n"]:
            raise ValueError(f"attack_n = {block['attack_n']} in {where} exceeds its test_n = {block['test_n']} "
                             "scored images; lower attack_n or raise test_n")

    def knobs(self, block: dict) -> dict:
        """The block's JPEG-layer and attack knobs, defaults filled in."""
        return {k: block.get(k, v) for k, v in self.DEFAULTS.items()} | {"attack_n": int(block["attack_n"])}

    def expand(self, block, base, pool, seeds):
        knobs = self.knobs(block)
        return [{**base, **knobs, "jpeg_layer": variant == "jpeg_dl", "variant": variant, "n": len(pool),
                 "codec": ORIGINAL, "distance": None, "budget": None, "seed": seed}
                for seed in seeds for variant in jpeg_dl.VARIANTS]

    def plan(self, run):
        """The attacked test images (class-balanced, the same for every run), checked before training."""
        scored = data.eval_set(run["dataset"], run["eval_split"], run["classes"], run["test_n"], run["pool"])
        return {"attack_indices": jpeg_dl.attack_indices(scored.labels, int(run["attack_n"]))}

    def execute(self, run, plan, device=None):
        return jpeg_dl.run_unit(run, plan["attack_indices"], device=device)


EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (Select(), Grid(), Budget(), Original(), Naive(),
                                                         Randomized(), Cross(), Quality(), Blog(), JpegDL())}


PROGRAM = ("grid", "quality", "cross", "original", "naive", "budget", "randomized")  # `run all`: the grid first


def program() -> tuple[str, ...]:
    """Every experiment in the order ``storage-scaling run all`` runs them: the grid first (the budget
    optimum's n*(s) is the law fitted to its rows), then the checks and the budget schemes, then the rest."""
    return tuple(n for n in PROGRAM if n in EXPERIMENTS) + tuple(n for n in EXPERIMENTS if n not in PROGRAM)


def get(name: str) -> Experiment:
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose one of {tuple(EXPERIMENTS)}")
    return EXPERIMENTS[name]


def table_name(name: str, model: str) -> str:
    """The name of one experiment's table of one model, ``<result file>_<model>`` (e.g.
    ``training_grid_probe``): the one place it is assembled (``model="*"``: a glob of every model's)."""
    return f"{get(name).result_file}_{model}"


def result_path(name: str, model: str, folder: Path) -> Path:
    """The table of one experiment and one model: ``<folder>/<table name>.csv`` (:func:`table_name`)."""
    return Path(folder) / f"{table_name(name, model)}.csv"

"""Every experiment of the paper as a list of runs, and the resumable runner that executes them.

An experiment is a *spec* (a plain, JSON-able dict: datasets, networks, sizes, distances, seeds,
training overrides) that :func:`build_runs` expands into a list of *runs*: flat dicts holding every
parameter of one training run (the data, the codec, the budget, the seed and every field of the
:class:`train.TrainConfig`). The runner (:func:`run_experiment`) writes one row per run to a
:class:`results.ResultsStore` as soon as the run finishes; re-running skips every run already
recorded, and a run interrupted half-way has no row and is simply done again (no lost or
duplicated rows). Progress is shown with tqdm.

Experiments (``EXPERIMENTS``), after Mentzer & Montanari (2024):

``grid``        n x distance x seed: nested stratified subsets of the train pool
                (``data.nested_subset``), every image of a run at one JPEG XL distance.
``budget``      storage-optimal: for a budget s and a chosen n (explicit, or n*(s) from the law
                fitted to our grid), the single distance at which those n images fit in s
                (binary search to 1e-3 on interpolated per-image sizes, then real encodes until
                the set is within the budget and within 0.5 % of it).
``original``    the largest prefix of the nested order whose stored files fit in s.
``naive``       one fixed distance for every budget: more images until s or the pool runs out.
``randomized``  the same subsets as ``budget``; every image gets its own distance spread
                uniformly over [d_min, d_max] in random order, one end found by binary search.
``cross``       a model trained at d_train, evaluated on the test set at each d_test.
``select``      the validation sweep that chooses the step budget and learning rate
                (see ``train``'s docstring; never uses the test set).
``quality``     the GPU quality checks of the training engine: the whole pool at the original
                format, and a doubled step budget at the smallest and largest n.

Profiles: ``smoke`` (CPU, tiny subsets and a few steps: seconds to a minute per experiment) and
``full`` (real sizes, for a GPU host). Results of ``full`` go to ``results/<file>.csv`` (see
``RESULT_FILES``) plus a ``.json`` sidecar once every run is done, which is what the book's
``publish`` profile loads; ``smoke`` writes to ``<cache>/smoke-results/<file>.csv`` (see
:func:`default_results_path`; ``<cache>`` is ``$STORAGE_SCALING_CACHE`` or ``.cache/``), so a smoke
run resumes too.

Specs are checked before any work: unknown keys (top level, dataset blocks, training overrides)
are refused with the list of valid ones (``SPEC_KEYS``, ``BLOCK_KEYS``; see :func:`check_spec`).

Command line (on a GPU host)::

    python -m storage_scaling.experiments grid --profile full
    python -m storage_scaling.experiments all --profile smoke
"""

from __future__ import annotations

import argparse
import copy
import difflib
import json
import sys
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd

from . import budget as budgets
from . import codecs, data, errors, paths, tables, train
from .results import ResultsStore, canonical, run_key

EXPERIMENTS = ("select", "grid", "budget", "original", "naive", "randomized", "cross", "quality")
RESULT_FILES = {
    "select": "protocol_selection", "grid": "training_grid", "budget": "training_budget",
    "original": "training_original", "naive": "training_naive", "randomized": "training_randomized",
    "cross": "training_cross", "quality": "training_quality",
}
EVAL_KEYS = ("test_codec", "test_distance")  # runs differing only in these share one training
PAPER_DISTANCES = [1.0, 2.0, 4.0, 7.0, 10.0, 15.0]
PAPER_FRACTIONS = [0.05, 0.2, 0.4, 0.6, 0.8, 1.0]
ORIGINAL = None  # in a list of training or test distances: the stored original files
PAPER_FORMATS = [ORIGINAL] + PAPER_DISTANCES  # the grid's formats: the original and six distances
AIRBENCH_STEPS = 476  # airbench94: 48 full batches of 1,024 (of 50,000 images) x 9.9 epochs


# ---------------------------------------------------------------------------------------------
# Specs


def _block(dataset: str, profile: str) -> dict:
    """Per-dataset defaults: data, network and training overrides for one profile."""
    if profile == "smoke":
        if dataset == "cifar10-jpg":
            return dict(dataset=dataset, network="airnet_small", pool="paper", classes=None, pool_limit=400,
                        test_n=300, effort=7, train=dict(steps=12, batch_size=32, tta=0, eval_batch_size=300))
        return dict(dataset=dataset, network="resnet10_64", pool="paper", classes=5, pool_limit=250,
                    test_n=150, effort=7, train=dict(steps=12, batch_size=32, tta=0, eval_batch_size=300))
    # full: step budgets are PROVISIONAL until the validation selection (experiment "select") has
    # run on a GPU. CIFAR-10 takes airbench94's own budget (AIRBENCH_STEPS: 12.2 epochs of the
    # 40,000-image pool, above the 10-epoch floor rule; the quality experiment's doubling check
    # measures what twice as many steps would change); Food-101 the floor rule times 4.
    if dataset == "cifar10-jpg":
        return dict(dataset=dataset, network="airnet", pool="paper", classes=None, pool_limit=None,
                    test_n=None, effort=7, train=dict(steps=AIRBENCH_STEPS))
    return dict(dataset=dataset, network="resnet18_64", pool="paper", classes=None, pool_limit=None,
                test_n=None, effort=7, train=dict(steps=4 * train.steps_for_pool(60_567, 512)))


def default_spec(name: str, profile: str) -> dict:
    """The spec of experiment ``name`` in ``profile`` ("smoke" or "full"), as a fresh dict."""
    check_experiment(name)
    if profile not in ("smoke", "full"):
        raise ValueError(f"experiments have profiles 'smoke' and 'full', not {profile!r}")
    smoke = profile == "smoke"
    cifar, food = _block("cifar10-jpg", profile), _block("food101-64px", profile)
    if name == "grid":
        if smoke:
            return {"datasets": [dict(cifar, ns=[50, 100, 200], distances=[ORIGINAL, 1.0, 4.0, 15.0], seeds=[0, 1])]}
        return {"datasets": [dict(cifar, fractions=PAPER_FRACTIONS, distances=PAPER_FORMATS, seeds=[0, 1]),
                             dict(food, fractions=PAPER_FRACTIONS, distances=PAPER_FORMATS, seeds=[0, 1])]}
    if name == "select":
        if smoke:
            return {"datasets": [dict(cifar, ns=[50, 200], step_multipliers=[1, 2], lr_multipliers=[1.0],
                                      seeds=[0], train=dict(cifar["train"], steps=None), floor_n=40)]}
        return {"datasets": [dict(b, fractions=[0.05, 1.0], step_multipliers=[1, 2, 4, 8],
                                  lr_multipliers=[0.5, 1.0, 2.0], seeds=[0], train=dict(b["train"], steps=None))
                             for b in (cifar, food)]}
    if name == "quality":
        if smoke:
            return {"datasets": [dict(cifar, whole_pool="paper", ns=[50, 200], seeds=[0])]}
        return {"datasets": [dict(cifar, whole_pool="all", fractions=[0.05, 1.0], seeds=[0, 1], doubling_seeds=[0]),
                             dict(food, whole_pool="paper", fractions=[0.05, 1.0], seeds=[0, 1], doubling_seeds=[0])]}
    if name == "cross":
        if smoke:
            return {"datasets": [dict(cifar, n=200, distances=[ORIGINAL, 1.0, 15.0],
                                      test_distances=[ORIGINAL, 1.0, 15.0], seeds=[0])]}
        return {"datasets": [dict(b, fraction=1.0, distances=PAPER_FORMATS, test_distances=PAPER_FORMATS, seeds=[0])
                             for b in (cifar, food)]}
    # budget-type experiments share budgets and allocations (the paper's: budgets = pool size x
    # {800, 1600, 4800, 8000, 12000} B at full resolution; ours are scaled to 32/64 px files).
    if smoke:
        common = dict(cifar, budgets=[40_000, 80_000], allocations=[[40_000, 120], [80_000, 200]],
                      seeds=[0], size_grid_step=0.5)
    else:
        # bytes per pool image at 32 px (CIFAR-10 JPEG ~950 B/image stored, JXL d=15 ~120 B)
        common = dict(cifar, budgets_per_pool_image=[30, 60, 120, 200, 300], allocation="grid_fit",
                      seeds=[0, 1, 2], size_grid_step=0.25)
    if name == "budget":
        return {"datasets": [common]}
    if name == "original":
        return {"datasets": [{k: v for k, v in common.items() if k not in ("allocations", "allocation", "size_grid_step")}]}
    if name == "naive":
        naive = {k: v for k, v in common.items() if k not in ("allocations", "allocation", "size_grid_step")}
        return {"datasets": [dict(naive, distances=[2.0, 8.0] if smoke else [3.0, 8.0, 13.0])]}
    if name == "randomized":
        lo, hi = codecs.STUDY_DISTANCES
        return {"datasets": [dict(common, range_start=lo, range_end=hi, rank_seed=2024, zero_below="auto")]}
    raise AssertionError(name)


def only_datasets(spec: dict, datasets) -> dict:
    """The spec restricted to some datasets (e.g. a GPU session that can carry only CIFAR-10).

    Runs keep their identity, so the full spec later resumes from these rows; a restricted run
    never writes the ``.json`` sidecar of the full table.
    """
    if not datasets:
        return spec
    blocks = [b for b in spec["datasets"] if b["dataset"] in set(datasets)]
    if not blocks:
        raise ValueError(f"none of {list(datasets)} is in this spec (it has "
                         f"{[b['dataset'] for b in spec['datasets']]})")
    return {**spec, "datasets": blocks}


def check_experiment(name: str) -> str:
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose one of {EXPERIMENTS}")
    return name


# The keys a spec may hold: the single list that check_spec, its messages and the docs use. A key
# that build_runs reads from a dataset block must be listed here (test_experiments_cli checks that
# every default spec passes).
SPEC_KEYS = ("datasets",)
COMMON_BLOCK_KEYS = ("dataset", "network", "pool", "classes", "pool_limit", "test_n", "eval_split", "effort",
                     "seeds", "train")
_SIZE_KEYS = ("ns", "fractions")
_BUDGET_KEYS = ("budgets", "budgets_per_pool_image")
_ALLOCATION_KEYS = _BUDGET_KEYS + ("allocations", "allocation", "size_grid_step")
BLOCK_KEYS = {
    "select": _SIZE_KEYS + ("step_multipliers", "lr_multipliers", "floor_n"),
    "grid": _SIZE_KEYS + ("distances",),
    "budget": _ALLOCATION_KEYS,
    "original": _BUDGET_KEYS,
    "naive": _BUDGET_KEYS + ("distances",),
    "randomized": _ALLOCATION_KEYS + ("range_start", "range_end", "rank_seed", "zero_below"),
    "cross": ("n", "fraction", "distances", "test_distances"),
    "quality": _SIZE_KEYS + ("whole_pool", "doubling_seeds"),  # seeds of the step-doubling check
}


def block_keys(name: str) -> tuple[str, ...]:
    """The keys a dataset block of experiment ``name`` may hold."""
    return COMMON_BLOCK_KEYS + BLOCK_KEYS[check_experiment(name)]


def train_keys() -> tuple[str, ...]:
    """The keys of a block's ``train`` overrides: the TrainConfig fields (the network has its own key)."""
    return tuple(f for f in train.TrainConfig.__dataclass_fields__ if f != "network")


def _refuse_unknown(keys, valid, where: str) -> None:
    unknown = sorted(set(keys) - set(valid), key=str)
    if unknown:
        hints = [f"{m[0]!r} for {k!r}" for k in unknown
                 for m in [difflib.get_close_matches(str(k), valid, n=1)] if m]
        hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
        raise ValueError(f"unknown key(s) {unknown} in {where}{hint}; valid keys: {sorted(valid)}")


def check_spec(name: str, spec) -> dict:
    """Refuse a malformed spec before any work: its shape, and every key against the valid ones."""
    check_experiment(name)
    if not isinstance(spec, dict):
        raise ValueError(f"a spec of experiment {name!r} is an object {{\"datasets\": [{{...}}, ...]}}, "
                         f"not a {type(spec).__name__}")
    _refuse_unknown(spec, SPEC_KEYS, f"the spec of experiment {name!r}")
    blocks = spec.get("datasets")
    if not isinstance(blocks, list) or not blocks:
        raise ValueError(f"experiment {name!r} needs a spec with a non-empty 'datasets' list (one object per "
                         "dataset)")
    for i, block in enumerate(blocks):
        where = f"datasets[{i}] of the {name!r} spec"
        if not isinstance(block, dict):
            raise ValueError(f"{where} must be an object with keys such as 'dataset' and 'network', "
                             f"not {block!r}")
        if isinstance(block.get("dataset"), str):
            where = f"datasets[{i}] ({block['dataset']}) of the {name!r} spec"
        _refuse_unknown(block, block_keys(name), where)
        overrides = block.get("train", {})
        if not isinstance(overrides, dict):
            raise ValueError(f"'train' in {where} must be an object of TrainConfig fields, not {overrides!r}")
        _refuse_unknown(overrides, train_keys(), f"'train' of {where} (set the network with the block's "
                        "'network' key)" if "network" in overrides else f"'train' of {where}")
    return spec


def table_params(name: str, profile: str, spec: dict | None = None) -> dict:
    """The parameters a result table is identified by (what ``tables.profile_table`` compares)."""
    return {"experiment": check_experiment(name), "profile": profile,
            "spec": json.loads(canonical(spec if spec is not None else default_spec(name, profile)))}


# ---------------------------------------------------------------------------------------------
# Data: pools, subsets, test sets, pixels (cached per process)


def _compress(images: data.ImageSet, codec: str, setting=None, effort: int = 7):
    from . import store  # imported lazily: the compression stack is needed only when running

    if codec == "original":
        return store.compress(images, codec="original", progress=False)
    return store.compress(images, codec=codec, setting=setting, effort=effort, progress=False)


_DEVICE_EVAL: "OrderedDict[str, tuple]" = OrderedDict()


def _eval_tensors(run: dict, device):
    """Scoring pixels on the device, cached across runs (a few sets at most)."""
    key = canonical({k: run[k] for k in ("dataset", "eval_split", "classes", "test_n", "pool", *EVAL_KEYS)})
    if key not in _DEVICE_EVAL:
        images = data.eval_set(run["dataset"], run["eval_split"], run["classes"], run["test_n"], run["pool"])
        codec = run["test_codec"]
        entry = _compress(images, codec, run["test_distance"], run["effort"])
        x, y = train.to_device(np.asarray(entry.pixels()), images.labels, device)
        _DEVICE_EVAL[key] = (x, y, entry.mean_bytes)
        while len(_DEVICE_EVAL) > 3:
            _DEVICE_EVAL.popitem(last=False)
    return _DEVICE_EVAL[key]


# ---------------------------------------------------------------------------------------------
# Runs


def _base(name: str, block: dict, with_config: bool = True) -> dict:
    """Parameters every run of a dataset block shares, including the full training config."""
    for key in ("dataset", "network"):
        if key not in block:
            raise ValueError(f"experiment {name!r}: each dataset block needs {key!r}")
    data.spec(block["dataset"])  # unknown dataset -> ValueError
    params = {
        "experiment": name, "dataset": block["dataset"], "pool": block.get("pool", "paper"),
        "classes": block.get("classes"), "pool_limit": block.get("pool_limit"), "test_n": block.get("test_n"),
        "eval_split": block.get("eval_split", "test"), "effort": int(block.get("effort", 7)),
        "test_codec": "original", "test_distance": None,
    }
    if with_config:
        params.update(_config_params(train.recipe(block["network"], **block.get("train", {}))))
    return params


def _config_params(config: train.TrainConfig) -> dict:
    """TrainConfig fields for a row; the protocol's unused budget (steps or epochs) is left out:
    the runner records the resolved value as a metric, so every row has both."""
    out = config.params()
    out.pop("steps" if config.protocol == "fixed_epochs" else "epochs")
    return out


def _ns(block: dict, pool_size: int, key_list="ns", key_frac="fractions") -> list[int]:
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


def _check_distance(d, what="distance") -> float:
    d = float(d)
    if not 0 < d <= 25:
        raise ValueError(f"{what} {d} must be a JPEG XL distance in (0, 25]")
    return d


def _format(d, what="distance") -> dict:
    """``codec`` and ``distance`` of a run for one entry of a distance list (None: the original)."""
    if d is ORIGINAL:
        return {"codec": "original", "distance": None}
    return {"codec": "jxl", "distance": _check_distance(d, what)}


def _allocations(block: dict, the_pool: data.ImageSet) -> list[tuple[float, int, dict]]:
    """(budget bytes, n, extra params) triples: explicit pairs, or n*(s) of a law.

    With a law (``allocation``: "grid_fit" = the paper-style fit of our grid results, or a dict
    of A, alpha, B, beta[, E]), n*(s) is rounded and capped at the pool size and at the number of
    images that fit at the largest distance (mean bytes of the pool at d = 15, plus 1 %); the
    uncapped n* and whether a cap applied are recorded in the run's parameters.
    """
    pool_size = len(the_pool)
    if "allocations" in block:
        pairs = [(float(s), int(n), {}) for s, n in block["allocations"]]
    else:
        budgets_ = _budgets(block, pool_size)
        law_params = block.get("allocation", "grid_fit")
        law_params = _law_for(block["dataset"]) if law_params == "grid_fit" else law_params
        from . import law

        fitted = law.LawParams(**law_params) if isinstance(law_params, dict) else law_params
        smallest = _compress(the_pool, "jxl", codecs.STUDY_DISTANCES[1], int(block.get("effort", 7))).mean_bytes
        pairs = []
        for s in budgets_:
            n_star = float(fitted.n_star(s))
            n = int(min(pool_size, round(n_star), s // (1.01 * smallest)))
            pairs.append((s, n, {"n_star": round(n_star, 1), "allocation_capped": n < round(n_star)}))
    for s, n, _ in pairs:
        if not 1 <= n <= pool_size:
            raise ValueError(f"allocation n={n} for budget {s:,.0f} B is larger than the pool ({pool_size}) "
                             f"of {block['dataset']!r}")
        if s <= 0:
            raise ValueError(f"budget {s} must be positive (bytes)")
    return pairs


def _budgets(block: dict, pool_size: int) -> list[float]:
    if "budgets" in block:
        out = [float(s) for s in block["budgets"]]
    elif "budgets_per_pool_image" in block:
        out = [float(b) * pool_size for b in block["budgets_per_pool_image"]]
    else:
        raise ValueError("a budget experiment needs 'budgets' (bytes) or 'budgets_per_pool_image'")
    if any(s <= 0 for s in out):
        raise ValueError(f"budgets must be positive, got {out}")
    return out


def _law_for(dataset: str) -> dict:
    """The paper-style law fit (no floor) of our grid results for ``dataset`` (needs the grid CSV)."""
    from . import law

    path = paths.results_dir() / f"{RESULT_FILES['grid']}.csv"
    if not path.is_file():
        raise ValueError(f"allocation 'grid_fit' needs our grid results {path}: run the grid experiment "
                         "first, or give explicit 'allocations' [[budget, n], ...] or law parameters")
    rows = pd.read_csv(path)
    rows = rows[rows["dataset"] == dataset]
    if rows.empty:
        raise ValueError(f"{path} has no rows for {dataset!r}; run the grid for it first")
    fit = law.fit_paper(rows, with_floor=False, metric="error")
    return fit.params.as_dict()


def build_runs(name: str, spec: dict) -> list[dict]:
    """Expand a spec into its runs (plain dicts). Raises ValueError for any bad input."""
    check_spec(name, spec)
    runs: list[dict] = []
    for block in spec["datasets"]:
        base = _base(name, block, with_config=name != "select")
        the_pool = data.pool(block["dataset"], base["pool"], base["classes"], base["pool_limit"])
        size = len(the_pool)
        seeds = [int(s) for s in block.get("seeds", [0])]
        if name == "grid":  # seed outermost: an interrupted grid has whole seeds, not ragged cells
            for seed in seeds:
                for n in _ns(block, size):
                    for d in block["distances"]:
                        runs.append({**base, "n": n, **_format(d), "budget": None, "seed": seed})
        elif name == "select":
            ns = _ns(block, size)
            overrides = {k: v for k, v in block.get("train", {}).items() if k not in ("steps", "epochs")}
            reference = train.recipe(block["network"], steps=1, **overrides)
            floor = train.steps_for_pool(int(block.get("floor_n", max(ns))), reference.batch_size)
            base = _base(name, block, with_config=False)
            for mult in block["step_multipliers"]:
                for lm in block["lr_multipliers"]:
                    cfg = train.recipe(block["network"], **{**overrides, "steps": int(floor * mult),
                                                           "lr": reference.lr * float(lm)})
                    for n in ns:
                        for seed in seeds:
                            runs.append({**base, **_config_params(cfg), "eval_split": "val", "n": n,
                                         "codec": "original", "distance": None, "budget": None, "seed": seed,
                                         "step_multiplier": mult, "lr_multiplier": float(lm)})
        elif name == "quality":
            whole = data.pool(block["dataset"], block.get("whole_pool", base["pool"]), base["classes"], base["pool_limit"])
            if base["protocol"] != "fixed_steps":
                raise ValueError("the quality experiment doubles a fixed step budget: use protocol 'fixed_steps'")
            steps = int(base["steps"])
            for seed in seeds:
                runs.append({**base, "pool": block.get("whole_pool", base["pool"]), "check": "whole_pool",
                             "n": len(whole), "codec": "original", "distance": None, "budget": None, "seed": seed})
            for n in _ns(block, size):
                for s in (steps, 2 * steps):
                    for seed in [int(s_) for s_ in block.get("doubling_seeds", seeds)]:
                        runs.append({**base, "steps": s, "check": "doubling", "n": n, "codec": "original",
                                     "distance": None, "budget": None, "seed": seed})
        elif name == "cross":
            n = int(block["n"]) if "n" in block else max(1, int(block.get("fraction", 1.0) * size))
            _ns({"ns": [n], "dataset": block["dataset"]}, size)
            for d in block["distances"]:
                for seed in seeds:
                    for dt in block["test_distances"]:
                        test = _format(dt, "test distance")
                        runs.append({**base, "n": n, **_format(d), "budget": None, "seed": seed,
                                     "test_codec": test["codec"], "test_distance": test["distance"]})
        elif name in ("budget", "randomized"):
            step = float(block.get("size_grid_step", 0.25))
            extra = {"size_grid_step": step}
            if name == "randomized":
                lo = float(block.get("range_start", codecs.STUDY_DISTANCES[0]))
                hi = float(block.get("range_end", codecs.STUDY_DISTANCES[1]))
                if not codecs.STUDY_DISTANCES[0] <= lo < hi <= codecs.STUDY_DISTANCES[1]:
                    raise ValueError(f"randomized range [{lo}, {hi}] must lie in {list(codecs.STUDY_DISTANCES)} with start < end")
                zb = block.get("zero_below", "auto")
                if not (zb is None or zb == "auto" or isinstance(zb, (int, float))):
                    raise ValueError(f"zero_below must be None, 'auto' or a distance, got {zb!r}")
                extra.update(range_start=lo, range_end=hi, rank_seed=int(block.get("rank_seed", 2024)), zero_below=zb)
            for s, n, alloc in _allocations(block, the_pool):
                for seed in seeds:
                    runs.append({**base, **extra, **alloc, "budget": s, "n": n, "codec": "jxl", "seed": seed})
        elif name == "original":
            for s in _budgets(block, size):
                for seed in seeds:
                    runs.append({**base, "budget": s, "codec": "original", "seed": seed})
        elif name == "naive":
            for s in _budgets(block, size):
                for d in block["distances"]:
                    for seed in seeds:
                        runs.append({**base, "budget": s, "codec": "jxl", "distance": _check_distance(d), "seed": seed})
    keys = [run_key(r) for r in runs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"experiment {name!r}: the spec lists the same run twice")
    return runs


# ---------------------------------------------------------------------------------------------
# Planning: everything that needs sizes, checked before any training starts


def _subset_indices(run: dict, the_pool: data.ImageSet) -> np.ndarray:
    return data.nested_subset(the_pool.labels, int(run["n"]), int(run["seed"]))


def _size_grid(step: float) -> np.ndarray:
    """The study's distance range in ``step`` (its end always included, so the whole range is covered)."""
    if not 0 < step <= 7.25:
        raise ValueError(f"size_grid_step must be in (0, 7.25], got {step}")
    grid = np.round(np.arange(codecs.STUDY_DISTANCES[0], codecs.STUDY_DISTANCES[1] + 1e-9, step), 6)
    return grid if grid[-1] == codecs.STUDY_DISTANCES[1] else np.append(grid, codecs.STUDY_DISTANCES[1])


def plan(run: dict) -> dict:
    """Resolve which images (and at which distances) a run trains on; raise ValueError if impossible.

    Cheap for grid-like runs; budget-type runs read (and cache) the per-image size tables here,
    so an infeasible budget fails before any training.
    """
    from . import store

    exp = run["experiment"]
    the_pool = data.pool(run["dataset"], run["pool"], run["classes"], run["pool_limit"])
    if exp in ("grid", "cross", "select", "quality"):
        return {"pool": the_pool, "indices": _subset_indices(run, the_pool)}
    if exp == "original":
        order = data.nested_order(the_pool.labels, int(run["seed"]))
        pre = budgets.largest_prefix(the_pool.stored_bytes[order], run["budget"],
                                     what=f"stored originals of {run['dataset']!r}")
        return {"pool": the_pool, "indices": np.sort(order[: pre.n]), "prefix": pre}
    if exp == "naive":
        order = data.nested_order(the_pool.labels, int(run["seed"]))
        entry = _compress(the_pool, "jxl", run["distance"], run["effort"])
        pre = budgets.largest_prefix(entry.sizes[order], run["budget"],
                                     what=f"images of {run['dataset']!r} at d={run['distance']}")
        return {"pool": the_pool, "indices": np.sort(order[: pre.n]), "prefix": pre, "entry": entry}
    # budget / randomized: the subset's size table, then a feasibility check at the far end
    idx = _subset_indices(run, the_pool)
    subset = the_pool.subset(idx)
    sizes, grid = store.size_table(subset, distances=_size_grid(run["size_grid_step"]), effort=run["effort"],
                                   progress=False)
    out = {"pool": the_pool, "indices": idx, "subset": subset, "sizes": sizes, "grid": grid}
    if exp == "budget":
        budgets.distance_for_budget(sizes, grid, run["budget"])  # raises when even d=15 is too big
    else:
        out["original_sizes"] = subset.stored_bytes
        zb = run["zero_below"]
        out["zero_below"] = budgets.zero_gain_distance(sizes, grid, out["original_sizes"]) if zb == "auto" else zb
        out["ranks"] = budgets.permutation_ranks(len(subset), run["rank_seed"])
        budgets.randomized_range_for_budget(sizes, grid, run["budget"], out["ranks"],
                                            (run["range_start"], run["range_end"]), out["zero_below"],
                                            out["original_sizes"])
    return out


# ---------------------------------------------------------------------------------------------
# Execution


def _training_set(run: dict, p: dict) -> tuple[np.ndarray, np.ndarray, dict]:
    """Pixels, labels and storage metrics of the images a run trains on."""
    exp, the_pool, idx = run["experiment"], p["pool"], p["indices"]
    labels = the_pool.labels[idx]
    if exp in ("grid", "cross"):
        entry = _compress(the_pool, run["codec"], run["distance"], run["effort"])
        sizes = entry.sizes[idx]  # the original format counts the stored file, as chapter 1 does
        return np.asarray(entry.pixels()[idx]), labels, _storage(sizes)
    if exp in ("select", "quality", "original"):
        entry = _compress(the_pool, "original")
        sizes = the_pool.stored_bytes[idx]
        out = _storage(sizes, run.get("budget"))
        if exp == "original":
            out.update(n=len(idx), pool_exhausted=p["prefix"].pool_exhausted)
        return np.asarray(entry.pixels()[idx]), labels, out
    if exp == "naive":
        entry = p["entry"]
        out = _storage(entry.sizes[idx], run["budget"])
        out.update(n=len(idx), pool_exhausted=p["prefix"].pool_exhausted)
        return np.asarray(entry.pixels()[idx]), labels, out
    subset, sizes, grid = p["subset"], p["sizes"], p["grid"]
    if exp == "budget":
        fit = budgets.fit_real_bytes(
            lambda t: budgets.distance_for_budget(sizes, grid, t),
            lambda d: _compress(subset, "jxl", float(d), run["effort"]).total_bytes, run["budget"])
        entry = _compress(subset, "jxl", float(fit.candidate), run["effort"])
        out = _storage(entry.sizes, run["budget"])
        out.update(distance=float(fit.candidate), within_tolerance=fit.within_tolerance, encodes=fit.encodes)
        return np.asarray(entry.pixels()), subset.labels, out

    # randomized
    original = p["original_sizes"]
    d_range = (run["range_start"], run["range_end"])

    def search(target):
        return budgets.randomized_range_for_budget(sizes, grid, target, p["ranks"], d_range, p["zero_below"], original)

    def encode(f):
        lossy = f.distances > 0
        total = int(original[~lossy].sum())
        if lossy.any():
            total += _compress(subset.subset(np.flatnonzero(lossy)), "jxl", f.distances[lossy], run["effort"]).total_bytes
        return total

    fit = budgets.fit_real_bytes(search, encode, run["budget"])
    f = fit.candidate
    lossy = f.distances > 0
    parts = []  # (positions, pixels, sizes) of the compressed and the kept-original images
    if lossy.any():
        e = _compress(subset.subset(np.flatnonzero(lossy)), "jxl", f.distances[lossy], run["effort"])
        parts.append((np.flatnonzero(lossy), np.asarray(e.pixels()), e.sizes))
    if (~lossy).any():
        e = _compress(subset.subset(np.flatnonzero(~lossy)), "original")
        parts.append((np.flatnonzero(~lossy), np.asarray(e.pixels()), e.sizes))
    pixels = np.empty((len(subset),) + parts[0][1].shape[1:], dtype=np.uint8)
    per_image = np.empty(len(subset), dtype=np.int64)
    for where, px, sz in parts:
        pixels[where], per_image[where] = px, sz
    out = _storage(per_image, run["budget"])
    out.update(d_min=f.d_min, d_max=f.d_max, moved=f.moved, mean_distance=float(f.distances.mean()),
               n_kept_original=int((~lossy).sum()), zero_below_used=p["zero_below"],
               within_tolerance=fit.within_tolerance, encodes=fit.encodes)
    return pixels, subset.labels, out


def _storage(sizes, budget=None) -> dict:
    sizes = np.asarray(sizes, dtype=np.int64)
    out = {"mean_bytes": float(sizes.mean()), "total_bytes": int(sizes.sum())}
    if budget is not None:
        out["budget_fill"] = float(sizes.sum() / budget)
    return out


def _config_from(run: dict) -> train.TrainConfig:
    fields = train.TrainConfig.__dataclass_fields__
    return train.TrainConfig(**{k: run[k] for k in fields if k in run}).validate()


def execute_group(runs: list[dict], device=None):
    """Train once for a group of runs that differ only in their scoring set; yield (run, metrics)."""
    head = runs[0]
    p = plan(head)
    pixels, labels, storage = _training_set(head, p)
    config = _config_from(head)
    k = data.num_classes(head["dataset"], head["classes"])
    result = train.train(pixels, labels, config=config, seed=int(head["seed"]), num_classes=k, device=device,
                         keep_model=True)
    budget_metrics = {"steps": result.steps} if config.protocol == "fixed_epochs" else {"epochs": result.epochs}
    for run in runs:
        x, y, test_mean_bytes = _eval_tensors(run, result.trained.device)
        scores = result.trained.evaluate(x, y)
        metrics = {**storage, **scores, **budget_metrics, "n_train": result.n_train, "n_test": len(y),
                   "test_mean_bytes": test_mean_bytes,
                   "train_seconds": result.train_seconds, "images_per_second": result.images_per_second,
                   "final_loss": result.final_loss}
        yield run, {k: v for k, v in metrics.items() if k not in run}


def _group(runs: list[dict]) -> list[list[dict]]:
    groups: "OrderedDict[str, list[dict]]" = OrderedDict()
    for r in runs:
        groups.setdefault(canonical({k: v for k, v in r.items() if k not in EVAL_KEYS}), []).append(r)
    return list(groups.values())


SMOKE_RESULTS = "smoke-results"  # folder of the cache holding smoke tables


def default_results_path(name: str, profile: str) -> Path:
    """Where a run without an explicit path writes: ``results/<file>.csv`` for ``full``; for
    ``smoke``, ``<cache>/smoke-results/<file>.csv``, one stable place so that a re-run resumes
    (rows are keyed by their parameters, so smoke specs of any size share the file safely)."""
    file = f"{RESULT_FILES[check_experiment(name)]}.csv"
    if profile == "full":
        return paths.results_dir() / file
    if profile == "smoke":
        return paths.cache_dir() / SMOKE_RESULTS / file
    raise ValueError(f"experiments have profiles 'smoke' and 'full', not {profile!r}")


def run_experiment(name: str, profile: str = "smoke", results_path=None, spec: dict | None = None,
                   progress: bool = True, device=None, write_sidecar: bool | None = None,
                   allow_cpu: bool = False, deadline: float | None = None) -> pd.DataFrame:
    """Run (or resume) experiment ``name``; return its rows (one per run, provenance included).

    Every run of the spec is built and checked first (bad input -> ValueError before any
    training); runs already in ``results_path`` are skipped; each finished run is appended at once.
    ``deadline`` (a ``time.monotonic()`` value) stops before a training that would not finish in
    time, judged by the longest one so far: a time-boxed GPU session keeps whole runs only.
    With ``profile="full"`` and every run done, a ``.json`` sidecar (the spec, code version, device,
    duration) is written beside the CSV so the book's ``publish`` profile can load the table.
    """
    check_experiment(name)
    spec = copy.deepcopy(spec) if spec is not None else default_spec(name, profile)
    runs = build_runs(name, spec)
    path = Path(results_path) if results_path is not None else default_results_path(name, profile)
    store = ResultsStore(path)
    pending = store.pending(runs)
    if pending and profile == "full" and not allow_cpu:
        import torch

        wanted = torch.device(device) if device is not None else train.default_device()
        if wanted.type != "cuda":
            raise ValueError(f"experiment {name!r} has {len(pending)} full-size runs left to train and no GPU is "
                             "available; run it on a GPU host (python -m storage_scaling.experiments "
                             f"{name} --profile full), use --profile smoke, or add --allow-cpu to train on "
                             "this CPU anyway (very slow; allow_cpu=True from Python)")
    plans_checked = set()
    for r in pending:  # feasibility (sizes, budgets) before any training
        key = canonical({k: v for k, v in r.items() if k not in EVAL_KEYS})
        if key not in plans_checked:
            plan(r)
            plans_checked.add(key)
    start = time.perf_counter()
    bar = _progress(total=len(runs), initial=len(runs) - len(pending), desc=name, enabled=progress)
    longest = 0.0
    try:
        for group in _group(pending):
            began = time.monotonic()
            if deadline is not None and began + longest > deadline:
                print(f"{name}: stopping at the deadline with {bar.total - bar.n} runs left (a re-run resumes)")
                break
            for run, metrics in execute_group(group, device=device):
                if not store.has(run):  # another process may have finished it meanwhile
                    store.append(run, metrics)
                bar.update(1)
            longest = max(longest, time.monotonic() - began)
    finally:
        bar.close()
    frame = rows_for(store, runs)
    done = len(frame) == len(runs)
    if write_sidecar if write_sidecar is not None else (profile == "full" and done):
        tables.write_table(path.stem, store.frame(), table_params(name, profile, spec),
                           time.perf_counter() - start, results_dir=path.parent)
    return frame


PARTIAL_OK = ("select", "grid", "quality", "cross", "original", "naive")  # runs cheap to list


def committed_rows(name: str, results_dir: Path | None = None) -> tuple[pd.DataFrame, dict] | None:
    """The committed rows of an unfinished full-size table, for ``tables.profile_table(partial=)``.

    Only rows that are runs of today's full spec count (a stale row of an older spec does not),
    with how many runs the spec has. Budget-type experiments are left out: listing their runs
    needs the size tables of the whole pool.
    """
    check_experiment(name)
    path = Path(results_dir or paths.results_dir()) / f"{RESULT_FILES[name]}.csv"
    if name not in PARTIAL_OK or not path.is_file():
        return None
    runs = build_runs(name, default_spec(name, "full"))
    frame = rows_for(ResultsStore(path), runs)
    if frame.empty:
        return None
    return frame, {"done": len(frame), "total": len(runs), "devices": sorted(set(frame["device"].astype(str))),
                   "code_versions": sorted(set(frame["code_version"].astype(str)))}


def rows_for(store: ResultsStore, runs: list[dict]) -> pd.DataFrame:
    frame = store.frame()
    if frame.empty:
        return frame
    keys = [run_key(r) for r in runs]
    frame = frame[frame["run_key"].astype(str).isin(set(keys))]
    return frame.reset_index(drop=True)


def run_table(params: dict, progress: bool = False) -> pd.DataFrame:
    """``compute`` for ``tables.profile_table``: ``params`` from :func:`table_params`.

    Writes to :func:`default_results_path` (``full``: ``results/``; ``smoke``: the cache); both resume.
    """
    name, profile = params["experiment"], params["profile"]
    path = default_results_path(name, profile)
    return run_experiment(name, profile, results_path=path, spec=params["spec"], progress=progress,
                          write_sidecar=False)


def _progress(total: int, initial: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, disable=not enabled, unit="run")


# ---------------------------------------------------------------------------------------------
# Command line


PROG = "python -m storage_scaling.experiments"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Run (or resume) a training experiment.",
        epilog="Bad input (a spec key that does not exist, n larger than the pool, an unknown network or "
               "dataset) is reported in one line on stderr with exit status 2 before any run starts.")
    parser.add_argument("name", choices=EXPERIMENTS + ("all",))
    parser.add_argument("--profile", default="smoke", choices=("smoke", "full"))
    parser.add_argument("--results", default=None,
                        help="CSV to write (default: results/<file>.csv for --profile full; "
                             f"<cache>/{SMOKE_RESULTS}/<file>.csv for smoke, <cache> being ${paths.CACHE_ENV} "
                             "or .cache/ in the checkout). Finished runs are kept there, so a re-run resumes; "
                             "delete the file to start over")
    parser.add_argument("--spec", default=None,
                        help="a JSON file with the spec (default: the profile's; see --show-spec). Unknown "
                             "keys are refused with the list of valid ones")
    parser.add_argument("--show-spec", action="store_true", help="print the spec and the number of runs, then exit")
    parser.add_argument("--allow-cpu", action="store_true", help="let the full profile train on a CPU (very slow)")
    parser.add_argument("--datasets", nargs="+", default=None,
                        help="run only these datasets of the spec (no .json sidecar is written then)")
    parser.add_argument(errors.DEBUG_FLAG, action="store_true", help="show the traceback of an error")
    return parser


def read_spec(path: str | Path):
    """A spec from a JSON file; a missing file or malformed JSON is one clear error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--spec {path}: no such file; give a JSON file holding a spec "
                                f"(print the default one with: {PROG} <experiment> --show-spec)")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        detail = f"{exc.msg} at line {exc.lineno}, column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else exc
        raise ValueError(f"--spec {path} is not valid JSON ({detail}); fix the file") from exc


def _main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    names = EXPERIMENTS if args.name == "all" else (args.name,)
    if args.results and len(names) > 1:
        raise ValueError("--results names one CSV, but 'all' writes each experiment to its own file; "
                         "leave out --results, or run one experiment at a time")
    specs = {}
    for name in names:  # every spec is read and its keys checked before any experiment starts
        spec = check_spec(name, read_spec(args.spec) if args.spec else default_spec(name, args.profile))
        specs[name] = (spec, only_datasets(spec, args.datasets))
    for name in names:
        spec, restricted = specs[name]
        if args.show_spec:
            print(name, json.dumps(restricted, indent=1), f"-> {len(build_runs(name, restricted))} runs")
            continue
        frame = run_experiment(name, args.profile, results_path=args.results, spec=restricted,
                               allow_cpu=args.allow_cpu, write_sidecar=False if restricted is not spec else None)
        path = Path(args.results) if args.results else default_results_path(name, args.profile)
        print(f"{name}: {len(frame)} rows in {path} (a re-run resumes there)")
        show = [c for c in ("dataset", "n", "distance", "budget", "seed", "mean_bytes", "error") if c in frame]
        print(frame[show].to_string(index=False))
    return 0


def main(argv=None) -> int:
    """The command line; bad input -> one line on stderr and exit status 2 (``--debug``: traceback)."""
    return errors.run_main(_main, argv, PROG)


if __name__ == "__main__":
    sys.exit(main())

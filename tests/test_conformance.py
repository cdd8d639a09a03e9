"""The conformance suite: every registered model and every experiment kind, end to end from a spec
to rows, on images this test makes (no ``../shared/data``), in the spirit of scikit-learn's
``check_estimator``.

For each case it checks what every model and experiment owes the runner:
- the rows pass the declared schema (``results_integrity``) and carry the run's parameters;
- resume: a re-run appends nothing, and a table cut back to its first row is completed without
  redoing that row;
- determinism: the same spec under the same seeds gives the same scores in a second table;
- bad knobs (an unknown ``train`` setting, a value of the wrong type) are refused before any work.

A model registered in ``learn.learners`` or an experiment registered in ``experiments.kinds`` is
checked the day it is added: a kind without a case below fails :func:`test_every_kind_has_a_case`.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from synthetic_images import (forget_packs, scenes, use_pack, use_segmentation_pack, write_pack,
                              write_segmentation_pack)
from storage_scaling.experiments import kinds, runner, specs
from storage_scaling.learn import learners
from storage_scaling.results import ResultsStore
from storage_scaling.results_integrity import check_table, declared_columns

PHOTOS = ("astronaut", "coffee", "chelsea")  # one class per photo: crops of it
TRAIN, TEST = 200, 60  # images per split (the paper pool keeps 80 % of train: 160)


def _crops(photo: np.ndarray, size: int, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Random square crops of ``photo`` (a quarter to a half of its short side), resized to ``size``."""
    from PIL import Image

    h, w = photo.shape[:2]
    out = []
    for _ in range(count):
        side = int(rng.integers(min(h, w) // 4, min(h, w) // 2))
        y, x = int(rng.integers(0, h - side)), int(rng.integers(0, w - side))
        crop = Image.fromarray(np.ascontiguousarray(photo[y:y + side, x:x + side, :3]))
        out.append(np.asarray(crop.resize((size, size), Image.Resampling.LANCZOS)))
    return out


def write_synthetic_pack(root, name: str, size: int, seed: int = 0) -> None:
    """A data pack like the offline ones: JPEG crops of scikit-image's photos, one class per photo."""
    import skimage.data

    rng = np.random.default_rng(seed)
    splits = {}
    for split, count in (("train", TRAIN), ("test", TEST)):
        labels = rng.permutation(np.arange(count) % len(PHOTOS))
        splits[split] = ([_crops(getattr(skimage.data, PHOTOS[label])(), size, 1, rng)[0] for label in labels], labels)
    write_pack(root, name, splits, PHOTOS)


SYNTH = "synthetic-32px"  # every classifier takes it: the 64 px networks pool globally, and 32 px is 4x cheaper
SYNTH_SEG = "synthetic-scenes"  # the segmentation models': 64 x 48 scenes with train, val and test splits


@pytest.fixture(scope="module", autouse=True)
def synthetic_world(tmp_path_factory):
    """A synthetic 32 px dataset registered beside the real ones, in a data root, cache and results
    folder of this module's own."""
    root = tmp_path_factory.mktemp("data")
    mp = pytest.MonkeyPatch()
    write_synthetic_pack(root, SYNTH, 32)
    write_segmentation_pack(root, SYNTH_SEG, {"train": scenes(40, 0), "val": scenes(12, 1), "test": scenes(12, 2)})
    use_pack(mp, root, SYNTH, "test crops, 32 px", tmp_path_factory.mktemp("cache"), tmp_path_factory.mktemp("results"))
    use_segmentation_pack(mp, SYNTH_SEG, "test scenes, 64 x 48 PNG")
    yield root
    mp.undo()
    forget_packs()


# ---------------------------------------------------------------------------------------------
# The cases: tiny settings per model, and per experiment kind a block of its own keys


def tiny_train(model: str) -> dict:
    """Settings that make a model train in about a second on the synthetic images."""
    if model == "probe":
        return {"centroids": 8, "kmeans_samples": 2000, "kmeans_iters": 2, "penalty_per_decade": 1}
    if model == "pretrained":  # 32 px inputs: the backbone ends on a 1 x 1 map
        return {"input_size": 32, "penalty_per_decade": 1}
    if model == "segmenter":  # 64 x 48 scenes at 1x: a 2 x 2 map at stride 32
        return {"scale": 1.0, "epochs": 2, "width": 8, "feature_batch": 16}
    return {"steps": 2, "batch_size": 16, "tta": 0, "eval_batch_size": 64}


KIND_BLOCKS = {  # the experiment's own keys at the synthetic pool's size (160 images, about 1 kB each)
    "grid": {"ns": [20, 60], "distances": ["original", 4.0]},
    "select": {"ns": [40], "step_multipliers": [1, 2], "lr_multipliers": [1.0], "floor_n": 20},
    "quality": {"ns": [40], "whole_pool": "paper"},
    "cross": {"n": 60, "distances": ["original", 4.0], "test_distances": ["original", 4.0]},
    "original": {"budgets": [30000, 60000]},
    "naive": {"budgets": [30000, 60000], "distances": [2.0, 8.0]},
    "budget": {"budgets": [30000, 60000], "allocations": [[30000, 40], [60000, 80]], "size_grid_step": 2.0},
    "randomized": {"budgets": [30000, 60000], "allocations": [[30000, 40], [60000, 80]], "size_grid_step": 2.0,
                   "range_start": 0.5, "range_end": 15.0, "rank_seed": 2024, "zero_below": "auto"},
    "blog": {"budget_distance": 10.0, "distances": ["original", 4.0, 10.0]},
    "jpeg_dl": {"attack_n": 20, "attacks": ["fgsm"], "attack_modes": ["soft", "bpda"], "eps_255": [4],
                "pgd_steps": 2, "attack_batch": 20},
}


MODEL_BLOCK = {"ns": [20], "distances": ["original", 15.0], "test_n": 20}  # a model's case: two grid runs


def block(kind: str, model: str, **extra) -> dict:
    dataset = SYNTH_SEG if learners.get(model).task == "segmentation" else SYNTH
    return {"dataset": dataset, "model": model, "pool": "paper", "test_n": 40, "effort": 3, "seeds": [0],
            **copy.deepcopy(KIND_BLOCKS[kind]), "train": tiny_train(model), **extra}


def needs(model: str) -> list:
    """What a model's case needs beyond this file: the pretrained backbone's weights package."""
    if model not in ("pretrained", "segmenter"):
        return []
    from storage_scaling.learn import pretrained

    reason = f"needs the package {pretrained.PACKAGE} (`{pretrained.INSTALL}`)"
    return [pytest.mark.skipif(not pretrained.installed(), reason=reason)]


CASES = ([pytest.param(kind, "airnet_small", {}, id=f"kind-{kind}") for kind in KIND_BLOCKS]
         + [pytest.param("grid", model, MODEL_BLOCK, id=f"model-{model}", marks=needs(model))
            for model in learners.registry() if model != "airnet_small"])


def test_every_kind_has_a_case():
    assert set(KIND_BLOCKS) == set(kinds.EXPERIMENTS), "add a block for the new experiment kind to KIND_BLOCKS"


def test_every_model_has_a_case():
    assert {model for kind, model, _ in (c.values for c in CASES)} == set(learners.registry())


SCORES = ("error", "accuracy")
VOLATILE = ("train_seconds", "eval_seconds", "feature_seconds", "fit_seconds", "dictionary_seconds",
            "images_per_second", "finished_at", "code_version", "device")


def run(kind: str, spec: dict, table) -> pd.DataFrame:
    return runner.run_experiment(kind, "smoke", results_path=table, spec=spec, progress=False)


@pytest.mark.parametrize("kind,model,extra", CASES)
def test_conformance(kind, model, extra, tmp_path):
    spec = {"datasets": [block(kind, model, **extra)]}
    table = tmp_path / "first.csv"
    rows = run(kind, spec, table)
    assert len(rows) == len(specs.build_runs(kind, spec)) > 0

    # the schema: every declared column, each value of its kind; the parameters in every row
    assert check_table(table).ok
    missing = set(declared_columns(kind)) - set(rows.columns)
    assert not missing, f"rows of {kind!r} lack declared columns {sorted(missing)}"
    assert (rows["experiment"] == kind).all() and (rows["model"] == model).all()
    assert rows["error"].between(0, 1).all() and np.allclose(rows["error"] + rows["accuracy"], 1)

    # resume: nothing to do, then a table cut back to its first row is completed around it
    again = run(kind, spec, table)
    assert len(ResultsStore(table).frame()) == len(rows) and set(again["run_key"]) == set(rows["run_key"])
    if len(rows) > 1:
        lines = table.read_text().splitlines(keepends=True)
        table.write_text("".join(lines[:2]))
        run(kind, spec, table)
        after = ResultsStore(table).frame().set_index("run_key")
        assert set(after.index) == set(rows["run_key"])
        first = rows.iloc[0]
        assert after.loc[first["run_key"], "finished_at"] == first["finished_at"]  # kept, not redone

    # determinism: a second table from the same spec and seeds has the same scores
    second = run(kind, spec, tmp_path / "second.csv").set_index("run_key").sort_index()
    first = rows.set_index("run_key").sort_index()
    pd.testing.assert_frame_equal(first[list(SCORES)], second[list(SCORES)])


@pytest.mark.parametrize("model", list(learners.registry()))
@pytest.mark.parametrize("bad,message", [({"no_such_knob": 1}, "unknown key"),
                                         ({"seed": "zero"}, "must be")])
def test_bad_knobs_are_refused_before_any_work(model, bad, message, tmp_path):
    if "seed" in bad and "seed" not in learners.get(model).override_keys():
        bad = {next(iter(k for k in learners.get(model).override_keys() if k not in ("network",))): "zero"}
    spec = {"datasets": [block("grid", model, **MODEL_BLOCK, train={**tiny_train(model), **bad})]}
    table = tmp_path / "never.csv"
    with pytest.raises(ValueError, match=message):
        run("grid", spec, table)
    assert not table.exists() and not any(tmp_path.iterdir())


@pytest.mark.parametrize("model,dataset", [("segmenter", SYNTH), ("probe", SYNTH_SEG)])
def test_a_model_of_another_task_than_its_dataset_is_refused_before_any_work(model, dataset, tmp_path):
    spec = {"datasets": [{**block("grid", model, **MODEL_BLOCK), "dataset": dataset}]}
    with pytest.raises(ValueError, match=rf"model '{model}' learns \w+, and dataset '{dataset}' is a"):
        run("grid", spec, tmp_path / "never.csv")
    assert not any(tmp_path.iterdir())


def test_a_budget_plan_pickles_without_its_images_and_searches_the_same_after():
    """A plan is sent to a cluster's worker: its lazily filled size table leaves the images behind
    (the worker rebuilds them from the run) and answers the budget search as before."""
    import pickle

    from storage_scaling.compress import budget as budgets

    run = specs.build_runs("budget", {"datasets": [block("budget", "airnet_small")]})[0]
    plan = kinds.get("budget").plan(run)
    images_bytes = sum(len(b) for b in plan["sizes"].images().encoded)
    blob = pickle.dumps(plan)
    assert len(blob) < images_bytes / 2
    sent = pickle.loads(blob)
    assert sent["sizes"].imageset is None
    for target in (0.9 * run["budget"], run["budget"]):
        assert (budgets.distance_for_budget(sent["sizes"], sent["grid"], target)
                == budgets.distance_for_budget(plan["sizes"], plan["grid"], target))
    assert sent["sizes"].encoded == plan["sizes"].encoded  # the sizes known travel with the plan
    row, col = np.argwhere(sent["sizes"].values == 0)[0]  # one the search never read: the worker encodes it
    assert sent["sizes"].take(row, col) == plan["sizes"].take(row, col) and sent["sizes"].imageset is not None

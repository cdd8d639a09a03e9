"""Chapter 11's predicted scenes: what the grid's whole-pool segmenters see at a few distances.

The grid keeps its whole-pool models (:mod:`.kept`). This step loads one seed's model at each
distance and predicts the labels of one test scene stored at that same distance (the paper's
matched train/test format). The masks are small (a few 240 x 180 uint8 arrays), so they are
committed with their provenance (``results/segmentation_scenes.npz`` and ``.json``) and the book
draws the figure without the models, which live only in the cache of the machine that ran the grid.
The scene's pixels are not stored: JPEG XL is deterministic, so the notebook encodes the scene again.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from .. import atomic, data, provenance
from ..compress import codecs
from . import kept, kinds, runner, specs

NAME = "segmentation_scenes"
FORMAT = 1


def richest_scene(images: data.ImageSet) -> int:
    """The index of the scene of ``images`` showing the most classes (void aside; the first of
    ties): the figure then shows as many classes as one scene can."""
    void = data.spec(images.dataset).void_label
    counts = [len(set(np.unique(m).tolist()) - {void}) for m in data.masks_of(images.dataset, images.ids)]
    return int(np.argmax(counts))


def grid_runs(dataset: str, model: str, profile: str, spec: dict | None = None) -> list[dict]:
    """The grid's runs of one (dataset, model) (``spec``: the grid's, default ``profile``'s file)."""
    return specs.build_runs("grid", specs.restrict(spec or specs.default_spec("grid", profile), datasets=[dataset],
                                                   models=[model]))


def grid_run(runs: list[dict], dataset: str, model: str, distance: float, seed: int, profile: str) -> dict:
    """The whole-pool run of ``runs`` (:func:`grid_runs`) at one distance and seed, whose model the
    grid kept."""
    if not runs:
        raise ValueError(f"the {profile} grid spec has no block for {dataset} with {model}")
    largest = max(r["n"] for r in runs)
    found = [r for r in runs if r["n"] == largest and r["seed"] == seed and r["codec"] == "jxl"
             and float(r["distance"]) == float(distance)]
    if not found:
        have = sorted({float(r["distance"]) for r in runs if r["codec"] == "jxl"})
        raise ValueError(f"the {profile} grid of {dataset} with {model} has no whole-pool run at d = {distance}, "
                         f"seed {seed}; its distances are {have} and seeds {sorted({r['seed'] for r in runs})}")
    return found[0]


def eval_set_of(run: dict) -> data.ImageSet:
    """The images a grid run is scored on (the test split, or its first ``test_n`` scenes)."""
    return data.eval_set(run["dataset"], run["eval_split"], run["classes"], run["test_n"], run["pool"])


def predict(dataset: str, model: str, distances, seed: int = 0, profile: str = "full",
            scene: int | None = None, spec: dict | None = None) -> dict:
    """Each distance's kept whole-pool model applied to one scene of the grid's scoring set, stored
    at that distance; ``scene`` indexes that set (default: :func:`richest_scene`).

    Refuses, before any work, when a model is not kept on this machine (run the grid first)."""
    every = grid_runs(dataset, model, profile, spec)  # the pool is read once, not once per distance
    runs = {float(d): grid_run(every, dataset, model, float(d), seed, profile) for d in distances}
    missing = [d for d, run in runs.items() if not kept.record_path(run).is_file()]
    if missing:
        raise ValueError(f"no kept whole-pool {model} of the {profile} grid at d = {missing} (seed {seed}) on this "
                         f"machine: run `storage-scaling run grid --profile {profile} --models {model} --datasets "
                         f"{dataset}` here first (models are kept in the cache, not committed)")
    scoring = eval_set_of(next(iter(runs.values())))
    scene = richest_scene(scoring) if scene is None else int(scene)
    if not 0 <= scene < len(scoring):
        raise ValueError(f"scene {scene} is not an index of the {len(scoring)} scenes {dataset}'s grid is scored on")
    predictions, keys = [], []
    for d, run in runs.items():
        fitted = kept.load(run)
        if fitted is None:
            raise ValueError(f"the kept model of {kept.record_path(run)} disagrees with its run (another recipe "
                             "or code version): run the grid again on this machine")
        images = runner.eval_images({**run, **dict(zip(kinds.EVAL_KEYS, ("jxl", d)))})
        one = type(images)(images.entry, images.labels[[scene]], np.asarray([scene]))
        predictions.append(fitted.predict(one)[0])
        keys.append(kept.training_key(run))
    return {"dataset": dataset, "model": model, "seed": int(seed), "scene_id": str(scoring.ids[scene]),
            "split": scoring.split, "distances": [float(d) for d in runs], "training_keys": keys,
            "effort": int(next(iter(runs.values()))["effort"]), "predictions": np.stack(predictions)}


def paths(folder: Path) -> tuple[Path, Path]:
    return Path(folder) / f"{NAME}.npz", Path(folder) / f"{NAME}.json"


def write(result: dict, folder: Path) -> Path:
    """The masks (npz) and, beside them, what made them (json); the masks are written first, each
    file atomically, and the record last: a record always describes a complete mask file."""
    masks, record = paths(folder)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, predictions=result["predictions"].astype(np.uint8))
    atomic.write_bytes(masks, buffer.getvalue())
    meta = {k: v for k, v in result.items() if k != "predictions"}
    meta.update(format=FORMAT, codec_versions=codecs.versions(), **provenance.stamp())
    atomic.write_text(record, json.dumps(meta, indent=1) + "\n")
    return masks


def read(folder: Path) -> dict | None:
    """What :func:`write` wrote, or None when nothing (or an older format) is there."""
    masks, record = paths(folder)
    if not (masks.is_file() and record.is_file()):
        return None
    meta = json.loads(record.read_text())
    if meta.get("format") != FORMAT:
        return None
    with np.load(masks) as arrays:
        predictions = arrays["predictions"]
    if len(predictions) != len(meta["distances"]):
        raise ValueError(f"{masks} holds {len(predictions)} masks but {record} lists {len(meta['distances'])} "
                         f"distances; delete both and run the step again")
    return {**meta, "predictions": predictions}


def stored_scene(dataset: str, split: str, scene_id: str, distance: float, effort: int) -> tuple[np.ndarray, int]:
    """A scene's pixels as stored at ``distance`` and its bytes there (encoded again: JPEG XL is
    deterministic)."""
    images = data.load_cached(dataset, split)
    where = np.flatnonzero(np.asarray(images.ids).astype(str) == str(scene_id))
    if len(where) != 1:
        raise ValueError(f"{dataset}'s {split} split has no scene {scene_id!r}")
    stored = codecs.encode(images.subset(where).decode()[0], "jxl", distance, effort=effort)
    return codecs.decode(stored), len(stored)


DISTANCES = (1.0, 7.0, 15.0)  # the figure's: a low, a middle and the highest distance of the grid


def default_distances(profile: str, dataset: str = "camvid-240x180", model: str = "segmenter") -> list[float]:
    """:data:`DISTANCES` at full size; the smoke grid's own JPEG XL distances at toy size."""
    if specs.check_profile(profile) == "full":
        return list(DISTANCES)
    blocks = specs.matching_blocks(specs.default_spec("grid", profile), [dataset], [model])
    return sorted({float(d) for b in blocks for d in b["distances"] if d != kinds.ORIGINAL})


def add_arguments(parser) -> None:
    parser.add_argument("--profile", choices=("smoke", "full"), default="full",
                        help="whose grid's kept models (default full); smoke writes under the cache")
    parser.add_argument("--dataset", default="camvid-240x180")
    parser.add_argument("--model", default="segmenter")
    parser.add_argument("--distances", type=float, nargs="+", default=None, metavar="D",
                        help=f"JPEG XL distances of the grid's whole-pool models (default {list(DISTANCES)}; "
                             "smoke: the smoke grid's)")
    parser.add_argument("--seed", type=int, default=0, help="the grid seed whose models predict (default 0)")
    parser.add_argument("--scene", type=int, default=None,
                        help="index into the grid's scoring set (default: the scene showing the most classes)")


def cmd(args) -> int:
    distances = args.distances or default_distances(args.profile, args.dataset, args.model)
    result = predict(args.dataset, args.model, distances, args.seed, args.profile, args.scene)
    target = write(result, runner.results_folder(args.profile))
    print(f"scene {result['scene_id']} at d = {result['distances']}: {target}")
    return 0

"""``storage-scaling pilot IMAGES``: fit *your* storage scaling law on your labelled images, on a CPU.

``IMAGES`` is one sub-folder per class (torchvision's ``ImageFolder`` layout) or a labelled pack.
The pilot runs the book's linear probe (:mod:`storage_scaling.learn.probe`: fixed k-means
features and a validation-tuned ridge classifier) on a small grid:

1. a stratified sample of at most ``--max-images`` images is split (seeded, per class) into a test
   set (``--test-fraction``, kept at the original format), a validation set (which learns the
   probe's dictionary from its originals and chooses the ridge penalty, stored like the training
   images) and a training pool;
2. every pool and validation image is encoded at each distance of ``--distances`` with the
   book's codec settings, in parallel (:mod:`.cluster`); L is the bytes of *your* images at their
   own resolution, the same bytes ``plan`` measures; the probe sees each image decoded, centre
   cropped and resized to ``--size`` pixels (what a training pipeline's resize does);
3. for each stored format (the originals and each distance), each n of ``--ns`` (nested,
   stratified subsets) and each seed, the probe is fitted and scored on the test set;
4. the law ``Err = E + A n^-alpha + B L^-beta`` is fitted to those runs as ``storage-scaling fit``
   does (both forms, the lower BIC kept) and saved, with its fitted ranges and runs, for
   ``storage-scaling plan --law``; the runs go to a CSV beside it.

A time estimate is printed before the work starts (measured on a few of your images); progress
bars follow each stage. The law holds on the n and L it was fitted on: ``plan`` refuses budgets
outside that range unless told to extrapolate, so the pilot ends by suggesting a ``plan`` command
with a budget inside it. A law that cannot split a budget (its runs show no effect of n or of L:
a parameter at 0) is not saved: the pilot says what data would make it usable and exits with
status 3 (the runs are saved).
"""

from __future__ import annotations

import argparse
import math
import shlex
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..compress import codecs
from . import cluster, images as images_mod, laws
from .units import format_duration, format_size

DEFAULT_DISTANCES = (1.0, 4.0, 15.0)
DEFAULT_SIZE = 64
DEFAULT_MAX_IMAGES = 3000
MIN_PER_CLASS = 4
CHUNK = 8

EXAMPLES = """examples:
  storage-scaling pilot ~/my_classes                         # one sub-folder per class
  storage-scaling pilot ~/my_classes --save my_law.json --distances 1 2 4 8 15 --seeds 2
  storage-scaling pilot ~/my_classes --workers 8             # encode on a local Dask cluster
  storage-scaling plan ~/my_classes --budget 2GB --law my_law.json   # then plan with it
"""


# ---------------------------------------------------------------------------------------------
# Input checks


def require_labelled(images: images_mod.Images) -> None:
    """One sub-folder per class (or a labelled pack), with at least two classes; else one line."""
    if images.labelled:
        return
    layout = "IMAGES/<class>/<image>, as torchvision's ImageFolder"
    if images.kind != "folder":
        raise ValueError(f"pilot needs labelled images: {images.describe()} has no labels; give a folder with one "
                         f"sub-folder per class ({layout}) or a pack with a label column")
    top = [it.id for it in images.items if "/" not in it.id]
    deep = [it.id for it in images.items if it.id.count("/") > 1]
    classes = {it.id.split("/", 1)[0] for it in images.items if "/" in it.id}
    if top:
        why = f"{len(top)} file(s) lie directly in the folder (e.g. {top[0]}), not in a class sub-folder"
    elif deep:
        why = f"{len(deep)} file(s) lie deeper than one sub-folder (e.g. {deep[0]})"
    else:
        why = f"there is only {len(classes)} class sub-folder ({', '.join(sorted(classes))}); a classifier needs two"
    raise ValueError(f"pilot needs one sub-folder per class ({layout}): {why}")


@dataclass(frozen=True)
class Settings:
    ns: tuple | None = None  # training-set sizes (default: four, doubling up to the pool)
    distances: tuple = DEFAULT_DISTANCES
    seeds: int = 1
    size: int = DEFAULT_SIZE
    max_images: int = DEFAULT_MAX_IMAGES
    test_fraction: float = 0.2
    val_fraction: float = 0.15
    centroids: int = 400
    patch: int = 6
    stride: int = 2
    kmeans_samples: int = 100_000
    kmeans_iters: int = 10
    effort: int = codecs.DEFAULT_EFFORT
    seed: int = 0
    max_pixels: int = images_mod.DEFAULT_MAX_PIXELS
    worker_memory: float | None = None  # None: one worker's share of the pool's memory

    def probe_config(self):
        from ..learn import probe

        return probe.ProbeConfig(patch=self.patch, centroids=self.centroids, stride=self.stride,
                                 kmeans_samples=self.kmeans_samples, kmeans_iters=self.kmeans_iters,
                                 batch_size=16, seed=self.seed)

    def check(self) -> "Settings":
        lo, hi = codecs.DISTANCE_RANGE
        if not self.distances or any(not (lo < d <= hi) for d in self.distances):
            raise ValueError(f"--distances must be one or more Butteraugli distances in ({lo:g}, {hi:g}], "
                             f"got {list(self.distances)}")
        if self.seeds < 1:
            raise ValueError(f"--seeds must be >= 1, got {self.seeds}")
        if self.size < 8:
            raise ValueError(f"--size must be at least 8 pixels, got {self.size}")
        if self.max_images < 20:
            raise ValueError(f"--max-images must be at least 20, got {self.max_images}")
        for name in ("test_fraction", "val_fraction"):
            if not 0 < getattr(self, name) < 0.5:
                raise ValueError(f"--{name.replace('_', '-')} must lie in (0, 0.5), got {getattr(self, name)}")
        if self.ns is not None and (len(self.ns) < 2 or any(int(n) < 2 for n in self.ns)):
            raise ValueError(f"--ns needs at least two training-set sizes of 2 or more images, got {list(self.ns)}")
        codecs.check_effort(self.effort)
        self.probe_config().validate((self.size, self.size, 3))
        return self


# ---------------------------------------------------------------------------------------------
# The splits


@dataclass
class Split:
    pool: list  # items
    val: list
    test: list
    classes: int


def split(images: images_mod.Images, s: Settings) -> Split:
    """A stratified sample of at most ``max_images`` split into pool, validation and test (seeded)."""
    from .. import data

    items = images.items
    labels = np.asarray([it.label for it in items])
    counts = Counter(labels.tolist())
    small = {images.classes[c] if c < len(images.classes) else c: k for c, k in counts.items() if k < MIN_PER_CLASS}
    if small:
        raise ValueError(f"pilot needs at least {MIN_PER_CLASS} images per class; too few in {small}")
    if len(items) > s.max_images:
        keep = np.sort(data.nested_order(labels, s.seed)[: s.max_images])
        items = [items[i] for i in keep]
        labels = labels[keep]
    rest, test = data.stratified_split(labels, s.test_fraction, s.seed)
    pool_idx, val_idx = data.stratified_split(labels[rest], s.val_fraction, s.seed + 1)
    pool_idx, val_idx = rest[pool_idx], rest[val_idx]
    return Split([items[i] for i in pool_idx], [items[i] for i in val_idx], [items[i] for i in test],
                 int(labels.max()) + 1)


def default_ns(pool: int, count: int = 4) -> list[int]:
    """``count`` training-set sizes doubling up to the pool (the largest is the whole pool)."""
    return sorted({max(2, int(pool / 2 ** k)) for k in range(count)})


# ---------------------------------------------------------------------------------------------
# The work of one chunk (in a worker): bytes at each distance and the probe's pixels


@dataclass(frozen=True)
class PilotTask:
    ids: list
    data: list
    distances: list  # empty for test images (kept at the original format)
    size: int
    effort: int
    limits: images_mod.Limits = images_mod.Limits()


def pilot_chunk(task: PilotTask) -> list[dict]:
    """Per image: its original pixels and each distance's bytes and decoded pixels, all cropped
    and resized to ``size``; or why it is unusable."""
    out = []
    for image_id, data in zip(task.ids, task.data):
        try:
            pixels, notes = images_mod.to_rgb8(data, task.limits)
        except images_mod.Unusable as exc:
            out.append({"id": image_id, "ok": False, "reason": str(exc)})
            continue
        squares = [images_mod.square(pixels, task.size)]
        sizes = []
        for d in task.distances:
            bitstream = codecs.encode(pixels, "jxl", float(d), effort=task.effort)
            sizes.append(len(bitstream))
            squares.append(images_mod.square(codecs.decode(bitstream, "jxl"), task.size))
        out.append({"id": image_id, "ok": True, "source_bytes": len(data), "sizes": sizes,
                    "pixels": np.stack(squares), "notes": list(notes)})
    return out


def _tasks(images, items, distances, s: Settings, limits: images_mod.Limits | None = None):
    for k in range(0, len(items), CHUNK):
        part = items[k:k + CHUNK]
        yield PilotTask([it.id for it in part], images.read_many(part), list(distances), s.size, s.effort,
                        limits or images_mod.Limits(s.max_pixels, s.worker_memory))


# ---------------------------------------------------------------------------------------------
# Time estimate


def estimate_seconds(images, sp: Split, s: Settings, workers: int, ns: list[int]) -> tuple[float, str]:
    """Seconds the pilot will take, from timing a few of these images here (encode + decode at
    one distance, feature extraction), scaled to the whole grid; and the arithmetic as text."""
    from ..learn import probe, ridge

    probe_items = (sp.pool + sp.val)[:3]
    t_enc, got = 0.0, 0
    squares = []
    for it in probe_items:
        try:
            pixels, _ = images_mod.to_rgb8(images.read(it))
        except images_mod.Unusable:
            continue
        start = time.perf_counter()
        b = codecs.encode(pixels, "jxl", float(s.distances[0]), effort=s.effort)
        squares.append(images_mod.square(codecs.decode(b, "jxl"), s.size))
        t_enc += time.perf_counter() - start
        got += 1
    t_enc = t_enc / max(got, 1)
    config = s.probe_config()
    base = squares or [np.zeros((s.size, s.size, 3), np.uint8)]
    x = np.stack((base * (64 // len(base) + 1))[:64])
    rng = np.random.default_rng(0)
    fake = probe.Dictionary(np.zeros(3 * s.patch ** 2, np.float32), np.eye(3 * s.patch ** 2, dtype=np.float32),
                            rng.standard_normal((s.centroids, 3 * s.patch ** 2)).astype(np.float32), s.patch)
    probe.extract(x[:2], fake, config, progress=False)  # the first call pays torch's start-up
    start = time.perf_counter()
    probe.extract(x, fake, config, progress=False)
    t_feat = (time.perf_counter() - start) / len(x)
    # the dictionary on a tenth of the patches with one and two k-means iterations: the fixed part
    # (patches, whitening) and the per-iteration part, each scaled to the real size
    tenth = replace(config, kmeans_samples=max(config.centroids, config.kmeans_samples // 10))
    spent = []
    for iters in (1, 2):
        start = time.perf_counter()
        probe.learn_dictionary(x, replace(tenth, kmeans_iters=iters))
        spent.append(time.perf_counter() - start)
    per_iter = max(spent[1] - spent[0], 0.0)
    scale = config.kmeans_samples / tenth.kmeans_samples
    t_dict = scale * (max(spent[0] - per_iter, 0.0) + per_iter * config.kmeans_iters)
    formats = 1 + len(s.distances)
    encodes = (len(sp.pool) + len(sp.val)) * len(s.distances)
    feats = (len(sp.pool) + len(sp.val)) * formats + len(sp.test)
    fits = formats * len(ns) * s.seeds
    # one ridge fit at the largest n on random features of the real width: an upper bound per fit
    width = config.num_features()
    labels = np.arange(max(ns)) % max(sp.classes, 2)
    x_fit = rng.standard_normal((max(ns), width)).astype(np.float32)
    x_val = rng.standard_normal((max(len(sp.val), 2), width)).astype(np.float32)
    start = time.perf_counter()
    ridge.fit_ridge(x_fit, labels, x_val, np.arange(len(x_val)) % max(sp.classes, 2), max(sp.classes, 2),
                    config.penalty_factors())
    t_fit = time.perf_counter() - start
    total = encodes * t_enc / max(workers, 1) + feats * t_feat + fits * t_fit + t_dict
    text = (f"{encodes:,} encodes at {t_enc * 1e3:,.0f} ms on {workers} worker(s), {feats:,} feature extractions "
            f"at {t_feat * 1e3:.1f} ms, the dictionary {t_dict:.0f} s, {fits} probe fits at up to {t_fit:.1f} s; "
            "measured here on a few of your images")
    return total, text


# ---------------------------------------------------------------------------------------------
# The pilot


@dataclass
class PilotResult:
    runs: pd.DataFrame
    saved: laws.SavedLaw
    choice: object  # law.FormChoice
    skipped: list = field(default_factory=list)
    notes: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    estimate: float = 0.0


def _gather(images, pool, items, distances, s, desc, progress):
    from tqdm import tqdm

    rows = {}
    bar = tqdm(total=len(items), desc=desc, unit="img", disable=not progress)
    try:
        limits = images_mod.Limits(s.max_pixels, s.worker_memory or pool.memory_per_worker())
        for k, part in pool.imap_unordered(pilot_chunk, _tasks(images, items, distances, s, limits)):
            rows[k] = part
            bar.update(len(part))
    finally:
        bar.close()
    return [r for k in sorted(rows) for r in rows[k]]


def run(images_arg, s: Settings, pool, *, progress: bool = True, log=print) -> PilotResult:
    """The whole pilot on ``pool`` (see the module docstring); returns the runs and the saved law."""
    from tqdm import tqdm

    from .. import data, law, threads
    from ..learn import probe

    s = s.check()
    images = images_mod.open_images(images_arg)
    require_labelled(images)
    sp = split(images, s)
    ns = sorted(set(int(n) for n in s.ns)) if s.ns else default_ns(len(sp.pool))
    if ns[-1] > len(sp.pool):
        raise ValueError(f"--ns asks for {ns[-1]:,} training images but the pool has {len(sp.pool):,} "
                         f"(after holding out test and validation images); use sizes up to {len(sp.pool):,}")
    estimate, how = estimate_seconds(images, sp, s, pool.workers, ns)
    log(f"pilot: {len(sp.pool) + len(sp.val) + len(sp.test):,} images of {sp.classes} classes "
        f"(pool {len(sp.pool):,}, validation {len(sp.val):,}, test {len(sp.test):,}); formats: original + "
        f"d = {', '.join(f'{d:g}' for d in s.distances)}; n = {', '.join(map(str, ns))}; {s.seeds} seed(s)")
    log(f"estimated time: about {format_duration(estimate)} ({how}) on {pool.description}")
    start = time.perf_counter()
    train_rows = _gather(images, pool, sp.pool + sp.val, s.distances, s, "encode pool+val", progress)
    test_rows = _gather(images, pool, sp.test, [], s, "read test", progress)
    label_of = {it.id: it.label for it in images.items}
    skipped = [(r["id"], r["reason"]) for r in train_rows + test_rows if not r["ok"]]
    notes = Counter(n for r in train_rows + test_rows if r["ok"] for n in r["notes"])
    val_ids = {it.id for it in sp.val}
    pool_ok = [r for r in train_rows if r["ok"] and r["id"] not in val_ids]
    val_ok = [r for r in train_rows if r["ok"] and r["id"] in val_ids]
    test_ok = [r for r in test_rows if r["ok"]]
    if min(len(pool_ok), len(val_ok), len(test_ok)) < 2:
        raise ValueError(f"too few usable images after skipping {len(skipped)} unreadable ones "
                         f"(pool {len(pool_ok)}, validation {len(val_ok)}, test {len(test_ok)})")
    ns = [n for n in ns if n <= len(pool_ok)] or [len(pool_ok)]
    config = s.probe_config()
    y_pool = np.asarray([label_of[r["id"]] for r in pool_ok])
    y_val = np.asarray([label_of[r["id"]] for r in val_ok])
    y_test = np.asarray([label_of[r["id"]] for r in test_ok])
    formats = ["original"] + [f"d={d:g}" for d in s.distances]
    bytes_of = {0: np.asarray([r["source_bytes"] for r in pool_ok], dtype=float)}
    for j in range(len(s.distances)):
        bytes_of[j + 1] = np.asarray([r["sizes"][j] for r in pool_ok], dtype=float)
    with threads.library_cap():
        dictionary = probe.learn_dictionary(np.stack([r["pixels"][0] for r in val_ok]), config)
        x_test = probe.extract(np.stack([r["pixels"][0] for r in test_ok]), dictionary, config, progress=False)
    runs = []
    model = probe.ProbeModel(config)
    bar = tqdm(total=len(formats) * (1 + len(ns) * s.seeds), desc="probe grid", unit="step", disable=not progress)
    try:
        for j, fmt in enumerate(formats):
            x_pool = probe.extract(np.stack([r["pixels"][j] for r in pool_ok]), dictionary, config, progress=False)
            x_val = probe.extract(np.stack([r["pixels"][j] for r in val_ok]), dictionary, config, progress=False)
            bar.update(1)
            for seed in range(s.seeds):
                order = data.nested_order(y_pool, s.seed + seed)
                for n in ns:
                    subset = np.sort(order[:n])
                    fitted = model.fit_features(x_pool[subset], y_pool[subset], x_val, y_val, sp.classes,
                                                dictionary, config)
                    metrics = fitted.evaluate_features(x_test, y_test)
                    runs.append({"format": fmt, "distance": 0.0 if j == 0 else float(s.distances[j - 1]),
                                 "n": int(n), "seed": seed, "L": float(bytes_of[j][subset].mean()),
                                 "error": max(float(metrics["error"]), 1.0 / (2 * len(y_test))),
                                 "accuracy": float(metrics["accuracy"]), "n_test": len(y_test),
                                 "penalty_at_edge": fitted.ridge.at_edge})
                    bar.update(1)
    finally:
        bar.close()
    frame = pd.DataFrame(runs)
    data_ = law.law_data(frame, with_floor=False)
    choice = law.choose_form(data_)
    saved = laws.from_fit(choice.fit, law.law_data(frame, with_floor=choice.fit.with_floor),
                          label=f"your pilot law for {images.root.name} (linear probe at {s.size} px, "
                                f"{sp.classes} classes)", source=str(images.root))
    return PilotResult(frame, saved, choice, skipped, notes, time.perf_counter() - start, estimate)


# ---------------------------------------------------------------------------------------------
# The command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", help="one sub-folder per class (IMAGES/<class>/<image>), or a labelled pack")
    parser.add_argument("--save", default="pilot_law.json", metavar="FILE",
                        help="the law file to write (default ./pilot_law.json); the runs go beside it (.csv)")
    parser.add_argument("--ns", type=int, nargs="+", default=None, metavar="N",
                        help="training-set sizes (default: four, doubling up to the pool)")
    parser.add_argument("--distances", type=float, nargs="+", default=list(DEFAULT_DISTANCES), metavar="D",
                        help="distances besides the originals (default: %(default)s)")
    parser.add_argument("--seeds", type=int, default=1, help="subsets per (n, format) (default 1)")
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help=f"pixels the probe sees (default {DEFAULT_SIZE})")
    parser.add_argument("--max-images", type=int, default=DEFAULT_MAX_IMAGES,
                        help=f"stratified sample of the images to use (default {DEFAULT_MAX_IMAGES})")
    parser.add_argument("--test-fraction", type=float, default=0.2, help="held out for testing (default 0.2)")
    parser.add_argument("--centroids", type=int, default=400, help="probe dictionary size (default 400)")
    parser.add_argument("--seed", type=int, default=0, help="split and subset seed (default 0)")
    from .plan import add_limits

    add_limits(parser)
    cluster.add_arguments(parser)


def suggested_budget(saved: laws.SavedLaw, pools) -> str | None:
    """A budget, written as a user would (``1.2MB``), for which ``plan`` keeps inside the law's
    fitted range with each of ``pools`` images: the one nearest the middle (in log) of the
    fitted storage range; None when no budget does."""
    from .plan import range_problems
    from .units import parse_size

    lo, hi = saved.storage_range
    middle = math.log(math.sqrt(lo * hi))
    for b in sorted(np.geomspace(lo, hi, 61), key=lambda b: abs(math.log(b) - middle)):
        text = format_size(b).replace(" ", "").replace(",", "")
        value = parse_size(text)
        fine = True
        for pool in pools:
            alloc = saved.params.allocation([value], n_max=pool).iloc[0]
            fine = fine and not range_problems(saved, value, float(alloc["n_star"]), float(alloc["L_star"]))
        if fine:
            return text
    return None


def what_data_would_help(saved: laws.SavedLaw) -> str:
    """For a law that cannot split a budget: what a new pilot should measure."""
    zero = {k for k in ("A", "alpha", "B", "beta") if getattr(saved.params, k) <= 0}
    hints = []
    if zero & {"B", "beta"}:
        hints.append("the error did not change with the distance: let the probe see more pixels (--size 128 or "
                     "more; the resize to the probe's size hides compression artefacts), spread the distances "
                     "wider (--distances 1 4 8 15), and measure on more images (--max-images, --test-fraction) "
                     "or more --seeds so that differences stand out of the noise")
    if zero & {"A", "alpha"}:
        hints.append("the error did not change with n: use more images (--max-images) and training-set sizes "
                     "over a wider range (--ns), or more --seeds")
    return "; ".join(hints)


def cmd(args: argparse.Namespace) -> int:
    from ..practice.plan import check_limits, check_writable_folder

    save = Path(args.save).expanduser()
    check_writable_folder(save.parent if str(save.parent) else Path("."), "--save")
    check_limits(args)
    s = Settings(ns=tuple(args.ns) if args.ns else None, distances=tuple(args.distances), seeds=args.seeds,
                 size=args.size, max_images=args.max_images, test_fraction=args.test_fraction,
                 centroids=args.centroids, seed=args.seed, max_pixels=args.max_pixels,
                 worker_memory=args.worker_memory).check()
    cluster.check_options(args.processes, args.workers, args.scheduler)
    with cluster.open_pool(args.processes, args.workers, args.scheduler) as pool:
        result = run(args.images, s, pool)
    problem = laws.unusable_reason(result.saved)
    if not problem:
        result.saved.save(save)
    runs_path = save.with_suffix(".csv")
    result.runs.to_csv(runs_path, index=False)
    fit = result.choice.fit
    p = fit.params
    print(f"pilot done in {format_duration(result.seconds)} (estimated {format_duration(result.estimate)}): {len(result.runs)} runs")
    print(f"law: Err = {p.E:.3f} + {p.A:.3g} n^-{p.alpha:.3f} + {p.B:.3g} L^-{p.beta:.3f} "
          f"({'with' if fit.with_floor else 'without'} floor, {result.choice.reason})")
    print(f"fitted on {result.saved.range_text()}")
    if fit.at_bound:
        print(f"note: {', '.join(fit.at_bound)} ended on a bound: these runs do not pin the law down there")
    if result.skipped:
        print(f"skipped {len(result.skipped)} unusable file(s), e.g. {result.skipped[0][0]}: {result.skipped[0][1]}")
    if result.notes:
        print("converted: " + "; ".join(f"{v:,} {k}" for k, v in sorted(result.notes.items())))
    if problem:
        print(f"NO LAW SAVED: {problem}, so storage-scaling plan cannot use it. The runs are saved in {runs_path}.")
        print(f"what would make it usable: {what_data_would_help(result.saved)}; then run storage-scaling pilot again")
        return 3
    print(f"saved: {save} (runs: {runs_path})")
    images = images_mod.open_images(args.images)
    usable = max(1, round(len(images) * (1 - len(result.skipped) / max(len(images), 1))))
    budget = suggested_budget(result.saved, sorted({len(images), usable}))
    lo, hi = (format_size(v) for v in result.saved.storage_range)
    command = shlex.join(["storage-scaling", "plan", str(args.images), "--budget", budget or format_size(
        math.sqrt(result.saved.storage_range[0] * result.saved.storage_range[1])).replace(" ", ""), "--law", str(save)]
        + ([] if budget else ["--extrapolate"]))
    if budget:
        print(f"next: {command}  (a budget that keeps the plan inside the law's fitted range, storage {lo}-{hi}, "
              "n and L; plan refuses budgets that leave it unless told --extrapolate)")
    else:
        print(f"next: {command}  (no budget keeps the plan inside the law's fitted range with your "
              f"{len(images):,} images, so plan can only extrapolate; widen the pilot's --ns to come closer)")
    return 0

"""The ridge head, old against new, on the same features in one process (issue 30, item 3).

    python benchmarks/bench_ridge_head.py                          # synthetic, Food-101's whole-pool shape
    python benchmarks/bench_ridge_head.py --dataset cifar10-jpg    # the probe's cached features (original format)
    python benchmarks/bench_ridge_head.py --smoke                  # tiny, proves it runs

Old: the head before issue 30, ``fit_ridge(method="reference", exhaustive=True)``: standardise the
rows, one float64 eigendecomposition per fit, every one of the 49 penalties scored in float64. New:
the default, ``fit_ridge()``: one pass of sufficient statistics (rank-k updates), one
eigendecomposition, the penalties scored 16 at a time in float32 (all 49; ``--coarse``: the
coarse-then-fine scan, 19 of 49); and the new head as a grid runs it ("grid"), the statistics of
the previous (nested) size kept, so each size reads only the rows it adds. For each
pool size (nested subsets, seed 0) every head fits the same rows and chooses on the same held-out
rows; the table gives each one's seconds, the ratios, the penalty index each chose and accuracy on
test rows.

Features: ``--dataset`` reads the probe's cached features of the pool, the held-out 20 % and the test
split at the original format, with the dataset's full-spec probe settings (extracting them when
they are not cached: about 5 min for CIFAR-10 and 50 min for Food-101 on 2 cores); without it,
synthetic probe-like features (non-negative, correlated, float16) of Food-101's shape: a pool of
60,559, 3,200 features, 101 classes, 15,150 held-out rows. Prints the CPU model: speeds differ
between machines of the same kind.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def synthetic(n: int, d: int, classes: int, seed: int, rule: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Probe-like features: ReLU of class means plus noise through a fixed mixing, float16."""
    rng = np.random.default_rng(rule)
    mixing, means = rng.normal(size=(64, d)) / 8, rng.normal(size=(classes, 64)) * 0.25
    rng = np.random.default_rng(seed + 100)
    labels = rng.integers(0, classes, n)
    out = np.empty((n, d), dtype=np.float16)
    for start in range(0, n, 8192):
        k = min(8192, n - start)
        latent = means[labels[start:start + k]] + rng.normal(size=(k, 64))
        out[start:start + k] = np.maximum(latent @ mixing + 0.3 * rng.normal(size=(k, d)), 0)
    return out, labels


def cached(dataset: str) -> tuple[dict, int, str]:
    """The probe's features of the pool, held-out 20 % and test split at the original format."""
    from storage_scaling import data
    from storage_scaling.experiments import inputs, specs
    from storage_scaling.learn import learners, probe

    block = next(b for b in specs.default_spec("grid", "full")["datasets"]
                 if b["dataset"] == dataset and b["model"] == "probe")
    config = probe.ProbeConfig(**block.get("train", {})).validate()
    dictionary = probe.dataset_dictionary(dataset, config, progress=True)
    sets = {"pool": data.pool(dataset, "paper"), "held-out": data.eval_set(dataset, "val"),
            "test": data.eval_set(dataset, "test")}
    out = {}
    for name, images in sets.items():
        start = time.perf_counter()
        at = inputs.ImagesAt(inputs.compress(images, "original"), images.labels)
        out[name] = (learners.probe_features(at, config, dictionary, dataset), np.asarray(images.labels))
        print(f"  features of the {name} ({len(images):,}): {time.perf_counter() - start:.1f} s", flush=True)
    return out, data.num_classes(dataset), f"{dataset}, probe features (original format, {config.num_features()})"


def main(argv=None) -> int:
    from storage_scaling import provenance
    from storage_scaling.learn import ridge

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", help="the probe's cached features of this dataset (else synthetic)")
    parser.add_argument("--fractions", default="0.05,0.2,0.4,0.6,0.8,1.0", help="pool sizes as fractions")
    parser.add_argument("--smoke", action="store_true", help="synthetic, 2,000 rows, 96 features, 10 classes")
    parser.add_argument("--coarse", action="store_true", help="the new head scans coarse, then fine (19 of 49)")
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args(argv)
    fractions = [float(f) for f in args.fractions.split(",")]
    if not fractions or any(not 0 < f <= 1 for f in fractions):
        raise SystemExit(f"--fractions must be numbers in (0, 1], got {args.fractions!r}")

    if args.dataset:
        sets, classes, source = cached(args.dataset)
    else:
        n, d, classes, held = (2000, 96, 10, 500) if args.smoke else (60_559, 3200, 101, 15_150)
        sets = {"pool": synthetic(n, d, classes, 0), "held-out": synthetic(held, d, classes, 1),
                "test": synthetic(held, d, classes, 2)}
        shape = "toy size" if args.smoke else "Food-101's whole-pool shape"
        source = f"synthetic probe-like features, {shape} ({n:,} x {d:,}, {classes} classes)"
    (pool, labels), (xv, yv), (xt, yt) = sets["pool"], sets["held-out"], sets["test"]
    from storage_scaling import data

    grid = ridge.penalty_grid(-7.0, 5.0, 4)
    kept = ridge.SubsetStats()  # "grid": the sizes in order, as the grid's nested subsets of one store
    heads = {"old": lambda x, y, rows: ridge.fit_ridge(x, y, xv, yv, classes, grid, method="reference", exhaustive=True),
             "new": lambda x, y, rows: ridge.fit_ridge(x, y, xv, yv, classes, grid, exhaustive=not args.coarse),
             "grid": lambda x, y, rows: ridge.fit_ridge(
                 x, y, xv, yv, classes, grid, exhaustive=not args.coarse,
                 stats=kept.stats("pool", rows, x, y, classes) if len(x) >= x.shape[1] else None)}
    rows = []
    print(f"\nridge head on {source}; CPU: {cpu_model()} ({provenance.device()})")
    print(f"old: standardised rows, eigendecomposition, float64 scores of 49 penalties; new: one pass of "
          f"statistics, eigendecomposition, float32 scores of "
          f"{'a coarse-then-fine scan' if args.coarse else '49 penalties'}; grid: new, with the statistics of the "
          "previous (nested) size kept")
    print(f"{'n':>8}{'old s':>8}{'new s':>8}{'grid s':>8}{'ratio':>7}{'grid ratio':>11}{'picks':>12}"
          f"{'old acc':>9}{'new acc':>9}")
    for fraction in fractions:
        n = max(classes, int(round(fraction * len(labels))))
        take = np.sort(data.nested_subset(labels, n, 0))
        x, y = np.asarray(pool[take]), labels[take]
        row = {"n": n}
        for name, fit in heads.items():
            start = time.perf_counter()
            head = fit(x, y, take)
            row[f"{name}_seconds"] = time.perf_counter() - start
            row[f"{name}_pick"] = int(np.flatnonzero(grid == head.penalty_factor)[0])
            row[f"{name}_accuracy"] = float(head.evaluate(xt, yt)["accuracy"])
        row["ratio"] = row["old_seconds"] / row["new_seconds"]
        row["grid_ratio"] = row["old_seconds"] / row["grid_seconds"]
        rows.append(row)
        picks = f"{row['old_pick']}/{row['new_pick']}/{row['grid_pick']}"
        print(f"{n:>8,}{row['old_seconds']:>8.1f}{row['new_seconds']:>8.1f}{row['grid_seconds']:>8.1f}"
              f"{row['ratio']:>7.1f}{row['grid_ratio']:>11.1f}{picks:>12}{row['old_accuracy']:>9.4f}"
              f"{row['new_accuracy']:>9.4f}", flush=True)
    gaps = [100 * abs(r["old_accuracy"] - r[f"{k}_accuracy"]) for r in rows for k in ("new", "grid")]
    total = {k: sum(r[f"{k}_seconds"] for r in rows) for k in heads}
    print(f"\nat the largest pool the new head is {rows[-1]['ratio']:.1f}x faster alone, "
          f"{rows[-1]['grid_ratio']:.1f}x within a grid; over these sizes {total['old'] / total['grid']:.1f}x "
          f"({total['old']:.0f} s against {total['grid']:.0f} s); accuracy gap (points): mean {np.mean(gaps):.3f}, "
          f"largest {max(gaps):.3f}; picks apart by at most "
          f"{max(abs(r['old_pick'] - r[f'{k}_pick']) for r in rows for k in ('new', 'grid'))} grid steps")
    if args.json:
        from storage_scaling import atomic

        record = {"source": source, "cpu": cpu_model(), **provenance.stamp(), "rows": rows}
        atomic.write_text(args.json, json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

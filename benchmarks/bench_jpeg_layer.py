"""Training throughput with and without the JPEG layer (JPEG-DL), as a ratio measured in one run.

    python benchmarks/bench_jpeg_layer.py                        # airnet_small, 32 px, 2 threads
    python benchmarks/bench_jpeg_layer.py --network cnn_cpu      # another network (once registered)
    python benchmarks/bench_jpeg_layer.py --smoke                # tiny: proves it runs

The same trainer (``train.train``), network, batch, seed and synthetic 32 px images, once as the
baseline and once with ``jpeg_layer=True`` (the layer in soft mode, its tables on their own Adam).
Runs alternate (baseline, layer, baseline, layer, ...) so that background load hits both alike;
the medians of whole runs give images/s and the ratio (layer / baseline). Throughput does not
depend on image content, so no data pack is needed. Prints a table; ``--json PATH`` also writes
the numbers with provenance. Speed only: never a result of the book.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

import numpy as np


def main(argv=None) -> int:
    from storage_scaling import provenance, threads
    from storage_scaling.learn import jpeg_layer, train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", default="airnet_small")
    parser.add_argument("--steps", type=int, default=30, help="optimisation steps per timed run")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per variant (after one warm-up each)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--images", type=int, default=2048, help="synthetic training images")
    parser.add_argument("--smoke", action="store_true", help="4 steps of 32 images, one run each")
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps, args.batch, args.repeats, args.images = 4, 32, 1, 128
    if min(args.steps, args.batch, args.repeats, args.images) < 1:
        raise SystemExit("--steps, --batch, --repeats and --images must be positive")
    threads.check(args.threads)  # every run below trains on exactly this many threads (restored after)

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (args.images, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, args.images)
    layer = jpeg_layer.DEFAULTS
    configs = {
        "baseline": train.recipe(args.network, steps=args.steps, batch_size=args.batch, tta=0, threads=args.threads),
        "jpeg_layer": train.recipe(args.network, steps=args.steps, batch_size=args.batch, tta=0, threads=args.threads,
                                   jpeg_layer=True),
    }
    rates: dict[str, list[float]] = {k: [] for k in configs}
    for name, cfg in configs.items():  # warm-up (allocator, kernels)
        train.train(x, y, config=cfg, seed=0, num_classes=10, device="cpu")
    for _ in range(args.repeats):
        for name, cfg in configs.items():
            rates[name].append(train.train(x, y, config=cfg, seed=0, num_classes=10, device="cpu").images_per_second)
    med = {k: statistics.median(v) for k, v in rates.items()}
    ratio = med["jpeg_layer"] / med["baseline"]
    print(f"{args.network}, batch {args.batch}, {args.steps} steps/run, {args.repeats} runs each, "
          f"{args.threads} threads (CPU)")
    for k, v in rates.items():
        print(f"  {k:<11} median {med[k]:8.1f} images/s   runs: {', '.join(f'{r:.1f}' for r in v)}")
    print(f"  ratio with / without the layer: {ratio:.3f}   (layer: {layer})")
    if args.json:
        from storage_scaling import atomic

        out = {"network": args.network, "batch": args.batch, "steps": args.steps, "repeats": args.repeats,
               "threads": args.threads, "images_per_second": rates, "median": med, "ratio": ratio,
               "layer": dict(layer), "smoke": args.smoke, "provenance": provenance.stamp()}
        atomic.write_text(args.json, json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

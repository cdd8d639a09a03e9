"""The probe on a CPU: time per stage and accuracy at the whole paper-style pool (issue 11, item 8).

    python benchmarks/bench_probe.py --dataset cifar10-jpg
    python benchmarks/bench_probe.py --dataset food101-64px
    python benchmarks/bench_probe.py --dataset cifar10-jpg --centroids 1600   # another preset knob
    python benchmarks/bench_probe.py --dataset cifar10-jpg --smoke            # tiny, proves it runs

Per dataset, original format:

0. encode a sample of the pool with JPEG XL at d = 1, effort 7 (timed, 2 workers; the time of a
   whole store is extrapolated from it, since the program encodes every format it trains on);
1. decode the pool (the paper's 80 %), the held-out 20 % and the test split (timed, 2 workers);
2. learn the dictionary from the held-out 20 % (never trained or tested on);
3. extract features of all three (timed; reported as a ratio to decoding the same images);
4. fit the ridge at several n (nested subsets of the pool); the penalty is chosen on one half of
   the held-out 20 % (A), and the other half (B) scores the fit: B is what the preset's details
   were chosen on; the test split is scored only at the whole pool, against the issue's floor.

Prints a table; ``--json PATH`` also writes the numbers with provenance.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np



def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main(argv=None) -> int:
    from storage_scaling import data, provenance
    from storage_scaling.experiments import checks
    from storage_scaling.learn import probe

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="cifar10-jpg", choices=sorted(probe.PRESETS))
    parser.add_argument("--centroids", type=int)
    parser.add_argument("--stride", type=int)
    parser.add_argument("--fractions", default="0.05,0.2,0.5,1.0", help="fit sizes as fractions of the pool")
    parser.add_argument("--encode-sample", type=int, default=2000,
                        help="pool images encoded to time the encoder (0: skip)")
    parser.add_argument("--smoke", action="store_true", help="2 classes, 400 pool images, 16 centroids")
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args(argv)

    overrides = {k: v for k, v in (("centroids", args.centroids), ("stride", args.stride)) if v is not None}
    classes = limit = None
    if args.smoke:
        classes, limit = 2, 400
        overrides.update(centroids=16, kmeans_samples=5000, kmeans_iters=5)
    config = probe.preset(args.dataset, **overrides)
    fractions = [float(f) for f in args.fractions.split(",")]
    if not fractions or any(not 0 < f <= 1 for f in fractions):
        raise SystemExit(f"--fractions must be numbers in (0, 1], got {args.fractions!r}")

    sets = {
        "pool": data.pool(args.dataset, "paper", classes=classes, limit=limit),
        "held-out": data.eval_set(args.dataset, "val", classes=classes, limit=limit and limit // 4),
        "test": data.eval_set(args.dataset, "test", classes=classes, limit=limit and limit // 4),
    }
    num_classes = data.num_classes(args.dataset, classes)
    stages = []

    class Stages(list):  # prints each stage as it finishes: a long run shows where it is
        def append(self, stage):
            super().append(stage)
            print(f"  {stage[0]}: {stage[1]:,} images, {stage[2]:.1f} s {stage[3]}", flush=True)

    stages = Stages()
    if args.encode_sample > 0:
        from storage_scaling.compress import codecs

        sample = sets["pool"].subset(np.arange(min(args.encode_sample, len(sets["pool"]))))
        _, encode_s = timed(lambda: codecs.encode_sizes(sample, [1.0], effort=7, workers=2, progress=False))
        whole_min = encode_s / len(sample) * len(sets["pool"]) / 60
        stages.append(("encode sample (d=1, e7)", len(sample), encode_s,
                       f"{len(sample) / encode_s:.0f} img/s; the pool: about {whole_min:.0f} min per format"))
    pixels, decode_s = {}, {}
    for name, images in sets.items():
        pixels[name], decode_s[name] = timed(lambda: np.asarray(images.decode(workers=2)))
        stages.append(("decode " + name, len(images), decode_s[name], ""))
    config.validate(pixels["pool"].shape[1:])

    dictionary, dict_s = timed(lambda: probe.learn_dictionary(pixels["held-out"], config))
    stages.append(("dictionary (held-out)", len(pixels["held-out"]), dict_s, f"K={config.centroids}"))
    features, feature_s = {}, {}
    for name in sets:
        features[name], feature_s[name] = timed(lambda: probe.extract(pixels[name], dictionary, config))
        ratio = feature_s[name] / decode_s[name]
        stages.append((f"features {name}", len(pixels[name]), feature_s[name],
                       f"{len(pixels[name]) / feature_s[name]:.0f} img/s, {ratio:.1f}x decode"))

    held = sets["held-out"].labels
    half_a, half_b = data.stratified_split(held, 0.5, seed=0)
    model = probe.ProbeModel(config)
    labels = sets["pool"].labels
    fits = []
    for fraction in fractions:
        n = max(num_classes, int(round(fraction * len(labels))))
        rows = data.nested_subset(labels, n, 0)
        fitted = model.fit_features(features["pool"][rows], labels[rows], features["held-out"][half_a],
                                    held[half_a], num_classes, dictionary)
        row = {"n": n, "fit_s": fitted.info["fit_seconds"], "form": fitted.info["ridge_form"],
               "penalty_factor": fitted.info["penalty_factor"], "at_edge": fitted.info["penalty_at_edge"],
               "val_a_error": fitted.info["val_error"],
               "val_b_accuracy": fitted.evaluate_features(features["held-out"][half_b], held[half_b])["accuracy"]}
        if n == len(labels):
            row["test"] = fitted.evaluate_features(features["test"], sets["test"].labels)
        fits.append(row)
        stages.append((f"fit n={n}", n, row["fit_s"], f"{row['form']}, penalty {row['penalty_factor']:.2g} x mean eig"))

    print(f"\nprobe on {args.dataset} ({'smoke' if args.smoke else 'whole pool'}), original format; "
          f"config {json.dumps({k: v for k, v in config.params().items()})}")
    print(f"{'stage':<28}{'images':>9}{'seconds':>10}  note")
    for name, count, seconds, note in stages:
        print(f"{name:<28}{count:>9,}{seconds:>10.1f}  {note}")
    print(f"\n{'n':>8}{'fit s':>8}{'form':>8}{'penalty':>10}{'edge':>6}{'val A err':>10}{'val B acc':>10}{'test acc':>10}")
    for row in fits:
        test = row.get("test", {}).get("accuracy")
        print(f"{row['n']:>8,}{row['fit_s']:>8.1f}{row['form']:>8}{row['penalty_factor']:>10.2g}{row['at_edge'] or '-':>6}"
              f"{row['val_a_error']:>10.4f}{row['val_b_accuracy']:>10.4f}{'' if test is None else f'{test:.4f}':>10}")
    whole = [r for r in fits if "test" in r]
    floor = checks.FLOORS[(args.dataset, "probe")]
    if whole and not args.smoke:
        acc = whole[0]["test"]["accuracy"]
        print(f"\ntest accuracy at the whole pool: {acc:.4f} (floor {floor:.2f}: {'met' if acc >= floor else 'NOT MET'})")
    if args.json:
        from storage_scaling import atomic

        record = {"dataset": args.dataset, "smoke": args.smoke, "config": config.params(),
                  "stages": [dict(zip(("stage", "images", "seconds", "note"), s)) for s in stages],
                  "fits": fits, "floor": floor, "provenance": provenance.stamp(), "argv": sys.argv}
        atomic.write_text(args.json, json.dumps(record, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The GPU quality checks of the training engine (issue 6, item 5), recorded in ``results/``.

    python benchmarks/gpu_quality.py select     # validation sweep -> results/protocol_selection.csv
    python benchmarks/gpu_quality.py quality    # checks -> results/training_quality.csv (+ .json)
    python benchmarks/gpu_quality.py report     # verdicts from the tables -> results/training_quality_checks.json
    python benchmarks/gpu_quality.py all --smoke   # CPU: toy sizes in a temporary folder (nothing in results/)

Checks (on the test split, at the original stored format):

1. the whole training pool: CIFAR-10 (all 50,000 train images) >= 90 % top-1 accuracy (airbench
   0.1.8 reaches 90.6 % on these stored JPEGs); Food-101 64 px (the paper's 80 % pool) >= 55 %
   (below 50 % is not done);
2. doubling the step budget changes the error at the smallest and at the largest n of the grid by
   at most 1 point (otherwise the law would be fitted to under-training).

``select`` runs the validation sweep that chooses the step budget and learning rate
(``train.choose_protocol``); its choice is printed as the values to put in the grid's ``full``
spec (``experiments._block``). Every run is resumable: re-running skips finished runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import pandas as pd

TARGETS = {"cifar10-jpg": 0.90, "food101-64px": 0.55}
FLOOR = {"cifar10-jpg": 0.90, "food101-64px": 0.50}
MAX_CHANGE_POINTS = 1.0


def verdicts(quality: pd.DataFrame, targets=TARGETS) -> dict:
    """Pass/fail of both checks from the quality table (one row per run)."""
    out = {"whole_pool": [], "doubling": []}
    whole = quality[quality["check"] == "whole_pool"]
    for ds, g in whole.groupby("dataset"):
        acc = float(g["accuracy"].mean())
        out["whole_pool"].append({"dataset": ds, "n": int(g["n"].iloc[0]), "seeds": int(g["seed"].nunique()),
                                  "mean_accuracy": acc, "sd": float(g["accuracy"].std(ddof=1)) if len(g) > 1 else None,
                                  "target": targets.get(ds), "pass": bool(acc >= targets.get(ds, 0.0)),
                                  "median_train_seconds": float(g["train_seconds"].median()),
                                  "median_images_per_second": float(g["images_per_second"].median())})
    dbl = quality[quality["check"] == "doubling"]
    for (ds, n), g in dbl.groupby(["dataset", "n"]):
        means = g.groupby("steps")["error"].mean().sort_index()
        if len(means) != 2:
            continue
        change = 100 * float(means.iloc[1] - means.iloc[0])
        out["doubling"].append({"dataset": ds, "n": int(n), "steps": [int(s) for s in means.index],
                                "errors": [float(e) for e in means], "change_points": change,
                                "pass": bool(abs(change) <= MAX_CHANGE_POINTS)})
    out["all_pass"] = bool(out["whole_pool"] and out["doubling"]
                           and all(r["pass"] for r in out["whole_pool"] + out["doubling"]))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("select", "quality", "report", "all"))
    parser.add_argument("--smoke", action="store_true", help="CPU toy sizes in a temporary folder")
    parser.add_argument("--datasets", nargs="+", default=None,
                        help="only these datasets (e.g. cifar10-jpg); the full table's sidecar is then not written")
    args = parser.parse_args(argv)

    from storage_scaling import atomic, experiments, paths, provenance, train

    profile = "smoke" if args.smoke else "full"
    folder = Path(tempfile.mkdtemp(prefix="gpu-quality-")) if args.smoke else paths.results_dir()
    todo = ("select", "quality", "report") if args.what == "all" else (args.what,)
    command = " ".join([sys.executable, *sys.argv])
    for name in ("select", "quality"):
        if name in todo:
            path = folder / f"{experiments.RESULT_FILES[name]}.csv"
            spec = experiments.only_datasets(experiments.default_spec(name, profile), args.datasets)
            frame = experiments.run_experiment(name, profile, results_path=path, spec=spec,
                                               write_sidecar=not args.smoke and not args.datasets)
            print(f"{name}: {len(frame)} rows in {path}")
    if "report" not in todo:
        return 0
    report = {"command": command, "profile": profile, **provenance.stamp()}
    sel_path = folder / f"{experiments.RESULT_FILES['select']}.csv"
    if sel_path.is_file():
        sel = pd.read_csv(sel_path)
        report["selection"] = {ds: train.choose_protocol(g) for ds, g in sel.groupby("dataset")}
        for ds, c in report["selection"].items():
            state = "meets" if c["converged"] else "does NOT meet (largest budget taken)"
            print(f"selection {ds}: steps={c['steps']}, lr={c['lr']:g} ({state} the doubling criterion on validation)")
    q_path = folder / f"{experiments.RESULT_FILES['quality']}.csv"
    if q_path.is_file():
        report["checks"] = verdicts(pd.read_csv(q_path))
        for r in report["checks"]["whole_pool"]:
            print(f"whole pool {r['dataset']}: accuracy {r['mean_accuracy']:.2%} over {r['seeds']} seed(s) "
                  f"(target {r['target']:.0%}) -> {'PASS' if r['pass'] else 'FAIL'}")
        for r in report["checks"]["doubling"]:
            print(f"doubling {r['dataset']} n={r['n']:,}: steps {r['steps']} error change {r['change_points']:+.2f} "
                  f"points (max {MAX_CHANGE_POINTS}) -> {'PASS' if r['pass'] else 'FAIL'}")
        print("ALL CHECKS PASS" if report["checks"]["all_pass"] else "SOME CHECKS FAIL (or are missing)")
    out = folder / "training_quality_checks.json"
    atomic.write_text(out, json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

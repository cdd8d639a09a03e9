"""Two tables of the same runs, side by side: how far a re-run's answers are from the committed rows.

    python benchmarks/compare_rows.py results/training_grid_probe.csv /tmp/rerun.csv --dataset cifar10-jpg

Rows are matched on ``run_key`` (the runner's key of a run's knobs), or on the columns ``--on``
names (``--on n,distance,seed`` for a re-run made with ``run --set``, whose keys differ). Printed: how many matched, the
mean and largest absolute difference in test accuracy (points), and, where both tables record
the ridge head's penalty, how many grid steps apart the chosen penalties are (the speed issue's
criterion for "the same answers": mean at most 0.05 points, largest at most 0.5, penalties the
same or neighbours). Exits 1 when a criterion fails, so it can gate a change.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd

MEAN_POINTS, MAX_POINTS, MAX_STEPS = 0.05, 0.5, 1


def compare(old: pd.DataFrame, new: pd.DataFrame, per_decade: int = 4,
            on: tuple[str, ...] = ("run_key",)) -> tuple[pd.DataFrame, dict]:
    old, new = (f.assign(_distance=f["distance"].fillna(-1.0)) for f in (old, new))  # NaN (original) matches
    keys = [("_distance" if c == "distance" else c) for c in on]
    both = old.merge(new, on=keys, suffixes=("_old", "_new"))
    pick = lambda c: both[c] if c in keys else both[f"{c}_old"]  # noqa: E731
    out = pd.DataFrame({"run_key": pick("run_key"), "n": pick("n"), "distance": pick("_distance").replace(-1.0, np.nan),
                        "seed": pick("seed"),
                        "gap_points": 100 * (both["accuracy_new"] - both["accuracy_old"]).abs()})
    if "penalty_factor_old" in both and "penalty_factor_new" in both:
        out["penalty_steps"] = np.rint(per_decade * np.abs(np.log10(both["penalty_factor_new"]
                                                                     / both["penalty_factor_old"]))).astype(int)
    summary = {"matched": len(out), "old_only": len(old) - len(out), "new_only": len(new) - len(out),
               "mean_points": float(out["gap_points"].mean()), "max_points": float(out["gap_points"].max()),
               "same_penalty": int((out.get("penalty_steps", pd.Series(dtype=int)) == 0).sum()),
               "max_steps": int(out["penalty_steps"].max()) if "penalty_steps" in out else None}
    summary["passes"] = bool(summary["mean_points"] <= MEAN_POINTS and summary["max_points"] <= MAX_POINTS
                             and (summary["max_steps"] is None or summary["max_steps"] <= MAX_STEPS))
    return out, summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", help="the committed table")
    parser.add_argument("new", help="the re-run's table")
    parser.add_argument("--dataset", help="only this dataset's rows")
    parser.add_argument("--per-decade", type=int, default=4, help="penalty grid points per decade")
    parser.add_argument("--on", default="run_key", help="comma-separated columns to match rows on")
    args = parser.parse_args(argv)
    old, new = pd.read_csv(args.old), pd.read_csv(args.new)
    if args.dataset:
        old, new = old[old["dataset"] == args.dataset], new[new["dataset"] == args.dataset]
    if not len(old) or not len(new):
        raise SystemExit("one of the tables has no rows (of that dataset)")
    rows, s = compare(old, new, args.per_decade, tuple(args.on.split(",")))
    if not s["matched"]:
        raise SystemExit(f"no row matches on {args.on}: are they of the same spec? (--on n,distance,seed for --set runs)")
    print(rows.sort_values("gap_points", ascending=False).head(10).to_string(index=False))
    steps = "" if s["max_steps"] is None else (f"; the same penalty in {s['same_penalty']} of {s['matched']}, "
                                               f"at most {s['max_steps']} grid steps apart")
    print(f"\n{s['matched']} runs matched ({s['old_only']} only in the old table, {s['new_only']} only in the new); "
          f"test accuracy differs by {s['mean_points']:.3f} points on average, {s['max_points']:.3f} at most{steps}. "
          f"Criterion (mean <= {MEAN_POINTS}, largest <= {MAX_POINTS}, <= {MAX_STEPS} step): "
          f"{'met' if s['passes'] else 'NOT met'}")
    return 0 if s["passes"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""The whole CPU program of one (dataset, model) on a reduced pool, cold and warm, with the time of
each stage (issue 30, item 3).

    python benchmarks/bench_program.py --dataset cifar10-jpg                  # probe, pool 4,000, test 2,000
    python benchmarks/bench_program.py --dataset food101-64px --pool-limit 8000 --json food.json
    python benchmarks/bench_program.py --smoke                                # the grid alone, tiny: proves it runs

Cold: an empty cache (no stores, dictionary, features or size tables). Warm: the same program
again, the cache kept and the result tables removed. Each phase runs ``storage-scaling run
<experiment>`` for every experiment of the program in order (the grid first: the budget optimum
reads its law), in a subprocess whose ``STORAGE_SCALING_CACHE`` and ``STORAGE_SCALING_RESULTS`` are
temporary folders, with the full spec's blocks of the dataset and model and ``pool_limit`` and
``test_n`` set in them: the book's ``results/`` and ``.cache/`` are never touched.

Printed per experiment and phase: runs, wall seconds, and what the rows say they spent (``fit``:
the ridge or the training; ``features``: feature extraction; ``dictionary``: the probe's k-means;
rows that score one fit, as cross-compression's do, count its seconds once).
The rest of the wall time ("other") is the stores (JPEG XL encode and decode), the budget
experiments' size tables, loading data and start-up; cold minus warm is what the cache saves.
Prints the CPU model: speeds differ between machines of the same kind.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

STAGES = {"fit": "fit_seconds", "features": "feature_seconds", "dictionary": "dictionary_seconds"}


def cpu_model() -> str:
    from bench_ridge_head import cpu_model as model

    return model()


def reduced_specs(dataset: str, model: str, pool_limit: int, test_n: int, only: list[str] | None,
                  folder: Path) -> dict[str, Path]:
    """The program's experiments that have a full-spec block of (dataset, model), each as a JSON spec
    of those blocks with ``pool_limit`` and ``test_n`` set, written to ``folder``."""
    from storage_scaling.experiments import kinds, specs

    out = {}
    for name in kinds.program():
        if only and name not in only:
            continue
        spec = specs.default_spec(name, "full")
        if not specs.matching_blocks(spec, [dataset], [model]):
            continue  # e.g. select, which has blocks for networks only
        spec = specs.restrict(spec, [dataset], [model])
        for block in spec["datasets"]:
            block.update(pool_limit=pool_limit, test_n=test_n)
        specs.check_spec(name, spec)  # a knob this experiment refuses: said before anything runs
        out[name] = folder / f"{name}.json"
        out[name].write_text(json.dumps(spec, indent=1))
    if not out:
        raise SystemExit(f"no experiment of the full profile has a block of dataset {dataset!r} and model {model!r}")
    return out


def run_phase(spec_files: dict[str, Path], dataset: str, model: str, cache: Path, results: Path) -> list[dict]:
    """Every experiment in order, each in its own process; rows' stage seconds summed per experiment."""
    from storage_scaling.experiments import kinds

    env = {**os.environ, "STORAGE_SCALING_CACHE": str(cache), "STORAGE_SCALING_RESULTS": str(results)}
    out = []
    for name, path in spec_files.items():
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "storage_scaling.cli", "run", name, "--profile", "full", "--spec",
                               str(path), "--datasets", dataset, "--models", model], env=env, capture_output=True,
                              text=True)
        if done.returncode:
            raise SystemExit(f"storage-scaling run {name} failed (rc {done.returncode}):\n{done.stderr[-3000:]}")
        wall = time.perf_counter() - start
        rows = pd.read_csv(results / f"{kinds.table_name(name, model)}.csv")
        columns = [c for c in STAGES.values() if c in rows]
        fits = rows.drop_duplicates(columns) if columns else rows  # rows scoring one fit (cross) repeat its seconds
        stages = {stage: float(fits[column].sum()) if column in fits else 0.0 for stage, column in STAGES.items()}
        out.append({"experiment": name, "runs": len(rows), "wall_seconds": wall, **stages,
                    "other": wall - sum(stages.values())})
        print(f"  {name:<11}{len(rows):>6}{wall:>9.0f}" + "".join(f"{v:>13.0f}" for v in stages.values())
              + f"{out[-1]['other']:>9.0f}", flush=True)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="cifar10-jpg")
    parser.add_argument("--model", default="probe")
    parser.add_argument("--pool-limit", type=int, default=4000, help="images of the pool (train + held-out)")
    parser.add_argument("--test-n", type=int, default=2000, help="test images")
    parser.add_argument("--experiments", nargs="+", help="only these experiments of the program")
    parser.add_argument("--smoke", action="store_true", help="the grid alone, pool 600, test 300")
    parser.add_argument("--json", help="also write the breakdown here")
    args = parser.parse_args(argv)
    if args.smoke:
        args.pool_limit, args.test_n, args.experiments = 600, 300, ["grid"]
    if args.pool_limit < 100 or args.test_n < 1:
        raise SystemExit("--pool-limit must be at least 100 and --test-n at least 1")

    from storage_scaling import atomic, provenance

    with tempfile.TemporaryDirectory(prefix="bench_program_") as tmp:
        tmp = Path(tmp)
        spec_files = reduced_specs(args.dataset, args.model, args.pool_limit, args.test_n, args.experiments, tmp)
        print(f"\nthe {args.model} program on {args.dataset}, pool {args.pool_limit:,}, test {args.test_n:,}: "
              f"{', '.join(spec_files)}; CPU: {cpu_model()} ({provenance.device()})")
        phases = {}
        for phase in ("cold", "warm"):
            results = tmp / f"results-{phase}"
            results.mkdir()
            print(f"\n{phase}:\n  {'experiment':<11}{'runs':>6}{'wall s':>9}" + "".join(f"{s + ' s':>13}" for s in STAGES)
                  + f"{'other s':>9}")
            phases[phase] = run_phase(spec_files, args.dataset, args.model, tmp / "cache", results)
    total = {p: sum(r["wall_seconds"] for r in rows) for p, rows in phases.items()}
    shares = {s: sum(r[s] for r in phases["cold"]) / total["cold"] for s in (*STAGES, "other")}
    print(f"\ncold {total['cold'] / 60:.1f} min, warm {total['warm'] / 60:.1f} min (the cache saves "
          f"{(total['cold'] - total['warm']) / 60:.1f} min); cold time by stage: "
          + ", ".join(f"{s} {v:.0%}" for s, v in shares.items()))
    if args.json:
        record = {"dataset": args.dataset, "model": args.model, "pool_limit": args.pool_limit, "test_n": args.test_n,
                  "cpu": cpu_model(), **provenance.stamp(), "phases": phases}
        atomic.write_text(args.json, json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    raise SystemExit(main())

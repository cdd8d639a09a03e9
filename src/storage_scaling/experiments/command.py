"""``storage-scaling run EXPERIMENT``: run (or resume) an experiment from its spec file."""

from __future__ import annotations

import argparse
import json
import tomllib
from pathlib import Path

from .. import data, errors, paths
from ..learn import learners
from . import kinds, runner, specs

PROG = "storage-scaling run"
EXAMPLES = """examples:
  storage-scaling run grid --profile smoke                  # toy size on a CPU, resumes in the cache
  storage-scaling run grid --profile full --show-spec       # print the spec and how many runs it has
  storage-scaling run grid --profile full --datasets cifar10-jpg --models airnet   # on a GPU host
  storage-scaling run budget --profile full --spec my_budget.toml                 # your own spec file
  storage-scaling run grid --set seeds=[0] --set train.steps=100 --models airnet_small   # override every block
  storage-scaling run grid --profile full --set seeds=[0] --results my_grid.csv   # full size: a table of your own
  storage-scaling run all --profile full --models probe --datasets cifar10-jpg     # every experiment, on a CPU
  storage-scaling run grid --profile full --models probe --workers 2              # a local Dask cluster
  storage-scaling run grid --profile full --scheduler tcp://head:8786   # GPU workers: dask worker ... --resources GPU=1
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=tuple(kinds.EXPERIMENTS) + ("all",), help="the experiment")
    parser.add_argument("--profile", default="smoke", choices=specs.PROFILES)
    parser.add_argument("--results", default=None,
                        help="CSV to write, for a spec of one model (default: results/<file>_<model>.csv for "
                             f"--profile full; <cache>/{runner.SMOKE_RESULTS}/<file>_<model>.csv for smoke, <cache> "
                             f"being ${paths.CACHE_ENV} or .cache/ in the checkout). Finished runs are kept there, "
                             "so a re-run resumes; delete the file to start over")
    parser.add_argument("--spec", default=None,
                        help="a TOML or JSON file with the spec (default: the profile's file, see --show-spec). "
                             "Unknown keys are refused with the list of valid ones")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="set KEY to VALUE (a TOML value: seeds=[0], train.steps=100, pool=\"all\") in every "
                             "block that runs (after --datasets and --models); train.KEY reaches into the block's "
                             "'train' table. Repeatable; checked like the spec. The runs record it (column "
                             "'overrides'), so they are never the spec's own runs, and go to a table of their own: "
                             f"<cache>/{runner.SMOKE_RESULTS}/{runner.OVERRIDDEN}/ for smoke, --results PATH (needed) "
                             "for full, since results/ holds the book's tables")
    parser.add_argument("--show-spec", action="store_true", help="print the spec and the number of runs, then exit")
    parser.add_argument("--allow-cpu", action="store_true", help="let the full profile train networks on a CPU (slow)")
    parser.add_argument("--datasets", nargs="+", default=None, help="run only these datasets of the spec")
    parser.add_argument("--models", nargs="+", default=None, help="run only these models of the spec")
    from ..practice import cluster

    cluster.add_arguments(parser, local_processes=False)
    parser.add_argument(errors.DEBUG_FLAG, action="store_true", help="show the traceback of an error")


def read_spec(path: str | Path):
    """A spec from a TOML or JSON file; a missing file or a malformed one is one clear error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--spec {path}: no such file; give a TOML or JSON file holding a spec "
                                f"(print the default one with: {PROG} <experiment> --show-spec)")
    text = path.read_text()
    try:
        return tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--spec {path} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
                         "fix the file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"--spec {path} is not valid TOML ({exc}); fix the file") from exc


def run(args: argparse.Namespace) -> int:
    """One experiment, or ``all`` of them in :func:`kinds.program` order (the grid first, so the budget
    optimum finds the law of its rows); with ``all``, an experiment with no block of the chosen
    datasets and models is skipped with a note (``select`` has blocks for networks only)."""
    names = kinds.program() if args.name == "all" else (args.name,)
    if args.results and len(names) > 1:
        raise ValueError("--results names one CSV, but 'all' writes each experiment to its own file; "
                         "leave out --results, or run one experiment at a time")
    if args.spec and len(names) > 1:
        raise ValueError("--spec holds the spec of one experiment; name the experiment instead of 'all'")
    overrides = specs.parse_set(args.overrides)
    if overrides and args.profile == "full" and not args.results and not args.show_spec:
        raise ValueError("--set makes runs other than the full spec's, and results/ holds the book's tables; name "
                         "the table to write with --results PATH, or run --profile smoke")
    for dataset in args.datasets or ():
        data.spec(dataset)  # unknown dataset -> one line naming the known ones
    for model in args.models or ():
        learners.get(model)
    chosen, skipped = {}, []
    for name in names:  # every spec is read and its keys checked before any experiment starts
        spec = specs.check_spec(name, read_spec(args.spec) if args.spec else specs.default_spec(name, args.profile))
        if len(names) > 1 and not specs.matching_blocks(spec, args.datasets, args.models):
            skipped.append(name)
            continue
        restricted = specs.restrict(spec, args.datasets, args.models)
        if overrides:  # set in the blocks that run, and checked as they leave them
            restricted = specs.check_spec(name, specs.with_overrides(restricted, overrides))
        chosen[name] = (spec, restricted)
    if not chosen:
        raise ValueError(f"no experiment of the {args.profile} profile has a block with dataset in "
                         f"{list(args.datasets or [])} and model in {list(args.models or [])}; see the blocks "
                         f"with: {PROG} <experiment> --profile {args.profile} --show-spec")
    pool = None
    if not args.show_spec and (args.workers is not None or args.scheduler is not None):
        from ..practice import cluster

        gpu = args.profile == "full" and not args.allow_cpu and any(
            runner.learners_need_gpu(m) for _, r in chosen.values() for m in specs.models_of(r))
        pool = cluster.open_pool(workers=args.workers, scheduler=args.scheduler,
                                 worker_resources={"GPU": 1} if gpu else None)
        print(f"running on {pool.description}")
    try:
        _run_chosen(names, chosen, skipped, args, pool)
    finally:
        if pool is not None:
            pool.close()
    return 0


def _run_chosen(names, chosen, skipped, args, pool) -> None:
    for name in names:
        if name in skipped:
            print(f"{name}: skipped, its {args.profile} spec has no block of "
                  f"{_which(args.datasets, 'dataset')} and {_which(args.models, 'model')}")
            continue
        spec, restricted = chosen[name]
        if args.show_spec:
            print(name, json.dumps(restricted, indent=1),
                  f"-> {len(specs.build_runs(name, restricted, checked=True))} runs")
            continue
        whole = specs.restrict(spec, models=specs.models_of(restricted))["datasets"] == restricted["datasets"]
        frame = runner.run_experiment(name, args.profile, results_path=args.results, spec=restricted,
                                      allow_cpu=args.allow_cpu, write_sidecar=None if whole else False, pool=pool,
                                      checked=True)
        where = args.results or ", ".join(
            str(runner.default_results_path(name, args.profile, m, bool(restricted.get(specs.OVERRIDES))))
            for m in specs.models_of(restricted))
        print(f"{name}: {len(frame)} rows in {where} (a re-run resumes there)")
        show = [c for c in ("dataset", "model", "n", "distance", "budget_per_l15", "budget", "seed", "mean_bytes",
                            "error") if c in frame]
        print(frame[show].to_string(index=False))


def _which(names, what: str) -> str:
    return f"{what} {' or '.join(names)}" if names else f"any {what}"


def main(argv=None) -> int:
    """The command line; bad input -> one line on stderr and exit status 2 (``--debug``: traceback)."""
    parser = argparse.ArgumentParser(prog=PROG, description="Run (or resume) a training experiment.",
                                     epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return errors.run_main(lambda a: run(parser.parse_args(a)), argv, PROG)

"""The resumable runner: train each run's model once, score it, append one row per run.

Rows go to a :class:`results.ResultsStore`, one table per experiment and model
(``<result file>_<model>.csv``), as soon as a run finishes; re-running skips every run already
recorded, and a run interrupted half-way has no row and is simply done again (no lost or
duplicated rows). Progress is shown with tqdm. Runs that differ only in their scoring set
(``kinds.EVAL_KEYS``) share one training; a run whose experiment names another's kept model
(:mod:`.kept`: cross-compression scores the grid's whole-pool models) trains none.

Tables of ``full`` go to ``results/`` with a ``.json`` sidecar once every run is done (what the
book's ``publish`` profile loads); ``smoke`` tables go to ``<cache>/smoke-results/`` (``<cache>``
is ``$STORAGE_SCALING_CACHE`` or ``.cache/``), one stable place, so a smoke run resumes too. Runs
of a spec with ``overrides`` (``--set``) never share the tables the book reads: at full size they
need a table of their own (``results_path``), smoke ones go to ``<cache>/smoke-results/overrides/``.

Each training's plan (:meth:`kinds.Experiment.plan`) is computed once, before any training (an
infeasible budget stops the run there), and handed to that training, also through a pool. Each
row is checked before it is appended: its metrics against its parameters (:func:`row_metrics`)
and its columns against the declared schema (:func:`results_integrity.check_row`).
"""

from __future__ import annotations

import contextlib
import copy
import json
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .. import atomic, data, paths, tables
from ..results import ResultsStore, canonical, run_key
from ..results_integrity import check_row
from . import inputs, kept, kinds, specs

SMOKE_RESULTS = "smoke-results"  # folder of the cache holding smoke tables
OVERRIDDEN = "overrides"  # subfolder of the smoke tables holding the runs of specs with overrides (--set)


def results_folder(profile: str) -> Path:
    """``results/`` for ``full``; ``<cache>/smoke-results/`` for ``smoke``."""
    if specs.check_profile(profile) == "full":
        return paths.results_dir()
    return paths.cache_dir() / SMOKE_RESULTS


def default_results_path(name: str, profile: str, model: str, overridden: bool = False) -> Path:
    """The table a run writes without ``results_path``; runs of a spec with overrides (``overridden``,
    smoke only: full ones need a table of their own) go to ``<cache>/smoke-results/overrides/``, apart
    from the spec's own runs, which the book's smoke tables read."""
    folder = results_folder(profile)
    return kinds.result_path(name, model, folder / OVERRIDDEN if overridden else folder)


_EVAL: "OrderedDict[str, inputs.ImagesAt]" = OrderedDict()


def eval_images(run: dict) -> inputs.ImagesAt:
    """The scoring set of a run, stored as the run says (a few kept across runs)."""
    key = canonical({k: run[k] for k in ("dataset", "eval_split", "classes", "test_n", "pool", "effort",
                                         *kinds.EVAL_KEYS)})
    if key not in _EVAL:
        images = data.eval_set(run["dataset"], run["eval_split"], run["classes"], run["test_n"], run["pool"])
        _EVAL[key] = inputs.ImagesAt(inputs.compress(images, run["test_codec"], run["test_distance"], run["effort"]),
                                     images.labels)
        while len(_EVAL) > 8:
            _EVAL.popitem(last=False)
    return _EVAL[key]


def execute_group(runs: list[dict], device=None, plan: dict | None = None):
    """Fit the model once for runs that differ only in their scoring set; yield (run, metrics). An
    experiment that trains and scores its runs itself (``executes_itself``) does so instead.

    ``plan`` is the experiment's plan of the first run (:meth:`kinds.Experiment.plan`), computed
    here when not given (the runner computes each plan once, before any training, and hands it on)."""
    from ..learn import learners

    head = runs[0]
    experiment = kinds.get(head["experiment"])
    plan = experiment.plan(head) if plan is None else plan
    if experiment.executes_itself:  # it trains and scores each run its own way (JPEG-DL)
        for run in runs:
            yield run, row_metrics(run, experiment.execute(run, plan, device=device))
        return
    training = experiment.training_set(head, plan)
    source = experiment.model_source(head)
    fitted = kept.load(source) if source is not None else None
    origin = {} if source is None else {"model_from": run_key(source) if fitted is not None else ""}
    if fitted is None:
        k = data.num_classes(head["dataset"], head["classes"])
        fitted = learners.get(head["model"]).fit(training, head, num_classes=k, seed=int(head["seed"]), device=device)
    if experiment.keeps_model(head, plan):
        kept.save(head, fitted)
    for run in runs:
        test = eval_images(run)
        metrics = {**training.storage, **fitted.evaluate(test), **fitted.metrics, **origin,
                   "n_test": len(test.labels), "test_mean_bytes": test.entry.mean_bytes}
        yield run, row_metrics(run, metrics)


def _same(a, b) -> bool:
    try:
        return bool(a == b) or (a != a and b != b)  # NaN is the same as NaN
    except (TypeError, ValueError):  # arrays and the like: never a run parameter
        return False


def row_metrics(run: dict, metrics: dict) -> dict:
    """The metrics a run's row adds to its parameters. A metric named like a parameter is left out
    when it holds the parameter's value, and refused when it holds another (a row cannot say both)."""
    clash = sorted(k for k in metrics if k in run and not _same(run[k], metrics[k]))
    if clash:
        said = "; ".join(f"{k}: parameter {run[k]!r}, metric {metrics[k]!r}" for k in clash)
        raise ValueError(f"experiment {run['experiment']!r}, run {run_key(run)}: metric(s) {clash} clash with "
                         f"the run's parameters of the same name ({said}); rename the metric")
    return {k: v for k, v in metrics.items() if k not in run}


@dataclass(frozen=True)
class GroupTask:
    """One training, its scoring runs and the plan of its first run (plain values: it pickles), for a
    worker of a pool (:mod:`..practice.cluster`)."""

    runs: list
    device: object = None
    plan: dict | None = None


def execute_group_task(task: GroupTask) -> tuple[list, float]:
    """:func:`execute_group` in a worker: every (run, metrics) of the group, and its seconds. The
    rows go back to the client, which alone writes the results store."""
    began = time.monotonic()
    return list(execute_group(task.runs, device=task.device, plan=task.plan)), time.monotonic() - began


def _group(runs: list[dict]) -> list[list[dict]]:
    groups: "OrderedDict[str, list[dict]]" = OrderedDict()
    for r in runs:
        groups.setdefault(kept.training_key(r), []).append(r)
    return list(groups.values())


def _require_gpu(name: str, pending: int, device, allow_cpu: bool) -> None:
    if not pending or allow_cpu:
        return
    import torch

    from ..learn import train

    wanted = torch.device(device) if device is not None else train.default_device()
    if wanted.type != "cuda":
        raise ValueError(f"experiment {name!r} has {pending} full-size runs left to train and no GPU is "
                         f"available; run it on a GPU host (storage-scaling run {name} --profile full), use "
                         "--profile smoke, or add --allow-cpu to train on this CPU anyway (very slow; "
                         "allow_cpu=True from Python)")


def run_experiment(name: str, profile: str = "smoke", results_path=None, spec: dict | None = None,
                   progress: bool = True, device=None, write_sidecar: bool | None = None,
                   allow_cpu: bool = False, deadline: float | None = None, pool=None,
                   checked: bool = False) -> pd.DataFrame:
    """Run (or resume) experiment ``name``; return its rows (one per run, provenance included).

    Each model of the spec writes its own table (``results_path`` names it when the spec has one
    model). Every run is built and checked first (bad input -> ValueError before any training);
    runs already recorded are skipped; each finished run is appended at once. ``deadline`` (a
    ``time.monotonic()`` value) stops before a training that would not finish in time, judged by
    the longest one so far. With ``profile="full"`` and every run of a model done, a ``.json``
    sidecar (the spec, code version, device, this call's duration) is written beside its CSV, by
    the call that recorded its last runs (or that finds it missing).

    ``pool`` (a :class:`storage_scaling.practice.cluster.Pool`, e.g. a Dask cluster) spreads the
    independent trainings over its workers; their rows come back here and are written by this
    process alone, in the order they finish (the rows of a run do not depend on where it ran).
    Networks that need a GPU ask the cluster for a ``GPU`` resource per training.

    ``checked``: the caller has just checked this very spec (:func:`specs.check_spec`), so it is not
    checked again. A spec with ``overrides`` (``--set``) at ``profile="full"`` needs ``results_path``:
    its runs are not the full spec's, and ``results/`` holds the book's tables.
    """
    spec = copy.deepcopy(spec) if spec is not None else specs.default_spec(name, profile)
    if not checked:
        specs.check_spec(name, spec)
    models = specs.models_of(spec)
    if spec.get(specs.OVERRIDES) and profile == "full":
        book = {default_results_path(name, profile, m).resolve() for m in models}
        if results_path is None or Path(results_path).resolve() in book:
            raise ValueError(f"the runs of {name!r} with overrides ({specs.overrides_label(spec[specs.OVERRIDES])}) "
                             f"are not runs of the full spec, and {results_folder(profile)} holds the book's tables; "
                             "name another table to write with --results PATH (results_path=), or run the smoke "
                             "profile")
    if results_path is not None and len(models) > 1:
        raise ValueError(f"results_path names one table, but this spec has models {models}, one table each; "
                         "restrict the spec to one model, or leave results_path out")
    runs = specs.build_runs(name, spec, checked=True)
    overridden = bool(spec.get(specs.OVERRIDES))
    paths_by_model = {m: Path(results_path) if results_path is not None
                      else default_results_path(name, profile, m, overridden) for m in models}
    with contextlib.ExitStack() as held:
        preflight(runs, paths_by_model.values())
        for path in paths_by_model.values():  # one run per table at a time; the second is refused here
            held.enter_context(atomic.exclusive(path))
        return _run_held(name, profile, spec, runs, models, paths_by_model, results_path, progress, device,
                         write_sidecar, allow_cpu, deadline, pool)


def preflight(runs: list[dict], tables_to_write) -> None:
    """What would fail after hours of training, checked before the first one: every data file the
    runs read against its checksum, and that the result and cache folders take new files."""
    for dataset in sorted({r["dataset"] for r in runs}):
        data.verify_dataset(dataset)
    for folder in sorted({Path(p).parent for p in tables_to_write}):
        atomic.check_writable(folder, "the results folder",
                              f"make it writable (chmod u+w {folder}) or write elsewhere (--results PATH, or "
                              f"${paths.RESULTS_ENV})")
    cache = paths.cache_dir()
    atomic.check_writable(cache, "the cache folder",
                          f"make it writable (chmod u+w {cache}) or point ${paths.CACHE_ENV} at a writable folder")


def _run_held(name, profile, spec, runs, models, paths_by_model, results_path, progress, device, write_sidecar,
              allow_cpu, deadline, pool) -> pd.DataFrame:
    """:func:`run_experiment` once its checks passed and it holds its tables."""
    stores = {m: ResultsStore(p) for m, p in paths_by_model.items()}
    done = {m: store.keys() for m, store in stores.items()}  # one read of each table (checked)
    if profile == "full" and results_path is None:  # first, so an interrupted table shows "k of N"
        for model in models:
            record_run_list(name, model, spec, [r for r in runs if r["model"] == model], paths_by_model[model])
    pending = [r for r in runs if run_key(r) not in done[r["model"]]]
    if profile == "full":
        needing = sum(1 for r in pending if learners_need_gpu(r["model"]))
        if getattr(pool, "remote", False):  # the trainings run on the cluster's GPU workers, not here
            if needing and not allow_cpu and not pool.has_resource("GPU"):
                raise ValueError(f"experiment {name!r} has {needing} runs that need a GPU and no worker of "
                                 f"{pool.description} declares one; start the workers with --resources GPU=1, "
                                 "or add --allow-cpu")
        else:
            _require_gpu(name, needing, device, allow_cpu)
    experiment = kinds.get(name)
    groups = _group(pending)  # one training each
    checks = _progress(total=len(groups), initial=0, desc=f"{name} (checking budgets)",
                       enabled=progress and not experiment.cheap_to_list)  # size tables: minutes at full size
    work = deque()
    for group in groups:  # every plan (sizes, budgets) checked before any training, and kept for it
        work.append((group, experiment.plan(group[0])))
        checks.update(1)
    checks.close()
    start = time.perf_counter()
    bar = _progress(total=len(runs), initial=len(runs) - len(pending), desc=name, enabled=progress)
    longest = 0.0
    recorded = {m: 0 for m in models}

    def record(results):
        for run, metrics in results:
            check_row(run, metrics, f"{stores[run['model']].path} (run {run_key(run)})")  # before it is written
            stores[run["model"]].append(run, metrics)  # no other run writes this table: we hold it
            recorded[run["model"]] += 1
            bar.update(1)

    def on_time(began: float) -> bool:
        if deadline is not None and began + longest > deadline:
            print(f"{name}: stopping at the deadline with {bar.total - bar.n} runs left (a re-run resumes)")
            return False
        return True

    try:
        if pool is None or pool.kind == "serial":
            while work:
                began = time.monotonic()
                if not on_time(began):
                    break
                group, plan = work.popleft()  # a plan is let go once its training is done
                record(execute_group(group, device=device, plan=plan))
                longest = max(longest, time.monotonic() - began)
        else:
            gpu = profile == "full" and not allow_cpu and any(learners_need_gpu(r["model"]) for r in pending)

            def tasks():
                while work:
                    if not on_time(time.monotonic()):
                        return
                    group, plan = work.popleft()
                    yield GroupTask(group, device, plan)

            for _, (results, seconds) in pool.imap_unordered(execute_group_task, tasks(),
                                                              resources={"GPU": 1} if gpu else None):
                record(results)
                longest = max(longest, seconds)
    finally:
        bar.close()
    frames = []
    for model, store in stores.items():
        mine = [r for r in runs if r["model"] == model]
        frame = rows_for(store, mine)
        frames.append(frame)
        path = paths_by_model[model]
        done = len(frame) == len(mine)
        # a re-run that finds nothing to do keeps the sidecar of the run that completed the table
        fresh = recorded[model] > 0 or not tables.table_paths(path.stem, path.parent)[1].is_file()
        if write_sidecar if write_sidecar is not None else (profile == "full" and done and fresh):
            tables.write_table(path.stem, store.frame(), specs.table_params(name, profile, model, spec),
                               time.perf_counter() - start, results_dir=path.parent)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def learners_need_gpu(model: str) -> bool:
    """Networks need a GPU at full size; a model may say otherwise (``needs_gpu = False``)."""
    from ..learn import learners

    return bool(getattr(learners.get(model), "needs_gpu", True))


def rows_for(store: ResultsStore, runs: list[dict]) -> pd.DataFrame:
    frame = store.frame()
    if frame.empty:
        return frame
    keys = {run_key(r) for r in runs}
    return frame[frame["run_key"].astype(str).isin(keys)].reset_index(drop=True)


def run_list_path(table: Path) -> Path:
    """``results/<table>.runs.json``: the run keys of an experiment whose runs cannot be listed
    without encoding (budget sizes, L(15)), per dataset, as the runner last expanded them."""
    return table.with_name(table.stem + ".runs.json")


def record_run_list(name: str, model: str, spec: dict, runs: list[dict], table: Path) -> None:
    """Write :func:`run_list_path` for the datasets just run, so the book can show a partial table
    of such an experiment with its count. Only for blocks of the default full spec (a custom spec's
    runs are not runs of the book's table); other datasets' keys are kept."""
    experiment = kinds.get(name)
    blocks = specs.restrict(spec, models=[model])["datasets"]
    default = specs.restrict(specs.default_spec(name, "full"), models=[model])["datasets"]
    if all(experiment.lists_cheaply(b) for b in blocks) or any(b not in default for b in blocks):
        return
    params = json.loads(canonical(specs.table_params(name, "full", model)))
    path = run_list_path(table)
    old = json.loads(path.read_text()) if path.is_file() else {}
    keys = old.get("run_keys", {}) if old.get("params") == params else {}
    for block in blocks:
        keys[block["dataset"]] = sorted(run_key(r) for r in runs if r["dataset"] == block["dataset"])
    atomic.write_text(path, json.dumps({"params": params, "run_keys": keys}, indent=1, sort_keys=True) + "\n")


def _listed_runs(name: str, model: str, spec: dict, table: Path) -> tuple[set[str], int] | None:
    """(run keys, total runs of the spec) of an experiment that does not list cheaply, from its
    run list and the blocks' counts; None when a dataset's count is unknown or the list is stale."""
    path = run_list_path(table)
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    if record.get("params") != json.loads(canonical(specs.table_params(name, "full", model))):
        return None
    experiment, keys, total = kinds.get(name), set(), 0
    for block in spec["datasets"]:
        listed = record["run_keys"].get(block["dataset"])
        count = len(listed) if listed is not None else experiment.count_runs(block)
        if count is None:
            return None
        keys.update(listed or [])
        total += count
    return keys, total


def committed_rows(name: str, model: str, results_dir: Path | None = None) -> tuple[pd.DataFrame, dict] | None:
    """The committed rows of an unfinished full-size table, for ``tables.profile_table(partial=)``.

    Only rows that are runs of today's full spec count (a stale row of an older spec does not),
    with how many runs the spec has. Experiments whose runs need encodes to be listed (size tables
    of budget and randomized; L(15) of a ``budgets_per_l15`` block) are counted from the run list
    the runner recorded (:func:`record_run_list`) and the blocks' own counts.
    """
    path = kinds.result_path(name, model, results_dir or paths.results_dir())
    if not path.is_file():
        return None
    spec = specs.restrict(specs.default_spec(name, "full"), models=[model])
    if all(kinds.get(name).lists_cheaply(b) for b in spec["datasets"]):
        runs = specs.build_runs(name, spec)
        keys, total = {run_key(r) for r in runs}, len(runs)
    else:
        listed = _listed_runs(name, model, spec, path)
        if listed is None:
            return None
        keys, total = listed
    frame = ResultsStore(path).frame()
    frame = frame[frame["run_key"].astype(str).isin(keys)].reset_index(drop=True) if len(frame) else frame
    if frame.empty:
        return None
    return frame, {"done": len(frame), "total": total, "devices": sorted(set(frame["device"].astype(str))),
                   "code_versions": sorted(set(frame["code_version"].astype(str)))}


def recorded_rows(profile: str, results_dir: Path | None = None) -> dict[str, pd.DataFrame]:
    """Every experiment's rows already recorded for ``profile``, one frame per experiment with all
    models' rows (each with ``model``); nothing is run. ``smoke`` reads the smoke results in the
    cache, ``publish`` and ``full`` read ``results/``. An experiment with no table is left out."""
    spec_profile = "smoke" if profile == "smoke" else "full"
    folder = Path(results_dir) if results_dir is not None else results_folder(spec_profile)
    out = {}
    for name in kinds.EXPERIMENTS:
        frames = []
        for model in specs.models_of(specs.default_spec(name, spec_profile)):
            path = kinds.result_path(name, model, folder)
            if path.is_file():
                frame = ResultsStore(path).frame()
                frames.append(frame if "model" in frame.columns else frame.assign(model=model))
        if frames:
            out[name] = pd.concat(frames, ignore_index=True)
    return out


def setting_progress(name: str, results_dir: Path | None = None) -> dict[tuple[str, str], tuple[int, int]]:
    """(dataset, model) -> (runs finished, runs in today's full spec) of an experiment whose runs are
    listed without encoding (the grid): what a chapter may treat as complete. A block whose runs
    cannot be listed cheaply is left out."""
    experiment, full = kinds.get(name), specs.default_spec(name, "full")
    progress = {}
    for model in specs.models_of(full):
        path = kinds.result_path(name, model, results_dir or paths.results_dir())
        done = ResultsStore(path).keys() if path.is_file() else set()
        for block in specs.matching_blocks(full, models=[model]):
            if experiment.lists_cheaply(block):
                runs = specs.build_runs(name, {**full, "datasets": [block]})
                progress[(block["dataset"], model)] = (sum(run_key(r) in done for r in runs), len(runs))
    return progress


def run_table(params: dict, progress: bool = False) -> pd.DataFrame:
    """``compute`` for ``tables.profile_table``; ``params`` from :func:`specs.table_params`."""
    name, profile, model = params["experiment"], params["profile"], params["model"]
    return run_experiment(name, profile, results_path=default_results_path(name, profile, model),
                          spec=params["spec"], progress=progress, write_sidecar=False)


def table(name: str, model: str, profile: str, smoke_model: str | None = None, progress: bool = False):
    """One experiment's table for one model as the profile asks (``tables.profile_table``):
    committed full rows in ``publish`` (partial ones under a banner), else the smoke table of
    ``smoke_model`` (default: the smoke spec's first model)."""
    smoke_model = smoke_model or specs.models_of(specs.default_spec(name, "smoke"))[0]
    smoke_params = specs.table_params(name, "smoke", smoke_model)
    return tables.profile_table(
        kinds.table_name(name, model), profile=profile,
        full_params=smoke_params if profile == "smoke" else specs.table_params(name, "full", model),
        smoke_params=smoke_params,
        compute=lambda p: run_table(p, progress=progress),
        partial=lambda: committed_rows(name, model))


def book_tables(name: str, profile: str, progress: bool = False) -> list:
    """The tables a chapter shows for an experiment, one per model, each with a ``model`` column.

    ``publish``: every model of the full spec that has committed (or partial) rows; when none has,
    the smoke table alone, under its pending banner. ``smoke``: the smoke spec's models. ``full``:
    every model of the full spec, computed.
    """
    if profile == "smoke":
        models = specs.models_of(specs.default_spec(name, "smoke"))
        return [table(name, m, "smoke", smoke_model=m, progress=progress) for m in models]
    models = specs.models_of(specs.default_spec(name, "full"))
    found = [table(name, m, profile, progress=progress) for m in models] if profile == "full" else []
    if profile == "publish":
        for m in models:
            t = tables.load_committed_or_partial(kinds.table_name(name, m),
                                                 specs.table_params(name, "full", m),
                                                 lambda m=m: committed_rows(name, m))
            if t is not None:
                found.append(t)
        if not found:
            found = [table(name, models[0], "publish", progress=progress)]  # computes the smoke table
    return found


def book_table(name: str, profile: str, progress: bool = False):
    """:func:`book_tables` as one table (rows carry ``model``; every part's banner is kept)."""
    return tables.combine(book_tables(name, profile, progress=progress))


def _progress(total: int, initial: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, disable=not enabled, unit="run")

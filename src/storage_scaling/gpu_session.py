"""One prepared session on a GPU host: checks, staging, the training program in a time box.

The GPU host this project can borrow (one H200, 16 cores, no network) is lent for 15 minutes in
all, its start included, with at most 64 MiB carried per command. This module makes those
minutes count, and makes a typo cost nothing: the very same entry point rehearses the session at
smoke size on a CPU (``--dry-run``, run by the tests).

Here, before the call (CPU)::

    storage-scaling gpu prepare     # .cache/gpu: wheels, the data pack, code version
    storage-scaling gpu manifest    # results/gpu_staging.json: every staged image's bytes
    storage-scaling gpu run --dry-run --out /tmp/rehearsal   # the same session, smoke size

On the GPU host (one command; the device tool carries ``.cache/gpu``)::

    PYTHONPATH=src python3 -m storage_scaling.gpu_session run --budget-s 500 --out "$OUT"

Back here::

    storage-scaling gpu unpack /path/to/results.tgz    # rows into results/

``run`` does, in order, and stops with one line at the first failure of steps 1-2, before any
training:

1. **preflight**: a CUDA device (unless ``--dry-run``); the packages the host lacks (imagecodecs,
   and airbench for the benchmark) carried as wheels and installed into a private folder; the
   data pack's SHA256 checksums;
2. **staging**: the JPEG XL stores of the training pool and the test set at every distance the
   stages use, encoded on all cores with the pinned imagecodecs, and every image's byte count
   checked against the committed manifest (a digest of the per-image sizes), so the host trains
   on exactly the bytes the book counts;
3. **stages** within ``--budget-s`` seconds: ``quality`` (the whole pool at the original format,
   and the step-doubling check), ``bench`` (airbench 0.1.8 ``train94`` against our trainer on the
   same decoded pixels), ``grid``, ``cross``, then ``original`` and ``naive`` as time allows.
   Rows are written as runs finish; a run that would not finish in time is not started, and the
   next session resumes;
4. **packing**: every 20 s and at the end, ``results.tgz`` in ``--out`` holds the tables written
   so far and the session record (GPU model, seconds per stage, minutes used), so a command
   killed at its time limit still returns its finished rows.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd

from . import atomic, data, errors, paths, provenance

STAGES = ("quality", "bench", "grid", "cross", "original", "naive", "budget", "randomized")
DEFAULT_STAGES = ("quality", "bench", "grid", "cross", "original", "naive")
WHEELS = {"imagecodecs": "imagecodecs==2026.3.6", "airbench": "airbench==0.1.8"}
MANIFEST = "gpu_staging.json"
PACK_EVERY_S = 20.0
PROG = "storage-scaling gpu"


def carry_dir() -> Path:
    """The folder a device call carries (ignored by git): wheels, data pack, code version."""
    return paths.cache_dir() / "gpu"


# ---------------------------------------------------------------------------------------------
# Preflight


def check_stages(stages) -> list[str]:
    stages = list(stages)
    unknown = [s for s in stages if s not in STAGES]
    if unknown or not stages:
        raise ValueError(f"unknown stage(s) {unknown}; choose from {list(STAGES)}")
    return stages


def needed_packages(stages, dry_run: bool) -> list[str]:
    """Packages the session imports that a GPU host may lack (airbench only for a real benchmark)."""
    return ["imagecodecs"] + (["airbench"] if "bench" in stages and not dry_run else [])


def install_wheels(names, wheels: Path, site: Path) -> list[Path]:
    """Install the carried wheels of the packages that cannot be imported; raise before any work."""
    missing = [n for n in names if importlib.util.find_spec(n) is None]
    found = {}
    for name in missing:
        hits = sorted(wheels.glob(f"{name}-*.whl"))
        if not hits:
            raise ValueError(f"this host lacks {name} and no wheel {wheels}/{name}-*.whl was carried: run "
                             f"`{PROG} prepare` on the build machine and carry {carry_dir().name!r}'s folder")
        found[name] = hits[-1]
    if found:
        site.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
               "--upgrade", "--target", str(site), *map(str, found.values())]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise ValueError(f"installing {sorted(found)} from {wheels} failed: {done.stderr.strip()[-300:]}")
        sys.path.insert(0, str(site))
        os.environ["PYTHONPATH"] = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        importlib.invalidate_caches()
    return list(found.values())


def verify_data(dataset: str) -> Path:
    """Point the data module at the carried pack (if any) and check the dataset's checksums."""
    carried = carry_dir() / "data"
    if (carried / "SHA256SUMS").is_file():
        os.environ[paths.DATA_ENV] = str(carried)
    root = paths.data_root()
    spec = data.spec(dataset)
    if root is None:
        raise ValueError(f"no data pack for {dataset!r}: run `{PROG} prepare` here and carry its folder")
    for file in spec.files.values():
        try:
            data.verify_file(root, f"{spec.folder}/{file}")
        except data.DataUnavailableError as exc:
            raise ValueError(str(exc)) from exc
    return root


def preflight(dataset: str, stages, dry_run: bool, cuda_available: bool | None = None) -> dict:
    """Everything that can fail before GPU time is spent; one ValueError naming the fix."""
    stages = check_stages(stages)
    data.spec(dataset)
    if not dry_run:
        if cuda_available is None:
            import torch

            cuda_available = torch.cuda.is_available()
        if not cuda_available:
            raise ValueError("no CUDA device is visible on this host; run on the GPU host, or rehearse "
                             f"on a CPU with `{PROG} run --dry-run`")
    installed = install_wheels(needed_packages(stages, dry_run), carry_dir() / "whl",
                               Path(tempfile.gettempdir()) / "storage-scaling-site")
    root = verify_data(dataset)
    return {"installed_wheels": [p.name for p in installed], "data_root": str(root)}


# ---------------------------------------------------------------------------------------------
# Staging: the stores the stages train and test on, checked byte for byte


def session_spec(name: str, dataset: str, profile: str) -> dict:
    """The experiment's spec restricted to the dataset and to the models that need a GPU (networks)."""
    from . import experiments

    spec = experiments.restrict(experiments.default_spec(name, profile), datasets=[dataset])
    models = [m for m in experiments.models_of(spec) if experiments.runner.learners_need_gpu(m)]
    return experiments.restrict(spec, models=models)


def staged_sets(dataset: str, profile: str, stages) -> list[tuple[str, object, str, float | None]]:
    """(label, image set, codec, distance) of every store the stages read."""
    from . import experiments

    block = session_spec("grid", dataset, profile)["datasets"][0]
    pool = data.pool(dataset, block.get("pool", "paper"), block.get("classes"), block.get("pool_limit"))
    test = data.eval_set(dataset, "test", block.get("classes"), block.get("test_n"), block.get("pool", "paper"))
    distances = [float(d) for d in block["distances"] if d != experiments.ORIGINAL]
    train_distances = list(distances)
    if "naive" in stages:
        naive = session_spec("naive", dataset, profile)["datasets"][0]
        train_distances += [float(d) for d in naive["distances"] if float(d) not in train_distances]
    out = [("pool", pool, "original", None), ("test", test, "original", None)]
    out += [("pool", pool, "jxl", d) for d in train_distances]
    out += [("test", test, "jxl", d) for d in distances]
    return out


def _key(dataset: str, profile: str, label: str, codec: str, distance) -> str:
    return f"{dataset}|{profile}|{label}|{codec}|{'-' if distance is None else f'{distance:g}'}"


def _digest(entry) -> dict:
    import numpy as np

    sizes = np.ascontiguousarray(entry.sizes, dtype="<i8")
    h = hashlib.sha256(sizes.tobytes())
    for i in entry.ids:
        h.update(str(i).encode() + b"\0")
    return {"n": int(len(sizes)), "total_bytes": int(sizes.sum()), "sizes_sha256": h.hexdigest()}


def stage(dataset: str, profile: str, stages, effort: int = 7, progress: bool = True) -> dict:
    """Encode (or reuse) every store and decode its pixels; return {key: byte digest}."""
    from tqdm import tqdm

    from .compress import store

    sets = staged_sets(dataset, profile, stages)
    digests = {}
    for label, images, codec, d in tqdm(sets, desc="staging", unit="store", disable=not progress):
        entry = store.compress(images, codec=codec, setting=d, effort=effort, progress=False)
        entry.pixels()
        digests[_key(dataset, profile, label, codec, d)] = _digest(entry)
    return digests


def check_staged(digests: dict, manifest: dict) -> None:
    """Every staged store must match the committed byte counts exactly."""
    from importlib import metadata

    for key, got in digests.items():
        want = manifest.get(key)
        if want is None:
            raise ValueError(f"no committed byte counts for store {key}: run `{PROG} manifest` on the build "
                             f"machine and commit results/{MANIFEST}")
        if got != want:
            raise ValueError(f"store {key} differs from the committed manifest ({got['n']} images, "
                             f"{got['total_bytes']:,} B here against {want['n']}, {want['total_bytes']:,} B): this "
                             f"host's imagecodecs {metadata.version('imagecodecs')} encodes differently; "
                             f"carry the pinned wheel ({WHEELS['imagecodecs']})")


def load_manifest(results_dir: Path | None = None) -> dict:
    path = (results_dir or paths.results_dir()) / MANIFEST
    return json.loads(path.read_text())["stores"] if path.is_file() else {}


def write_manifest(digests: dict, results_dir: Path | None = None) -> Path:
    path = (results_dir or paths.results_dir()) / MANIFEST
    with atomic.locked(path):
        stores = load_manifest(results_dir)
        stores.update(digests)
        record = {"what": "per-image JPEG XL byte counts of the stores a GPU session trains on "
                          "(sha256 of the int64 sizes and ids); the session refuses to train when its "
                          "own encodes differ", **provenance.stamp(),
                  "imagecodecs": provenance.package_versions(("imagecodecs",))["imagecodecs"],
                  "stores": dict(sorted(stores.items()))}
        atomic.write_text(path, json.dumps(record, indent=1) + "\n")
    return path


# ---------------------------------------------------------------------------------------------
# Stages and packing


def run_bench(results_dir: Path, dry_run: bool, timeout: float) -> dict:
    """airbench against our trainer (:mod:`trainer_benchmark`) in a child process (its own GPU memory)."""
    cmd = [sys.executable, "-m", "storage_scaling.learn.trainer_benchmark", "--skip-food"] + (["--smoke"] if dry_run else [])
    env = {**os.environ, paths.RESULTS_ENV: str(results_dir), "PYTHONUNBUFFERED": "1"}
    try:
        done = subprocess.run(cmd, env=env, timeout=max(1.0, timeout))
    except subprocess.TimeoutExpired:
        return {"status": "out of time"}
    return {"status": "ok" if done.returncode == 0 else f"failed (exit {done.returncode})"}


def run_stage(name: str, dataset: str, profile: str, results_dir: Path, deadline: float, dry_run: bool) -> dict:
    from . import experiments

    if name == "bench":
        return run_bench(results_dir, dry_run, deadline - time.monotonic())
    spec = session_spec(name, dataset, profile)
    out = {"status": "complete", "rows": 0, "runs": 0, "files": []}
    for model in experiments.models_of(spec):
        part = experiments.restrict(spec, models=[model])
        runs = experiments.build_runs(name, part)
        path = experiments.result_path(name, model, results_dir)
        frame = experiments.run_experiment(name, profile, results_path=path, spec=part, allow_cpu=dry_run,
                                           write_sidecar=False, deadline=deadline)
        out["rows"] += int(len(frame))
        out["runs"] += len(runs)
        out["files"].append(path.name)
        if len(frame) < len(runs):
            out["status"] = "partial"
    if name == "quality":
        from .experiments import checks

        rows = pd.concat([pd.read_csv(results_dir / f) for f in out["files"]], ignore_index=True)
        out["whole_pool"] = checks.whole_pool(rows).to_dict("records")
        out["doubling"] = checks.doubling(rows).to_dict("records")
    return out


def session_files(results_dir: Path, dataset: str) -> list[Path]:
    """The tables a session writes: every experiment's tables, the benchmark, the session record."""
    from . import experiments

    names = {experiments.get(s).result_file for s in STAGES if s != "bench"}
    found = [p for p in sorted(results_dir.glob("*.csv")) if any(p.stem.startswith(n + "_") for n in names)]
    return found + [results_dir / n for n in ("bench_train.json", f"gpu_session_{dataset}.json")
                    if (results_dir / n).is_file()]


def pack(out: Path, results_dir: Path, dataset: str) -> Path:
    """results.tgz in ``out``, replaced atomically (a kill mid-way leaves the previous one)."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "results.tgz.partial"
    with tarfile.open(tmp, "w:gz") as tar:
        for f in session_files(results_dir, dataset):
            tar.add(f, arcname=f.name)
    target = out / "results.tgz"
    os.replace(tmp, target)
    return target


class Packer(threading.Thread):
    """Packs the results every few seconds while the stages run."""

    def __init__(self, out: Path, results_dir: Path, dataset: str):
        super().__init__(daemon=True)
        self.args, self.stop = (out, results_dir, dataset), threading.Event()

    def run(self):
        while not self.stop.wait(PACK_EVERY_S):
            try:
                pack(*self.args)
            except OSError as exc:  # a file replaced while being read: the next round packs it
                print(f"packing skipped a round: {exc}", file=sys.stderr)


def write_record(results_dir: Path, dataset: str, record: dict) -> None:
    """Append this session to ``gpu_session_<dataset>.json`` (one entry per session)."""
    path = results_dir / f"gpu_session_{dataset}.json"
    sessions = json.loads(path.read_text()) if path.is_file() else []
    sessions = [s for s in sessions if s.get("started_at") != record["started_at"]] + [record]
    atomic.write_text(path, json.dumps(sessions, indent=1, default=str) + "\n")


def run_session(dataset: str = "cifar10-jpg", stages=DEFAULT_STAGES, budget_s: float = 500.0,
                out: Path | None = None, dry_run: bool = False, results_dir: Path | None = None) -> dict:
    """Preflight, staging, then the stages until ``budget_s`` seconds after the start."""
    began = time.monotonic()
    deadline = began + float(budget_s)
    if not budget_s > 0:
        raise ValueError(f"--budget-s must be a positive number of seconds, got {budget_s}")
    profile = "smoke" if dry_run else "full"
    results_dir = Path(results_dir) if results_dir is not None else paths.results_dir()
    if carry_dir().joinpath("CODE_VERSION").is_file() and provenance._git("rev-parse", "HEAD") is None:
        os.environ.setdefault("STORAGE_SCALING_CODE_VERSION", carry_dir().joinpath("CODE_VERSION").read_text().strip())
    manifest = load_manifest()  # the committed one, whatever --results says
    record = {"dataset": dataset, "profile": profile, "stages": list(stages), "budget_s": budget_s,
              "started_at": provenance.now(), "code_version": provenance.code_version()}
    record.update(preflight(dataset, stages, dry_run))
    import torch

    record.update(device=provenance.device(), torch=torch.__version__, cpu_cores=os.cpu_count())
    print(f"preflight ok on {record['device']} ({time.monotonic() - began:.1f} s)", flush=True)

    t0 = time.monotonic()
    digests = stage(dataset, profile, stages)
    check_staged(digests, manifest)
    record["staging_s"] = round(time.monotonic() - t0, 1)
    print(f"staging ok: {len(digests)} stores match the committed byte counts ({record['staging_s']} s)", flush=True)

    results_dir.mkdir(parents=True, exist_ok=True)
    packer = Packer(out, results_dir, dataset) if out is not None else None
    if packer:
        packer.start()
    record["stage_results"] = []
    try:
        for name in stages:
            if time.monotonic() >= deadline:
                record["stage_results"].append({"stage": name, "status": "not started (out of time)"})
                continue
            t0 = time.monotonic()
            print(f"=== {name} ({deadline - t0:.0f} s left)", flush=True)
            result = run_stage(name, dataset, profile, results_dir, deadline, dry_run)
            result.update(stage=name, seconds=round(time.monotonic() - t0, 1))
            record["stage_results"].append(result)
            print(f"=== {name}: {result}", flush=True)
            write_record(results_dir, dataset, {**record, "seconds_used": round(time.monotonic() - began, 1)})
    finally:
        record["seconds_used"] = round(time.monotonic() - began, 1)
        record["finished_at"] = provenance.now()
        write_record(results_dir, dataset, record)
        if packer:
            packer.stop.set()
            pack(out, results_dir, dataset)
    return record


# ---------------------------------------------------------------------------------------------
# Build-machine side: prepare the carried folder, unpack what came back


def prepare(dataset: str, stages=DEFAULT_STAGES) -> Path:
    """Fill ``.cache/gpu``: the wheels the host lacks, the dataset's pack, the code version."""
    target = carry_dir()
    wheels = target / "whl"
    wheels.mkdir(parents=True, exist_ok=True)
    for name in needed_packages(stages, dry_run=False):
        if sorted(wheels.glob(f"{name}-*.whl")):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            if name == "airbench":  # a pure-Python sdist: build its wheel here
                subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels),
                                WHEELS[name]], check=True, cwd=tmp)
            else:
                subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                                "--python-version", "3.12", "--implementation", "cp",
                                "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
                                "-d", str(wheels), WHEELS[name]], check=True, cwd=tmp)
    source = paths.data_root()
    if source is None:
        raise ValueError(f"no data pack to carry: place ../shared/data or set ${paths.DATA_ENV}")
    spec = data.spec(dataset)
    sums = data.read_checksums(source)
    (target / "data" / spec.folder).mkdir(parents=True, exist_ok=True)
    lines = []
    for file in spec.files.values():
        rel = f"{spec.folder}/{file}"
        data.verify_file(source, rel)
        dst = target / "data" / rel
        if not dst.is_file() or dst.stat().st_size != (source / rel).stat().st_size:
            shutil.copyfile(source / rel, dst)
        lines.append(f"{sums[rel]}  {rel}")
    atomic.write_text(target / "data" / "SHA256SUMS", "\n".join(lines) + "\n")
    atomic.write_text(target / "CODE_VERSION", provenance.code_version() + "\n")
    size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    if size > 60 * 2**20:
        raise ValueError(f"{target} holds {size / 2**20:.1f} MiB, more than one device call carries (64 MiB "
                         "with the working tree): carry less")
    return target


def unpack(archive: Path, results_dir: Path | None = None) -> list[str]:
    """Put the tables of a session's results.tgz into results/ (they replace the older copies)."""
    results_dir = results_dir or paths.results_dir()
    names = []
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if not member.isfile() or "/" in member.name or member.name.startswith("."):
                raise ValueError(f"{archive} holds an unexpected entry {member.name!r}; not unpacking it")
            atomic.write_bytes(results_dir / member.name, tar.extractfile(member).read())
            names.append(member.name)
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="gpu_command", metavar="step", required=True)
    helps = {"prepare": "fill .cache/gpu (wheels, the data pack, code version) to carry to the GPU host",
             "manifest": "write results/gpu_staging.json: the per-image byte counts the session checks",
             "run": "the session: preflight, staging, stages within --budget-s (on the GPU host, or --dry-run)"}
    for name, text in helps.items():
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("--dataset", default="cifar10-jpg", help="cifar10-jpg or food101-64px")
        p.add_argument("--stages", default=",".join(DEFAULT_STAGES), help=f"comma-separated, from {','.join(STAGES)}")
    sub.choices["manifest"].add_argument("--profile", choices=("smoke", "full", "both"), default="both")
    run = sub.choices["run"]
    run.add_argument("--budget-s", type=float, default=500.0, help="seconds from the start to the last run's end")
    run.add_argument("--out", type=Path, default=None, help="folder for results.tgz (the device tool's $OUT)")
    run.add_argument("--results", type=Path, default=None, help="result tables (default results/; dry runs: the cache)")
    run.add_argument("--dry-run", action="store_true", help="the same session at smoke size on the CPU")
    up = sub.add_parser("unpack", help="put a session's results.tgz into results/")
    up.add_argument("archive", type=Path)
    from .learn import trainer_benchmark

    trainer_benchmark.add_arguments(sub.add_parser(
        "bench", help="our trainer against airbench 0.1.8 on the same pixels -> results/bench_train.json"))


def dispatch(args: argparse.Namespace) -> int:
    if args.gpu_command == "bench":
        from .learn import trainer_benchmark

        return trainer_benchmark.run(args)
    if args.gpu_command == "unpack":
        print("unpacked:", ", ".join(unpack(args.archive)))
        return 0
    stages = check_stages(args.stages.split(","))
    if args.gpu_command == "prepare":
        print(f"ready to carry: {prepare(args.dataset, stages)}")
    elif args.gpu_command == "manifest":
        for profile in (("smoke", "full") if args.profile == "both" else (args.profile,)):
            print(f"manifest: {write_manifest(stage(args.dataset, profile, stages))} ({profile})")
    else:
        results = args.results or (paths.cache_dir() / "gpu-dry-run" / "results" if args.dry_run else None)
        record = run_session(args.dataset, stages, args.budget_s, args.out, args.dry_run, results)
        print(json.dumps(record.get("stage_results"), indent=1, default=str))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return errors.run_main(lambda a: dispatch(parser.parse_args(a)), argv, PROG)


if __name__ == "__main__":
    sys.exit(main())

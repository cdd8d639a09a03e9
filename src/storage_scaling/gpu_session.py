"""One prepared session on a GPU host: checks, staging, the training program in a time box.

The GPU host this project can borrow (one H200, 16 cores, no network) is lent for 15 minutes in
all, its start included, with at most 64 MiB carried per command. This module makes those
minutes count, and makes a typo cost nothing: the very same entry point rehearses the session at
smoke size on a CPU (``--dry-run``, run by the tests).

Here, before the calls (CPU)::

    storage-scaling gpu prepare     # .cache/gpu/part-N: wheels, the data pack, code version (one part per call)
    storage-scaling gpu manifest    # results/gpu_staging.json: every staged image's bytes
    storage-scaling gpu run --dry-run --out /tmp/rehearsal   # the same session, smoke size

On the GPU host, one call per part (the device tool carries ``.cache/gpu/part-N``)::

    PYTHONPATH=src python3 -m storage_scaling.gpu_session receive          # parts 1..k-1, if any
    PYTHONPATH=src python3 -m storage_scaling.gpu_session run --budget-s 500 --out "$OUT"

Back here::

    storage-scaling gpu unpack /path/to/results.tgz    # rows into results/

``run`` does, in order, and stops with one line at the first failure of steps 1-2, before any
training:

1. **preflight**: a CUDA device (unless ``--dry-run``); every carried part present and every
   rebuilt file's SHA256 right; the packages the host lacks (imagecodecs, and airbench for the
   benchmark) installed from the carried wheels into a private folder; the data pack's checksums;
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
import fnmatch
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
from .results import ResultsStore

STAGES = ("quality", "bench", "grid", "cross", "original", "naive", "budget", "randomized")
DEFAULT_STAGES = ("quality", "bench", "grid", "cross", "original", "naive")
WHEELS = {"imagecodecs": "imagecodecs==2026.3.6", "airbench": "airbench==0.1.8"}
MANIFEST = "gpu_staging.json"
PACK_EVERY_S = 20.0
PROG = "storage-scaling gpu"


PART_BYTES = 58 * 2**20  # one device call carries 64 MiB with the working tree (about 3 MB)


def carry_dir() -> Path:
    """The folder the parts are made in (ignored by git): ``part-1``, ``part-2``, ... one per call."""
    return paths.cache_dir() / "gpu"


def received_dir() -> Path:
    """Where a host gathers the parts of successive calls and assembles them. Ignored files of the
    checkout that no later call carries stay on a host between calls, so this folder does too."""
    return paths.cache_dir() / "gpu-received"


# ---------------------------------------------------------------------------------------------
# Carrying more than one call holds: the files are cut into parts, gathered and checked on the host


def split(files: dict[str, Path], out: Path, part_bytes: int = PART_BYTES) -> list[Path]:
    """Cut ``files`` (relative name -> path) into folders ``out/part-1..k`` of at most ``part_bytes``
    each; every part holds an ``index.json`` with the whole files' sizes and SHA256s."""
    if part_bytes < 1:
        raise ValueError(f"part_bytes must be positive, got {part_bytes}")
    table = {}
    for rel, path in sorted(files.items()):
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        table[rel] = {"size": Path(path).stat().st_size, "sha256": digest}
    pieces, part, room = [[]], 0, part_bytes
    for rel, path in sorted(files.items()):
        offset, size = 0, table[rel]["size"]
        while offset < size or (size == 0 and offset == 0):
            if room == 0:
                pieces.append([])
                part, room = part + 1, part_bytes
            length = min(room, size - offset)
            pieces[part].append({"file": rel, "offset": offset, "length": length})
            offset, room = offset + length, room - length
            if size == 0:
                break
    if out.exists():
        shutil.rmtree(out)
    folders = []
    for i, chunk in enumerate(pieces, start=1):
        folder = out / f"part-{i}"
        folder.mkdir(parents=True)
        for j, piece in enumerate(chunk):
            piece["name"] = f"piece-{j:03d}.bin"
            with open(files[piece["file"]], "rb") as f:
                f.seek(piece["offset"])
                (folder / piece["name"]).write_bytes(f.read(piece["length"]))
        set_id = hashlib.sha256(json.dumps(table, sort_keys=True).encode()).hexdigest()[:12]
        index = {"set": set_id, "part": i, "parts": len(pieces), "files": table, "pieces": chunk}
        atomic.write_text(folder / "index.json", json.dumps(index, indent=1) + "\n")
        folders.append(folder)
    return folders


def receive(parts_root: Path, into: Path) -> list[int]:
    """Copy the parts this call carried (``parts_root/part-*``) into ``into``; the parts held so far.
    Parts of another carried set (an older ``prepare``) are dropped first."""
    incoming = [f for f in sorted(Path(parts_root).glob("part-*")) if (f / "index.json").is_file()]
    sets = {json.loads((f / "index.json").read_text())["set"] for f in incoming}
    held = {json.loads(f.read_text())["set"] for f in into.glob("part-*/index.json")}
    if incoming and held - sets:
        shutil.rmtree(into)
        into.mkdir(parents=True)
    for folder in incoming:
        target = into / folder.name
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(folder, target)
    return sorted(json.loads(f.read_text())["part"] for f in into.glob("part-*/index.json"))


def assemble(into: Path) -> Path | None:
    """Rebuild the carried files from every part in ``into`` (None when no part came); a missing part
    or a file whose SHA256 differs is one clear error."""
    indexes = [json.loads(f.read_text()) for f in sorted(into.glob("part-*/index.json"))]
    if not indexes:
        return None
    parts = indexes[0]["parts"]
    have = {ix["part"] for ix in indexes}
    missing = sorted(set(range(1, parts + 1)) - have)
    if missing:
        raise ValueError(f"carried part(s) {missing} of {parts} have not arrived: call the device once per part "
                         f"(carry .cache/gpu/part-N and run `{PROG} receive`), then run the session")
    stage = into / "stage"
    for rel, meta in indexes[0]["files"].items():
        target = stage / rel
        if target.is_file() and target.stat().st_size == meta["size"] and \
                hashlib.sha256(target.read_bytes()).hexdigest() == meta["sha256"]:
            continue
        chunks = sorted(((p["offset"], into / f"part-{ix['part']}" / p["name"]) for ix in indexes
                         for p in ix["pieces"] if p["file"] == rel))
        content = b"".join(path.read_bytes() for _, path in chunks)
        if len(content) != meta["size"] or hashlib.sha256(content).hexdigest() != meta["sha256"]:
            raise ValueError(f"carried file {rel} does not match its checksum after assembly "
                             f"({len(content):,} of {meta['size']:,} bytes); carry its parts again")
        atomic.write_bytes(target, content)
    return stage


def carried_root() -> Path | None:
    """The assembled carried files (wheels, data, code version), gathering this call's parts first."""
    into = received_dir()
    into.mkdir(parents=True, exist_ok=True)
    receive(carry_dir(), into)
    return assemble(into)


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
                             f"`{PROG} prepare` on the build machine and carry its parts (.cache/gpu/part-N)")
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


def verify_data(dataset: str, carried: Path | None = None) -> Path:
    """Point the data module at the carried pack (if any) and check the dataset's checksums."""
    if carried is not None and (carried / "data" / "SHA256SUMS").is_file():
        os.environ[paths.DATA_ENV] = str(carried / "data")
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
    carried = carried_root()
    installed = install_wheels(needed_packages(stages, dry_run), (carried or carry_dir()) / "whl",
                               Path(tempfile.gettempdir()) / "storage-scaling-site")
    root = verify_data(dataset, carried)
    if carried is not None and (carried / "CODE_VERSION").is_file() and not provenance.in_git_checkout():
        os.environ.setdefault("STORAGE_SCALING_CODE_VERSION", (carried / "CODE_VERSION").read_text().strip())
        provenance.code_version.cache_clear()
    return {"installed_wheels": [p.name for p in installed], "data_root": str(root),
            "carried": str(carried) if carried else None}


# ---------------------------------------------------------------------------------------------
# Staging: the stores the stages train and test on, checked byte for byte


def session_spec(name: str, dataset: str, profile: str) -> dict | None:
    """The experiment's spec restricted to the dataset and to the models that need a GPU (networks);
    None when the spec has no such block."""
    from . import experiments

    spec = experiments.default_spec(name, profile)
    blocks = [b for b in spec["datasets"]
              if b["dataset"] == dataset and experiments.runner.learners_need_gpu(b["model"])]
    return {**spec, "datasets": blocks} if blocks else None


def staged_sets(dataset: str, profile: str, stages) -> list[tuple[str, object, str, float | None]]:
    """(label, image set, codec, distance) of every store the stages read."""
    from . import experiments

    grid = session_spec("grid", dataset, profile)
    if grid is None:
        raise ValueError(f"the {profile} grid spec has no network block for {dataset!r}: nothing to stage")
    block = grid["datasets"][0]
    pool = data.pool(dataset, block.get("pool", "paper"), block.get("classes"), block.get("pool_limit"))
    test = data.eval_set(dataset, "test", block.get("classes"), block.get("test_n"), block.get("pool", "paper"))
    distances = [float(d) for d in block["distances"] if d != experiments.ORIGINAL]
    train_distances = list(distances)
    naive_spec = session_spec("naive", dataset, profile) if "naive" in stages else None
    if naive_spec is not None:
        naive = naive_spec["datasets"][0]
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
        if dataset != "cifar10-jpg":
            return {"status": "skipped: the airbench comparison is on CIFAR-10"}
        return run_bench(results_dir, dry_run, deadline - time.monotonic())
    spec = session_spec(name, dataset, profile)
    if spec is None:
        return {"status": f"skipped: the {profile} {name} spec has no network block for {dataset}"}
    out = {"status": "complete", "rows": 0, "runs": 0, "files": []}
    for model in experiments.models_of(spec):
        part = experiments.restrict(spec, models=[model])
        runs = experiments.build_runs(name, part)
        path = experiments.result_path(name, model, results_dir)
        frame = experiments.run_experiment(name, profile, results_path=path, spec=part, allow_cpu=dry_run,
                                           write_sidecar=False, deadline=deadline, checked=True)  # by build_runs
        out["rows"] += int(len(frame))
        out["runs"] += len(runs)
        out["files"].append(path.name)
        if len(frame) < len(runs):
            out["status"] = "partial"
    if name == "quality":
        from .experiments import checks

        rows = pd.concat([ResultsStore(results_dir / f).frame() for f in out["files"]], ignore_index=True)
        out["whole_pool"] = checks.whole_pool(rows).to_dict("records")
        out["doubling"] = checks.doubling(rows).to_dict("records")
    return out


def session_files(results_dir: Path, dataset: str) -> list[Path]:
    """The tables a session writes: every experiment's tables, the benchmark, the session record."""
    from . import experiments

    tables = [experiments.result_path(s, "*", results_dir).name for s in STAGES if s != "bench"]  # every model's
    found = [p for p in sorted(results_dir.glob("*.csv")) if any(fnmatch.fnmatchcase(p.name, t) for t in tables)]
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
    manifest = load_manifest()  # the committed one, whatever --results says
    record = {"dataset": dataset, "profile": profile, "stages": list(stages), "budget_s": budget_s,
              "started_at": provenance.now()}
    record.update(preflight(dataset, stages, dry_run))
    record["code_version"] = provenance.code_version()
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


def prepare(dataset: str, stages=DEFAULT_STAGES, part_bytes: int = PART_BYTES) -> list[Path]:
    """Cut what the host lacks into parts of one device call each (``.cache/gpu/part-N``): the
    wheels of the packages it does not have, the dataset's pack with its checksums, the code
    version. CIFAR-10 fits in one part; Food-101 64 px (122 MB with its test split) needs three."""
    wheels = paths.cache_dir() / "gpu-wheels"
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
    files = {f"whl/{w.name}": w for w in sorted(wheels.glob("*.whl"))
             if any(w.name.startswith(f"{n}-") for n in needed_packages(stages, dry_run=False))}
    lines = []
    for file in spec.files.values():
        rel = f"{spec.folder}/{file}"
        data.verify_file(source, rel)
        files[f"data/{rel}"] = source / rel
        lines.append(f"{sums[rel]}  {rel}")
    extra = paths.cache_dir() / "gpu-extra"
    atomic.write_text(extra / "SHA256SUMS", "\n".join(lines) + "\n")
    atomic.write_text(extra / "CODE_VERSION", provenance.code_version() + "\n")
    files.update({"data/SHA256SUMS": extra / "SHA256SUMS", "CODE_VERSION": extra / "CODE_VERSION"})
    return split(files, carry_dir(), part_bytes)


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
    helps = {"prepare": "cut what the GPU host lacks (wheels, the data pack, code version) into parts of one call "
                        "each: .cache/gpu/part-N",
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
    sub.add_parser("receive", help="on the GPU host: keep the part this call carried (for a dataset that needs "
                                   "several calls); run the session after the last one")
    up = sub.add_parser("unpack", help="put a session's results.tgz into results/")
    up.add_argument("archive", type=Path)
    from .learn import trainer_benchmark

    trainer_benchmark.add_arguments(sub.add_parser(
        "bench", help="our trainer against airbench 0.1.8 on the same pixels -> results/bench_train.json"))


def dispatch(args: argparse.Namespace) -> int:
    if args.gpu_command == "bench":
        from .learn import trainer_benchmark

        return trainer_benchmark.run(args)
    if args.gpu_command == "receive":
        into = received_dir()
        into.mkdir(parents=True, exist_ok=True)
        have = receive(carry_dir(), into)
        print(f"parts held: {have}")
        return 0
    if args.gpu_command == "unpack":
        print("unpacked:", ", ".join(unpack(args.archive)))
        return 0
    stages = check_stages(args.stages.split(","))
    if args.gpu_command == "prepare":
        parts = prepare(args.dataset, stages)
        print(f"{len(parts)} part(s) to carry, one per device call: " + ", ".join(str(p) for p in parts))
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

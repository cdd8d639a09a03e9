"""``storage-scaling compress IMAGES OUT``: write your dataset compressed, resumable, in parallel.

How hard: ``--distance D`` (every image at one Butteraugli distance), ``--budget S`` (plans first,
:mod:`.plan`: the storage-optimal number of images and the distance that fits them in ``S``), or
``--randomized DMIN DMAX`` (the paper's randomized scheme: each image its own distance, spread
over the range by a seeded permutation).

What comes out in ``OUT``:

* JPEG XL files mirroring the input's layout (``cats/001.jpg`` -> ``cats/001.jxl``), or with
  ``--format parquet`` one pack ``images.parquet`` in the book's schema (``image``: a struct of
  ``bytes`` and ``path``, ``label``, and ``distance``);
* ``manifest.csv``: one row per image (id, status, distance, source and output bytes, size,
  output, conversion notes, or why it was skipped);
* ``compress.json`` (the settings, checked when resuming) and ``report.md`` (counts, bytes,
  conversions, skipped files).

The work runs on local processes or a Dask cluster (:mod:`.cluster`) in chunks; the client (this
process) reads the inputs, writes every output atomically and then its manifest rows, flushed to
disk, so an interrupt -- even ``kill -9`` -- loses at most the chunks in flight: a re-run skips
every image of the manifest whose output is there and encodes the rest (no image twice, none
lost). Each output is decoded in the worker before it is written (a bitstream that does not
decode to the input's size is counted as skipped, not stored). Unreadable, corrupt and non-image
files are skipped and listed; greyscale, palette, CMYK, 16-bit and alpha images are converted to
8-bit RGB (alpha composited over white) and counted (:func:`images.to_rgb8`).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import fcntl
import io
import json
import math
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from .. import atomic, provenance
from ..compress import budget as budget_mod
from ..compress import codecs
from . import cluster, images as images_mod, plan as plan_mod
from .units import format_size, parse_size

MANIFEST = "manifest.csv"
SETTINGS = "compress.json"
REPORT = "report.md"
PACK = "images.parquet"
PARTS = ".parts"
COLUMNS = ("id", "status", "distance", "source_bytes", "bytes", "width", "height", "output", "notes")
PART_ROWS = 512  # images per Parquet part (an interrupt loses at most one part being filled)

EXAMPLES = """examples:
  storage-scaling compress ~/photos ~/photos-d4 --distance 4
  storage-scaling compress ~/photos ~/photos-10GB --budget 10GB --law my_law.json
  storage-scaling compress train.parquet out/ --randomized 0.5 15 --format parquet
  storage-scaling compress ~/photos out/ --distance 4 --workers 8                # local Dask cluster
  storage-scaling compress ~/photos out/ --distance 4 --scheduler tcp://head:8786  # existing cluster
"""


# ---------------------------------------------------------------------------------------------
# The work of one chunk (runs in a worker: no files written there)


@dataclass(frozen=True)
class EncodeTask:
    ids: list
    data: list  # stored bytes, read by the client
    distances: list
    effort: int


def encode_chunk(task: EncodeTask) -> list[dict]:
    """Each image converted to 8-bit RGB, encoded, decoded back and checked; or why not."""
    out = []
    for image_id, data, distance in zip(task.ids, task.data, task.distances):
        row = {"id": image_id, "source_bytes": len(data), "distance": float(distance)}
        try:
            pixels, notes = images_mod.to_rgb8(data)
        except images_mod.Unusable as exc:
            out.append({**row, "status": "skipped", "notes": str(exc)})
            continue
        bitstream = codecs.encode(pixels, "jxl", float(distance), effort=task.effort)
        try:
            back = codecs.decode(bitstream, "jxl")
            if back.shape != pixels.shape:
                raise ValueError(f"decoded to {back.shape}, not {pixels.shape}")
        except ValueError as exc:
            out.append({**row, "status": "skipped", "notes": f"the encoded output did not decode ({exc})"})
            continue
        out.append({**row, "status": "ok", "bitstream": bitstream, "bytes": len(bitstream),
                    "height": int(pixels.shape[0]), "width": int(pixels.shape[1]), "notes": "; ".join(notes)})
    return out


# ---------------------------------------------------------------------------------------------
# The manifest: written by the client only, append-only, flushed per chunk


class Manifest:
    """``manifest.csv`` in OUT: the last row of each id wins; a line cut by ``kill -9`` is dropped."""

    def __init__(self, path: Path):
        self.path = path
        self.rows: dict[str, dict] = {}
        if path.is_file():
            self._load()

    def _load(self) -> None:
        raw = self.path.read_bytes()
        if raw and not raw.endswith(b"\n"):  # the last write was cut: drop the partial line
            raw = raw[: raw.rfind(b"\n") + 1]
            atomic.write_bytes(self.path, raw)
        reader = csv.DictReader(io.StringIO(raw.decode("utf-8")))
        if raw and tuple(reader.fieldnames or ()) != COLUMNS:
            raise ValueError(f"{self.path} is not a manifest of this tool (columns {reader.fieldnames}); "
                             "choose another OUT")
        for row in reader:
            self.rows[row["id"]] = row

    def append(self, rows: list[dict]) -> None:
        new = not self.path.is_file() or self.path.stat().st_size == 0
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
            if new:
                writer.writeheader()
            for row in rows:
                clean = {k: ("" if row.get(k) is None else row.get(k)) for k in COLUMNS}
                writer.writerow(clean)
                self.rows[str(row["id"])] = {k: str(v) for k, v in clean.items()}
            f.flush()
            os.fsync(f.fileno())

    def rewrite(self, rows: list[dict]) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic.write_text(self.path, buffer.getvalue())
        self.rows = {r["id"]: r for r in rows}


# ---------------------------------------------------------------------------------------------
# Settings and outputs


@dataclass(frozen=True)
class Options:
    distance: float | None = None
    budget: float | None = None
    randomized: tuple[float, float] | None = None
    fmt: str = "jxl"
    effort: int = codecs.DEFAULT_EFFORT
    seed: int = 0

    def check(self) -> "Options":
        modes = [m for m, v in (("--distance", self.distance), ("--budget", self.budget),
                                ("--randomized", self.randomized)) if v is not None]
        if len(modes) != 1:
            raise ValueError("say how hard to compress with exactly one of --distance D, --budget S or "
                             f"--randomized DMIN DMAX (got {', '.join(modes) or 'none'})")
        lo, hi = codecs.DISTANCE_RANGE
        if self.distance is not None and not (lo < self.distance <= hi):
            raise ValueError(f"--distance must lie in ({lo:g}, {hi:g}] (Butteraugli distance; 1 is visually "
                             f"lossless, 15 the paper's largest), got {self.distance:g}")
        if self.randomized is not None:
            a, b = self.randomized
            if not (lo < a < b <= hi):
                raise ValueError(f"--randomized DMIN DMAX needs {lo:g} < DMIN < DMAX <= {hi:g}, got {a:g} {b:g}")
        if self.fmt not in ("jxl", "parquet"):
            raise ValueError(f"--format must be jxl (files) or parquet (one pack), got {self.fmt!r}")
        codecs.check_effort(self.effort)
        return self


def output_names(items) -> dict[str, str]:
    """Where each image goes in OUT: its relative path with ``.jxl`` (``a/b.png`` -> ``a/b.jxl``);
    ``..`` and root parts are dropped, and names that would collide keep their old suffix
    (``b.png.jxl``)."""
    def safe(image_id: str) -> PurePosixPath:
        parts = [p for p in PurePosixPath(image_id.replace("\\", "/")).parts if p not in ("/", "..", ".", "")]
        return PurePosixPath(*parts) if parts else PurePosixPath("image")

    first = {it.id: str(safe(it.id).with_suffix(".jxl")) for it in items}
    counts = Counter(first.values())
    out = {}
    for it in items:
        name = first[it.id]
        if counts[name] > 1:
            name = str(safe(it.id)) + ".jxl"
        out[it.id] = name
    if len(set(out.values())) != len(out):  # still colliding (e.g. "a.jxl" and "a" listed): number them
        seen = Counter()
        for k in list(out):
            seen[out[k]] += 1
            if seen[out[k]] > 1:
                out[k] = f"{out[k][:-4]}-{seen[out[k]]}.jxl"
    return out


def check_out(out: Path, images_arg: Path) -> Path:
    """OUT may not exist yet, but its parent must; it must be writable and not the input itself."""
    out = plan_mod.check_writable_folder(Path(out), "OUT")
    src = Path(images_arg).expanduser().resolve()
    if out.exists() and out.resolve() == src:
        raise ValueError(f"OUT {out} is IMAGES itself; write the compressed images to another folder")
    if out.exists() and out.resolve() in src.parents:
        raise ValueError(f"IMAGES {src} lies inside OUT {out}; choose an OUT outside the input")
    return out


@contextlib.contextmanager
def exclusive(out: Path):
    """One compress writes an OUT at a time (a second one stops at once, naming the first)."""
    out.mkdir(parents=True, exist_ok=True)
    handle = open(out / ".compress.lock", "w")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise ValueError(f"another storage-scaling compress is writing {out}; wait for it or choose "
                             "another OUT") from exc
        yield
    finally:
        handle.close()


def remove_stale_temp_files(out: Path) -> int:
    """Temporary files of atomic writes cut by a kill (``.<name>.<random>.tmp``); we hold the lock."""
    removed = 0
    for dirpath, _, filenames in os.walk(out):
        for name in filenames:
            if name.startswith(".") and name.endswith(".tmp"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(dirpath, name))
                    removed += 1
    return removed


def check_settings(out: Path, settings: dict) -> None:
    """The first run writes ``compress.json``; a resume must use the same settings and input."""
    path = out / SETTINGS
    if not path.is_file():
        atomic.write_text(path, json.dumps(settings, indent=1) + "\n")
        return
    try:
        before = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is damaged ({exc}); delete OUT to start over") from exc
    keys = [k for k in settings if k not in ("started_at", "code_version")]
    changed = [f"{k}: {before.get(k)!r} then, {settings[k]!r} now" for k in keys if before.get(k) != settings[k]]
    if changed:
        raise ValueError(f"OUT {out} holds a compression with other settings or another input ("
                         + "; ".join(changed) + "): resume with the same options and input, or choose a new OUT")


# ---------------------------------------------------------------------------------------------
# The job


@dataclass
class Summary:
    out: Path
    selected: int  # images this job writes (all, or the budget's subset)
    done_before: int  # already in the manifest when this run started
    ok: int
    skipped: list  # (id, reason)
    notes: Counter
    total_bytes: int
    source_bytes: int
    seconds: float
    encoded_now: int
    budget: float | None = None
    distance: float | None = None
    plan_lines: list = field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        return self.encoded_now / self.seconds if self.seconds > 0 else math.nan

    def lines(self) -> list[str]:
        lines = list(self.plan_lines)
        lines.append(f"{self.ok:,} images written to {self.out} ({format_size(self.total_bytes)}, "
                     f"{format_size(self.total_bytes / max(self.ok, 1))} per image; the originals of these images: "
                     f"{format_size(self.source_bytes)}), {len(self.skipped):,} skipped")
        if self.budget is not None:
            fill = self.total_bytes / self.budget
            flag = "" if fill <= 1 else "  WARNING: OVER THE BUDGET (the sample's size estimate was off)"
            lines.append(f"budget {format_size(self.budget)}: {fill:.1%} used{flag}")
        if self.notes:
            lines.append("converted: " + "; ".join(f"{v:,} {k}" for k, v in sorted(self.notes.items())))
        if self.skipped:
            shown = "; ".join(f"{i}: {r}" for i, r in self.skipped[:5])
            more = f" (and {len(self.skipped) - 5:,} more, see {REPORT})" if len(self.skipped) > 5 else ""
            lines.append(f"skipped: {shown}{more}")
        if self.encoded_now:
            lines.append(f"this run: {self.encoded_now:,} images in {self.seconds:,.1f} s "
                         f"({self.images_per_second:,.2f} images/s); {self.done_before:,} were done before")
        return lines


def _chunk_size(sizes: np.ndarray) -> int:
    """About 256 kB of stored images per task (at least 1, at most 32 images): enough work to
    hide a cluster's overhead, little lost to an interrupt."""
    mean = float(sizes[sizes > 0].mean()) if np.any(sizes > 0) else 1e5
    return int(np.clip(2.5e5 / mean, 1, 32))


def choose(images, opts: Options, plan_args, pool, progress: bool):
    """(ids to write, distance per id, plan lines, distance) for the chosen mode."""
    ids = [it.id for it in images.items]
    if opts.distance is not None:
        return ids, dict.fromkeys(ids, float(opts.distance)), [], float(opts.distance)
    if opts.randomized is not None:
        ranks = budget_mod.permutation_ranks(len(ids), opts.seed)
        d = budget_mod.randomized_distances(ranks, *opts.randomized)
        return ids, dict(zip(ids, map(float, d))), [], None
    plan = plan_mod.plan_images(images, opts.budget, plan_args or plan_mod.PlanSettings(), pool, progress=progress)
    usable_here = max(1, round(len(ids) * plan.sample.usable_fraction))
    n = min(plan.n_optimum, usable_here)
    curve = plan.curve
    target = opts.budget / n
    # aim the sample's upper 95% mean at the budget, so the real bytes fit with room to spare
    upper = np.asarray([curve["hi"]], dtype=float)
    grid = plan.sample.grid
    if target >= upper[0, 0]:
        distance = float(grid[0])
    elif target < upper[0, -1]:
        distance = float(grid[-1])
    else:
        distance = float(budget_mod.distance_for_budget(upper, grid, target))
    if n >= usable_here:
        chosen = ids
    else:
        labels = [it.label for it in images.items]
        if images.labelled:
            from .. import data

            order = data.nested_order(np.asarray(labels), opts.seed)
        else:
            order = np.random.default_rng(opts.seed).permutation(len(ids))
        chosen = [ids[i] for i in np.sort(order[:n])]
    lines = plan_mod.summary_lines(plan) + [
        f"compressing {len(chosen):,} images at d = {distance:.2f} (the sample's upper 95% mean size fits the budget)"]
    return chosen, dict.fromkeys(chosen, distance), lines, distance


def _pending(manifest: Manifest, chosen, out: Path, fmt: str) -> list[str]:
    """Chosen ids with no manifest row, or whose output is gone (none lost)."""
    todo = []
    for image_id in chosen:
        row = manifest.rows.get(image_id)
        if row is None:
            todo.append(image_id)
        elif row["status"] == "ok":
            target = out / row["output"]
            if fmt == "jxl" and (not target.is_file() or str(target.stat().st_size) != row["bytes"]):
                todo.append(image_id)
            elif fmt == "parquet" and not target.is_file():
                todo.append(image_id)
    return todo


def run(images_arg, out, opts: Options, *, pool=None, plan_args=None, progress: bool = True,
        processes: int | None = None, workers: int | None = None, scheduler: str | None = None,
        chunk: int | None = None) -> Summary:
    """The whole job (see the module docstring); bad input is a ValueError before any work."""
    opts = opts.check()
    if chunk is not None and chunk < 1:
        raise ValueError(f"--chunk must be at least 1 image per task, got {chunk}")
    out = check_out(Path(out), Path(images_arg))
    cluster.check_options(processes, workers, scheduler)
    images = images_mod.open_images(images_arg, exclude=out)
    if opts.budget is not None:
        from . import laws

        laws.load(getattr(plan_args, "law", None))  # a bad --law is one line before any work
    owned = pool is None
    if owned:
        pool = cluster.open_pool(processes, workers, scheduler)
    try:
        with exclusive(out):
            return _run(images, out, opts, pool, plan_args, progress, chunk)
    finally:
        if owned:
            pool.close()


def _run(images, out: Path, opts: Options, pool, plan_args, progress: bool, chunk: int | None) -> Summary:
    from tqdm import tqdm

    remove_stale_temp_files(out)
    settings = {"images": str(images.root), "kind": images.kind, "listing": images.digest(), "listed": len(images),
                "distance": opts.distance, "budget": opts.budget,
                "randomized": list(opts.randomized) if opts.randomized else None, "format": opts.fmt,
                "effort": opts.effort, "seed": opts.seed, "codec": codecs.ENCODER_SETTINGS["jxl"],
                "code_version": provenance.code_version(), "started_at": provenance.now()}
    if opts.budget is not None:
        settings["law"] = getattr(plan_args, "law", None) or "paper:food101"
    check_settings(out, settings)
    manifest = Manifest(out / MANIFEST)
    chosen, distances, plan_lines, distance = choose(images, opts, plan_args, pool, progress)
    names = output_names(images.items) if opts.fmt == "jxl" else {}
    todo = set(_pending(manifest, chosen, out, opts.fmt))
    by_id = {it.id: it for it in images.items}
    pending = [by_id[i] for i in chosen if i in todo]
    done_before = len(chosen) - len(pending)
    # about 256 kB per task, and at least four tasks per worker so that none waits at the end
    step = chunk or max(1, min(_chunk_size(images.sizes), math.ceil(len(pending) / (4 * max(pool.workers, 1)))))

    def tasks():
        for k in range(0, len(pending), step):
            part = pending[k:k + step]
            yield EncodeTask([it.id for it in part], images.read_many(part), [distances[it.id] for it in part],
                             opts.effort)

    parts = _Parts(out, images, manifest) if opts.fmt == "parquet" else None
    bar = tqdm(total=len(chosen), initial=done_before, desc="compress", unit="img", disable=not progress,
               mininterval=1.0, smoothing=0.05)
    start = time.perf_counter()
    encoded = 0
    try:
        for _, rows in pool.imap_unordered(encode_chunk, tasks()):
            if parts is None:
                for r in rows:
                    if r["status"] == "ok":
                        r["output"] = names[r["id"]]
                        atomic.write_bytes(out / r["output"], r["bitstream"])
                manifest.append(rows)
            else:
                parts.add(rows)
            encoded += len(rows)
            bar.update(len(rows))
        if parts is not None:
            parts.flush()
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    if parts is not None:
        parts.consolidate(chosen)
    return _summarise(out, manifest, chosen, done_before, encoded, seconds, opts, distance, plan_lines)


def _summarise(out, manifest, chosen, done_before, encoded, seconds, opts, distance, plan_lines) -> Summary:
    rows = [manifest.rows[i] for i in chosen if i in manifest.rows]
    ok = [r for r in rows if r["status"] == "ok"]
    skipped = [(r["id"], r["notes"]) for r in rows if r["status"] != "ok"]
    notes = Counter(n for r in ok for n in r["notes"].split("; ") if n)
    summary = Summary(out, len(chosen), done_before, len(ok), skipped, notes,
                      sum(int(r["bytes"]) for r in ok), sum(int(r["source_bytes"]) for r in ok), seconds, encoded,
                      opts.budget, distance, plan_lines)
    atomic.write_text(out / REPORT, report_markdown(summary))
    return summary


def report_markdown(s: Summary) -> str:
    lines = ["# Compression report", ""] + [f"- {line}" for line in s.lines()]
    lines += ["", "## Skipped files", ""] + ([f"- `{i}`: {r}" for i, r in s.skipped] or ["None."])
    lines += ["", "## Conversions to 8-bit RGB", ""]
    lines += [f"- {v:,} images: {k}" for k, v in sorted(s.notes.items())] or ["None: every image was 8-bit RGB."]
    if images_mod.ALPHA in s.notes:
        lines += ["", "Transparent pixels were composited over white before encoding (JPEG XL stores no alpha here)."]
    lines += ["", f"Codec: {codecs.ENCODER_SETTINGS['jxl']}. Per-image bytes and distances: `{MANIFEST}`."]
    return "\n".join(lines) + "\n"


class _Parts:
    """Parquet output: rows go to part files (each written, then its manifest rows), and the parts
    become one ``images.parquet`` when every image is done."""

    def __init__(self, out: Path, images, manifest: Manifest):
        self.out, self.images, self.manifest = out, images, manifest
        self.folder = out / PARTS
        self.folder.mkdir(exist_ok=True)
        referenced = {r["output"] for r in manifest.rows.values() if r["output"].startswith(PARTS)}
        for f in self.folder.glob("part-*.parquet"):  # written, but their rows never reached the manifest
            if f"{PARTS}/{f.name}" not in referenced:
                f.unlink()
        self.next = 1 + max([int(Path(r).stem.split("-")[1]) for r in referenced] or [0])
        self.buffer: list[dict] = []
        self.labels = {it.id: it.label for it in images.items}

    def add(self, rows: list[dict]) -> None:
        self.buffer += rows
        if sum(r["status"] == "ok" for r in self.buffer) >= PART_ROWS:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        ok = [r for r in self.buffer if r["status"] == "ok"]
        if ok:
            name = f"{PARTS}/part-{self.next:06d}.parquet"
            self.next += 1
            atomic.write_with(self.out / name, lambda f: _write_pack(f, ok, self.labels))
            for r in ok:
                r["output"] = name
        self.manifest.append(self.buffer)
        self.buffer = []

    def consolidate(self, chosen) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = [self.manifest.rows[i] for i in chosen if i in self.manifest.rows]
        ok = [r for r in rows if r["status"] == "ok"]
        if ok and all(r["output"] == PACK for r in ok) and (self.out / PACK).is_file():
            _remove_folder(self.folder)
            return
        parts = sorted({r["output"] for r in ok if r["output"].startswith(PARTS)})
        tables = [pq.read_table(self.out / p) for p in parts]
        if (self.out / PACK).is_file() and any(r["output"] == PACK for r in ok):
            tables.append(pq.read_table(self.out / PACK))  # an earlier consolidation of part of the rows
        table = pa.concat_tables(tables) if tables else _empty_pack()
        keep = {r["id"] for r in ok}
        paths_ = table.column("image").combine_chunks().field("path").to_pylist() if len(table) else []
        order = sorted((p, k) for k, p in enumerate(paths_) if p in keep)
        seen, index = set(), []
        for p, k in order:
            if p not in seen:
                seen.add(p)
                index.append(k)
        table = table.take(pa.array(index, type=pa.int64())) if len(table) else table
        atomic.write_with(self.out / PACK, lambda f: pq.write_table(table, f))
        for r in ok:
            r["output"] = PACK
        self.manifest.rewrite(list(self.manifest.rows.values()))
        _remove_folder(self.folder)
        if self.images.labelled and self.images.classes:
            atomic.write_text(self.out / "classes.txt", "\n".join(self.images.classes) + "\n")


def _remove_folder(folder: Path) -> None:
    if folder.is_dir():
        for f in folder.iterdir():
            with contextlib.suppress(FileNotFoundError):
                f.unlink()
        with contextlib.suppress(OSError):
            folder.rmdir()


def _pack_schema():
    import pyarrow as pa

    return pa.schema([("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                      ("label", pa.int64()), ("distance", pa.float64())])


def _empty_pack():
    return _pack_schema().empty_table()


def _write_pack(f, rows: list[dict], labels: dict) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"image": [{"bytes": r["bitstream"], "path": r["id"]} for r in rows],
                      "label": [labels.get(r["id"]) for r in rows],
                      "distance": [float(r["distance"]) for r in rows]}, schema=_pack_schema())
    pq.write_table(table, f)


# ---------------------------------------------------------------------------------------------
# The command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", help="a folder of images (recursive), a .parquet pack, or a text file of paths")
    parser.add_argument("out", help="output folder (created if missing; its parent must exist); a re-run resumes")
    how = parser.add_mutually_exclusive_group(required=True)
    how.add_argument("--distance", type=float, metavar="D", help="one Butteraugli distance for every image")
    how.add_argument("--budget", metavar="S", help="plan first (see storage-scaling plan) and fit this budget: 10GB")
    how.add_argument("--randomized", type=float, nargs=2, metavar=("DMIN", "DMAX"),
                     help="each image its own distance in [DMIN, DMAX] (the paper's randomized scheme)")
    parser.add_argument("--format", dest="fmt", choices=("jxl", "parquet"), default="jxl",
                        help="jxl: files mirroring the input's layout (default); parquet: one pack in the book's schema")
    parser.add_argument("--chunk", type=int, default=None, metavar="N",
                        help="images per task (default: about 256 kB of input per task, at most 32)")
    plan_mod.add_common(parser)
    cluster.add_arguments(parser)


def cmd(args: argparse.Namespace) -> int:
    budget = parse_size(args.budget) if args.budget is not None else None
    if budget is not None:
        plan_mod.check_common(args)
    opts = Options(distance=args.distance, budget=budget,
                   randomized=tuple(args.randomized) if args.randomized else None, fmt=args.fmt,
                   effort=args.effort, seed=args.seed)
    summary = run(args.images, args.out, opts, plan_args=args, processes=args.processes, workers=args.workers,
                  scheduler=args.scheduler, chunk=args.chunk)
    for line in summary.lines():
        print(line)
    print(f"manifest: {summary.out / MANIFEST}; report: {summary.out / REPORT}")
    return 0

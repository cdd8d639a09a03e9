"""``storage-scaling compress IMAGES OUT``: write your dataset compressed, resumable, in parallel.

How hard: ``--distance D`` (every image at one Butteraugli distance), ``--budget S`` (plans first,
as ``storage-scaling plan`` does: the storage-optimal number of images and the distance that fits
them in ``S``), or ``--randomized DMIN DMAX`` (the paper's randomized scheme: each image its own
distance, spread over the range by a seeded permutation).

``--dry-run`` says what would be kept, at what distance, and the predicted bytes (from a seeded
sample of ``--sample`` images encoded here, or the plan's), and how many are already in OUT;
nothing is written and OUT is not created.

What comes out in ``OUT`` (a new or empty folder, or one this command wrote before):

* JPEG XL files mirroring the input's layout (``cats/001.jpg`` -> ``cats/001.jxl``; for a list of
  paths, relative to the deepest folder holding them all), or with ``--format parquet`` one pack
  ``images.parquet`` in the book's schema (``image``: a struct of ``bytes`` and ``path``, ``label``,
  and ``distance``);
* ``manifest.csv``: one row per image (id, status, distance, source and output bytes, size,
  output, conversion notes, or why it was skipped);
* ``compress.json`` (the settings, checked when resuming, and with ``--budget`` the plan's choice,
  reused when resuming) and ``report.md`` (counts, bytes, conversions, skipped files).

A budget is a limit: with ``--budget`` the kept images are chosen so that the sample's upper 95 %
mean size fits it, and when the largest distance is reached fewer images are kept. If the real
bytes still exceed it, the run stops, exits with status 1 and leaves OUT marked NOT COMPLETE
(``report.md``; no ``images.parquet``), unless ``--best-effort`` is given: a re-run with it keeps
what was written and finishes over the budget. A run in which every image was skipped exits 1 too.

Bad input is one line, exit status 2, before any work; a refusal, or an interrupt before the first
image is written, leaves OUT as it was found. The work runs on local processes or a Dask cluster
in chunks; the client (this process) reads the inputs, writes every output atomically and then
its manifest rows, flushed to disk, so an interrupt -- even ``kill -9`` -- loses at most the chunks
in flight: a re-run skips every image of the manifest whose output is there and encodes the rest
(no image twice, none lost). Each output is decoded in the worker before it is written (a bitstream
that does not decode to the input's size is counted as skipped, not stored). Unreadable, corrupt
and non-image files are skipped and listed; greyscale, palette, CMYK, 16-bit and alpha images are
converted to 8-bit RGB (alpha composited over white) and counted. Images over ``--max-pixels``, or
needing more memory than one worker's share (``--worker-memory``), are skipped with the option
that would include them, and a re-run with a higher limit retries them.
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
from . import Failed, cluster, images as images_mod, plan as plan_mod
from .units import format_size, parse_size

MANIFEST = "manifest.csv"
SETTINGS = "compress.json"
REPORT = "report.md"
PACK = "images.parquet"
PARTS = ".parts"
LOCK = ".compress.lock"
COLUMNS = ("id", "status", "distance", "source_bytes", "bytes", "width", "height", "output", "notes")
OK, SKIPPED, TOO_LARGE = "ok", "skipped", "too-large"  # manifest statuses (too-large: retried when allowed)
PART_ROWS = 512  # images per Parquet part (an interrupt loses at most one part being filled)
NOT_IN_SETTINGS = ("started_at", "code_version", "decision")  # what a resume does not compare

EXAMPLES = """examples:
  storage-scaling compress ~/photos ~/photos-d4 --distance 4
  storage-scaling compress ~/photos ~/photos-10GB --budget 10GB --law my_law.json --dry-run   # look first
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
    data: list  # stored bytes, read by the client (or images.Unreadable)
    distances: list
    effort: int
    limits: images_mod.Limits = images_mod.Limits()


def _decoded(image_id, data, task: EncodeTask):
    """(row, pixels, notes): the row says why not when the image cannot be used (pixels None)."""
    row = {"id": image_id, "source_bytes": images_mod.stored_bytes(data)}
    try:
        pixels, notes = images_mod.to_rgb8(data, task.limits)
    except images_mod.TooLarge as exc:
        return {**row, "status": TOO_LARGE, "notes": str(exc), "width": exc.width, "height": exc.height}, None, ()
    except images_mod.Unusable as exc:
        return {**row, "status": SKIPPED, "notes": str(exc)}, None, ()
    return row, pixels, notes


def encode_chunk(task: EncodeTask) -> list[dict]:
    """Each image converted to 8-bit RGB, encoded, decoded back and checked; or why not."""
    out = []
    for image_id, data, distance in zip(task.ids, task.data, task.distances):
        row, pixels, notes = _decoded(image_id, data, task)
        row["distance"] = float(distance)
        if pixels is None:
            out.append(row)
            continue
        bitstream = codecs.encode(pixels, "jxl", float(distance), effort=task.effort)
        try:
            back = codecs.decode(bitstream, "jxl")
            if back.shape != pixels.shape:
                raise ValueError(f"decoded to {back.shape}, not {pixels.shape}")
        except ValueError as exc:
            out.append({**row, "status": SKIPPED, "notes": f"the encoded output did not decode ({exc})"})
            continue
        out.append({**row, "status": OK, "bitstream": bitstream, "bytes": len(bitstream),
                    "height": int(pixels.shape[0]), "width": int(pixels.shape[1]), "notes": "; ".join(notes)})
    return out


def size_chunk(task: EncodeTask) -> list[dict]:
    """Each image's bytes at its distance and the seconds the encode took (``--dry-run``)."""
    out = []
    for image_id, data, distance in zip(task.ids, task.data, task.distances):
        row, pixels, _ = _decoded(image_id, data, task)
        if pixels is not None:
            start = time.perf_counter()
            row.update(status=OK, bytes=len(codecs.encode(pixels, "jxl", float(distance), effort=task.effort)),
                       seconds=time.perf_counter() - start)
        out.append(row)
    return out


# ---------------------------------------------------------------------------------------------
# The manifest: written by the client only, append-only, flushed per chunk


class Manifest:
    """``manifest.csv`` in OUT: the last row of each id wins; a line cut by ``kill -9`` is dropped
    (and, unless ``read_only``, cut from the file)."""

    def __init__(self, path: Path, read_only: bool = False):
        self.path = path
        self.rows: dict[str, dict] = {}
        if path.is_file():
            self._load(read_only)

    def _load(self, read_only: bool) -> None:
        raw = self.path.read_bytes()
        if raw and not raw.endswith(b"\n"):  # the last write was cut: drop the partial line
            raw = raw[: raw.rfind(b"\n") + 1]
            if not read_only:
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
    best_effort: bool = False  # --budget: finish over the budget instead of stopping (not a setting of OUT)

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
        if self.best_effort and self.budget is None:
            raise ValueError("--best-effort goes with --budget (it lets a compression finish over its budget)")
        codecs.check_effort(self.effort)
        return self


def output_names(items, layout: dict | None = None) -> dict[str, str]:
    """Where each image goes in OUT: its relative path (``layout``, default the id) with ``.jxl``
    (``a/b.png`` -> ``a/b.jxl``); ``..`` and root parts are dropped, and names that would collide
    keep their old suffix (``b.png.jxl``)."""
    layout = layout or {}

    def safe(image_id: str) -> PurePosixPath:
        rel = layout.get(image_id, image_id)
        parts = [p for p in PurePosixPath(rel.replace("\\", "/")).parts if p not in ("/", "..", ".", "")]
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
    """OUT may not exist yet, but its parent must; it must be writable, not the input itself, and
    new, empty, or a compression this command wrote (its ``compress.json``). Nothing is written."""
    out = plan_mod.check_writable_folder(Path(out), "OUT")
    src = Path(images_arg).expanduser().resolve()
    if out.exists() and out.resolve() == src:
        raise ValueError(f"OUT {out} is IMAGES itself; write the compressed images to another folder")
    if out.exists() and out.resolve() in src.parents:
        raise ValueError(f"IMAGES {src} lies inside OUT {out}; choose an OUT outside the input")
    if out.is_dir() and not (out / SETTINGS).is_file():
        others = sorted(p.name for p in out.iterdir() if p.name != LOCK)
        if others:
            raise ValueError(f"OUT {out} already holds {len(others):,} file(s) or folder(s) that are not a compression "
                             f"of this command (e.g. {others[0]}); give a new or empty folder")
    return out


class _Claim:
    """What this run holds in OUT: the lock, and whether it created OUT and its settings."""

    def __init__(self, out: Path):
        self.out = out
        self.written = False  # set before the first output of this run is written


@contextlib.contextmanager
def claim(out: Path):
    """Lock OUT for this run (a second compress stops at once, naming the first). If the run ends
    -- refused, failed or interrupted -- before its first image is written in an OUT with no
    manifest, what it created is removed: OUT is left as it was found."""
    created = not out.exists()
    out.mkdir(exist_ok=True)
    had = {name: (out / name).exists() for name in (LOCK, SETTINGS, PARTS)}
    handle = open(out / LOCK, "w")
    state = _Claim(out)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise ValueError(f"another storage-scaling compress is writing {out}; wait for it or choose "
                             "another OUT") from exc
        try:
            yield state
        except BaseException:
            if not state.written and not (out / MANIFEST).exists():
                _undo(out, created, had)
            raise
    finally:
        handle.close()


def check_not_busy(out: Path) -> None:
    """Refuse at once, before any planning, an OUT that another compress is writing (its lock is
    tried and released; nothing is created)."""
    lock = out / LOCK
    if not lock.is_file():
        return
    with open(lock) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise ValueError(f"another storage-scaling compress is writing {out}; wait for it or choose "
                             "another OUT") from exc
        fcntl.flock(handle, fcntl.LOCK_UN)


def _undo(out: Path, created: bool, had: dict) -> None:
    remove_stale_temp_files(out)
    if not had[PARTS]:
        _remove_folder(out / PARTS)
    for name in (SETTINGS, LOCK):
        if not had[name]:
            with contextlib.suppress(FileNotFoundError):
                (out / name).unlink()
    if created:
        with contextlib.suppress(OSError):
            out.rmdir()  # only if empty: never anything this run did not write


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


def settings_of(images, opts: Options, plan_args) -> dict:
    settings = {"images": str(images.root), "kind": images.kind, "listing": images.digest(), "listed": len(images),
                "distance": opts.distance, "budget": opts.budget,
                "randomized": list(opts.randomized) if opts.randomized else None, "format": opts.fmt,
                "effort": opts.effort, "seed": opts.seed, "codec": codecs.ENCODER_SETTINGS["jxl"],
                "code_version": provenance.code_version(), "started_at": provenance.now()}
    if opts.budget is not None:
        settings["law"] = getattr(plan_args, "law", None) or "paper:food101"
    return settings


def read_settings(out: Path) -> dict | None:
    """The ``compress.json`` of OUT (None when there is none); read only."""
    path = out / SETTINGS
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is damaged ({exc}); delete OUT to start over") from exc


def check_settings(out: Path, before: dict | None, settings: dict) -> None:
    """A resume must use the same settings and input as the run that wrote OUT."""
    if before is None:
        return
    keys = [k for k in settings if k not in NOT_IN_SETTINGS]
    changed = [f"{k}: {before.get(k)!r} then, {settings[k]!r} now" for k in keys if before.get(k) != settings[k]]
    if changed:
        raise ValueError(f"OUT {out} holds a compression with other settings or another input ("
                         + "; ".join(changed) + "): resume with the same options and input, or choose a new OUT")


# ---------------------------------------------------------------------------------------------
# What to write: every image, or the budget's subset at the distance that fits


@dataclass
class Choice:
    """The images a run writes and their distances (with ``--budget``, the plan's decision)."""

    chosen: list  # ids
    distances: dict  # id -> distance
    distance: float | None  # the one distance, if there is one
    plan_lines: list = field(default_factory=list)
    decision: dict | None = None  # --budget: what compress.json keeps for a resume
    plan: object = None  # the Plan, when this run made one


def select(images, n: int | None, seed: int) -> list:
    """The ids kept: all (n None), or n of them in the seeded nested order (stratified by class
    for labelled images, so that the classes keep their shares)."""
    ids = [it.id for it in images.items]
    if n is None or n >= len(ids):
        return ids
    if images.labelled:
        from .. import data

        order = data.nested_order(np.asarray([it.label for it in images.items]), seed)
    else:
        order = np.random.default_rng(seed).permutation(len(ids))
    return [ids[i] for i in np.sort(order[:n])]


def fit_budget(plan, listed: int, budget: float) -> dict:
    """The decision of ``--budget``: how many images (None: all) at which distance, aiming the
    sample's upper 95 % mean size at the budget; when even the largest distance measured does not
    fit the plan's n, n shrinks to the images that fit there. Also the predicted bytes."""
    usable_here = max(1, round(listed * plan.sample.usable_fraction))
    n = min(plan.n_optimum, usable_here)
    grid = plan.sample.grid
    upper = np.asarray([plan.curve["hi"]], dtype=float)
    mean = np.asarray([plan.curve["mean"]], dtype=float)
    why = "the sample's upper 95% mean size fits the budget"
    if budget / n >= upper[0, 0]:
        distance = float(grid[0])
    elif budget / n >= upper[0, -1]:
        distance = float(budget_mod.distance_for_budget(upper, grid, budget / n))
    else:
        distance = float(grid[-1])
        fits = int(math.floor(budget / upper[0, -1]))
        if fits < 1:
            raise ValueError(f"--budget {format_size(budget)} fits no image even at the largest distance d = "
                             f"{grid[-1]:g} (each takes up to {format_size(upper[0, -1])}); choose a larger budget")
        why = (f"the largest distance measured: only {fits:,} images fit there, by the sample's upper 95% mean "
               f"size, {format_size(upper[0, -1])}")
        n = min(n, fits)
    keep = None if n >= usable_here else int(n)
    kept = usable_here if keep is None else keep
    at = budget_mod.interpolate_sizes
    return {"n": keep, "distance": distance, "why": why,
            "bytes": float(kept * at(mean, grid, distance)[0]), "bytes_hi": float(kept * at(upper, grid, distance)[0]),
            "seconds_per_image": (float(np.mean(plan.sample.seconds)) / len(grid)
                                  if plan.sample.seconds is not None and len(plan.sample.seconds) else None)}


def choose(images, opts: Options, plan_args, pool, progress: bool, decision: dict | None = None,
           limits: images_mod.Limits | None = None) -> Choice:
    """What this run writes, for the chosen mode (``decision``: a resumed budget run's, reused)."""
    ids = [it.id for it in images.items]
    if opts.distance is not None:
        return Choice(ids, dict.fromkeys(ids, float(opts.distance)), float(opts.distance))
    if opts.randomized is not None:
        ranks = budget_mod.permutation_ranks(len(ids), opts.seed)
        d = budget_mod.randomized_distances(ranks, *opts.randomized)
        return Choice(ids, dict(zip(ids, map(float, d))), None)
    plan = None
    if decision is None:
        settings = plan_args or plan_mod.PlanSettings()
        if limits is not None:  # the sample is guarded as the run will be
            settings = _with_limits(settings, limits)
        plan = plan_mod.plan_images(images, opts.budget, settings, pool, progress=progress)
        decision = fit_budget(plan, len(ids), opts.budget)
        decision["lines"] = plan_mod.summary_lines(plan)
        lines = list(decision["lines"])
    else:
        lines = list(decision.get("lines", [])) + [f"(the plan of the first run, kept in {SETTINGS})"]
    chosen = select(images, decision["n"], opts.seed)
    distance = float(decision["distance"])
    lines.append(f"compressing {len(chosen):,} images at d = {distance:.2f} ({decision['why']})")
    return Choice(chosen, dict.fromkeys(chosen, distance), distance, lines, decision, plan)


def _with_limits(settings, limits: images_mod.Limits):
    """The plan's settings with this run's guards (a namespace or a PlanSettings)."""
    import dataclasses

    if dataclasses.is_dataclass(settings):
        return dataclasses.replace(settings, max_pixels=limits.max_pixels, worker_memory=limits.memory)
    copy = argparse.Namespace(**vars(settings))
    copy.max_pixels, copy.worker_memory = limits.max_pixels, limits.memory
    return copy


def _pending(manifest: Manifest, chosen, out: Path, fmt: str, limits: images_mod.Limits) -> list[str]:
    """Chosen ids with no manifest row, whose output is gone (none lost), or skipped as too large
    for limits that now allow them."""
    todo = []
    for image_id in chosen:
        row = manifest.rows.get(image_id)
        if row is None:
            todo.append(image_id)
        elif row["status"] == OK:
            target = out / row["output"]
            if fmt == "jxl" and (not target.is_file() or str(target.stat().st_size) != row["bytes"]):
                todo.append(image_id)
            elif fmt == "parquet" and not target.is_file():
                todo.append(image_id)
        elif row["status"] == TOO_LARGE and limits.allows(int(row["width"] or 0), int(row["height"] or 0)):
            todo.append(image_id)
    return todo


def _refresh_too_large(manifest: Manifest, chosen, limits: images_mod.Limits) -> None:
    """Rows skipped as too large that these limits still refuse get the reason these limits give
    (from the recorded size: nothing is read again)."""
    updated = []
    for image_id in chosen:
        row = manifest.rows.get(image_id)
        if row is None or row["status"] != TOO_LARGE or not row["width"]:
            continue
        try:
            limits.check(int(row["width"]), int(row["height"]))
        except images_mod.TooLarge as exc:
            if str(exc) != row["notes"]:
                updated.append({**row, "notes": str(exc)})
    if updated:
        manifest.append(updated)


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
    complete: bool = True  # False: stopped over the budget
    best_effort: bool = False

    @property
    def images_per_second(self) -> float:
        return self.encoded_now / self.seconds if self.seconds > 0 else math.nan

    @property
    def status(self) -> str:
        """'' for a finished run, else what the report's title says."""
        if not self.complete:
            return "NOT COMPLETE (over the budget)"
        return "NO IMAGE WRITTEN" if self.selected and not self.ok else ""

    def lines(self) -> list[str]:
        lines = list(self.plan_lines)
        lines.append(f"{self.ok:,} images written to {self.out} ({format_size(self.total_bytes)}, "
                     f"{format_size(self.total_bytes / max(self.ok, 1))} per image; the originals of these images: "
                     f"{format_size(self.source_bytes)}), {len(self.skipped):,} skipped")
        if not self.complete:
            lines.append(f"NOT COMPLETE: stopped over the budget with {self.selected - self.ok - len(self.skipped):,} "
                         "images still to encode")
        if self.budget is not None:
            fill = self.total_bytes / self.budget
            flag = ""
            if fill > 1:
                flag = ("  OVER THE BUDGET (--best-effort: finished over it)" if self.best_effort
                        else "  OVER THE BUDGET: the sample's size estimate was off")
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


def run(images_arg, out, opts: Options, *, pool=None, plan_args=None, progress: bool = True,
        processes: int | None = None, workers: int | None = None, scheduler: str | None = None,
        chunk: int | None = None, dry_run: bool = False, limits: images_mod.Limits | None = None):
    """The whole job (see the module docstring): a :class:`Summary`, or with ``dry_run`` a
    :class:`DryRun` and nothing written. Bad input is a ValueError before any work; an over-budget
    run and a run that writes no image raise :class:`Failed` after writing their report."""
    opts = opts.check()
    if chunk is not None and chunk < 1:
        raise ValueError(f"--chunk must be at least 1 image per task, got {chunk}")
    out = check_out(Path(out), Path(images_arg))
    cluster.check_options(processes, workers, scheduler)
    images = images_mod.open_images(images_arg, exclude=out)
    if opts.budget is not None:
        from . import laws

        laws.load(getattr(plan_args, "law", None))  # a bad --law is one line before any work
    settings = settings_of(images, opts, plan_args)
    before = read_settings(out)
    check_settings(out, before, settings)
    check_not_busy(out)
    owned = pool is None
    if owned:
        pool = cluster.open_pool(processes, workers, scheduler)
    try:
        limits = limits or plan_mod.limits_for(plan_args or plan_mod.PlanSettings(), pool)
        choice = choose(images, opts, plan_args, pool, progress, (before or {}).get("decision"), limits)
        if dry_run:
            return dry_run_of(images, out, opts, choice, pool, plan_args, limits, progress)
        with claim(out) as state:
            if before is None:
                record = {**settings, "decision": choice.decision}
                atomic.write_text(out / SETTINGS, json.dumps(record, indent=1) + "\n")
            return _run(images, out, opts, pool, choice, limits, progress, chunk, state)
    finally:
        if owned:
            pool.close()


def _run(images, out: Path, opts: Options, pool, choice: Choice, limits, progress: bool, chunk: int | None,
         state: _Claim) -> Summary:
    from tqdm import tqdm

    remove_stale_temp_files(out)
    manifest = Manifest(out / MANIFEST)
    chosen, distances = choice.chosen, choice.distances
    _refresh_too_large(manifest, chosen, limits)
    names = output_names(images.items, images.layout()) if opts.fmt == "jxl" else {}
    todo = set(_pending(manifest, chosen, out, opts.fmt, limits))
    by_id = {it.id: it for it in images.items}
    pending = [by_id[i] for i in chosen if i in todo]
    done_before = len(chosen) - len(pending)
    total = sum(int(manifest.rows[i]["bytes"]) for i in chosen
                if i not in todo and i in manifest.rows and manifest.rows[i]["status"] == OK)
    # about 256 kB per task, and at least four tasks per worker so that none waits at the end
    step = chunk or max(1, min(_chunk_size(images.sizes), math.ceil(len(pending) / (4 * max(pool.workers, 1)))))

    def tasks():
        for k in range(0, len(pending), step):
            part = pending[k:k + step]
            yield EncodeTask([it.id for it in part], images.read_many(part), [distances[it.id] for it in part],
                             opts.effort, limits)

    def over() -> bool:
        return opts.budget is not None and total > opts.budget and not opts.best_effort

    parts = _Parts(out, images, manifest) if opts.fmt == "parquet" else None
    bar = tqdm(total=len(chosen), initial=done_before, desc="compress", unit="img", disable=not progress,
               mininterval=1.0, smoothing=0.05)
    start = time.perf_counter()
    encoded = 0
    stream = pool.imap_unordered(encode_chunk, tasks()) if pending and not over() else iter(())
    try:
        for _, rows in stream:
            state.written = True
            if parts is None:
                for r in rows:
                    if r["status"] == OK:
                        r["output"] = names[r["id"]]
                        atomic.write_bytes(out / r["output"], r["bitstream"])
                manifest.append(rows)
            else:
                parts.add(rows)
            encoded += len(rows)
            total += sum(r["bytes"] for r in rows if r["status"] == OK)
            bar.update(len(rows))
            if over():  # the bytes only grow: stop now, keep what is written for a --best-effort re-run
                break
        if parts is not None:
            parts.flush()
    finally:
        if hasattr(stream, "close"):
            stream.close()  # cancels the tasks in flight
        bar.close()
    seconds = time.perf_counter() - start
    stopped = over()
    if parts is not None and not stopped:
        parts.consolidate(chosen)
    summary = _summarise(out, manifest, chosen, done_before, encoded, seconds, opts, choice, complete=not stopped)
    if stopped:
        left = summary.selected - summary.ok - len(summary.skipped)
        raise Failed(f"over the budget: the {summary.ok:,} images written take {format_size(summary.total_bytes)}, "
                     f"{summary.total_bytes / opts.budget:.0%} of --budget {format_size(opts.budget)}"
                     + (f", with {left:,} still to encode" if left > 0 else "")
                     + f"; the sample's size estimate was off (a larger --sample estimates better). {out} is NOT "
                     f"COMPLETE ({REPORT} says so). Re-run with --best-effort to finish it over the budget (what is "
                     "written is kept), or start again in a new OUT with a smaller --budget")
    if summary.status:
        first = f" (e.g. {summary.skipped[0][0]}: {summary.skipped[0][1]})" if summary.skipped else ""
        raise Failed(f"no image was written to {out}: all {summary.selected:,} chosen files were skipped{first}; "
                     f"see {out / REPORT}")
    return summary


def _summarise(out, manifest, chosen, done_before, encoded, seconds, opts, choice: Choice,
               complete: bool = True) -> Summary:
    rows = [manifest.rows[i] for i in chosen if i in manifest.rows]
    ok = [r for r in rows if r["status"] == OK]
    skipped = [(r["id"], r["notes"]) for r in rows if r["status"] != OK]
    notes = Counter(n for r in ok for n in r["notes"].split("; ") if n)
    summary = Summary(out, len(chosen), done_before, len(ok), skipped, notes,
                      sum(int(r["bytes"]) for r in ok), sum(int(r["source_bytes"]) for r in ok), seconds, encoded,
                      opts.budget, choice.distance, choice.plan_lines, complete, opts.best_effort)
    atomic.write_text(out / REPORT, report_markdown(summary))
    return summary


def report_markdown(s: Summary) -> str:
    title = "# Compression report" + (f": {s.status}" if s.status else "")
    lines = [title, ""] + [f"- {line}" for line in s.lines()]
    lines += ["", "## Skipped files", ""] + ([f"- `{i}`: {r}" for i, r in s.skipped] or ["None."])
    lines += ["", "## Conversions to 8-bit RGB", ""]
    lines += [f"- {v:,} images: {k}" for k, v in sorted(s.notes.items())] or ["None: every image was 8-bit RGB."]
    if images_mod.ALPHA in s.notes:
        lines += ["", "Transparent pixels were composited over white before encoding (JPEG XL stores no alpha here)."]
    lines += ["", f"Codec: {codecs.ENCODER_SETTINGS['jxl']}. Per-image bytes and distances: `{MANIFEST}`."]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# --dry-run: what would be written, and nothing written


@dataclass
class DryRun:
    out: Path
    listed: int
    chosen: list
    distance: float | None
    randomized: tuple | None
    plan_lines: list
    predicted: float
    predicted_hi: float | None
    basis: str
    budget: float | None
    done: int
    seconds: float | None  # predicted time of the encodes still to do
    where: str
    per_class: dict = field(default_factory=dict)  # class name -> images kept (a labelled subset)

    def lines(self) -> list[str]:
        created = "" if self.out.exists() else f" ({self.out} was not created)"
        lines = [f"dry run: nothing was written{created}"] + list(self.plan_lines[:-1] if self.budget else [])
        how = "" if len(self.chosen) == self.listed else " (a seeded subset)"
        at = (f"at d = {self.distance:.4g}" if self.distance is not None
              else f"at distances spread over [{self.randomized[0]:g}, {self.randomized[1]:g}] (--randomized)")
        lines.append(f"would keep {len(self.chosen):,} files of the {self.listed:,} listed{how} {at}")
        if self.per_class:
            lines.append("  per class: " + ", ".join(f"{k} {v:,}" for k, v in self.per_class.items()))
        upper = f" (upper 95%: {format_size(self.predicted_hi)})" if self.predicted_hi is not None else ""
        lines.append(f"predicted bytes: {format_size(self.predicted)}{upper}, {self.basis}")
        if self.budget is not None:
            lines.append(f"budget {format_size(self.budget)}: {self.predicted / self.budget:.0%} predicted to be used")
        todo = len(self.chosen) - self.done
        when = f", about {_duration(self.seconds)} on {self.where}" if self.seconds is not None and todo else ""
        lines.append(f"{self.done:,} of them are already in OUT; {todo:,} would be encoded{when}")
        return lines


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(seconds, 1):.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def dry_run_of(images, out: Path, opts: Options, choice: Choice, pool, plan_args, limits, progress: bool) -> DryRun:
    """What a run would write (see the module docstring); reads OUT but writes nothing."""
    manifest = Manifest(out / MANIFEST, read_only=True) if out.is_dir() else None
    pending = (_pending(manifest, choice.chosen, out, opts.fmt, limits) if manifest is not None
               else list(choice.chosen))
    per_class = {}
    if images.labelled and len(choice.chosen) < len(images):
        label = {it.id: it.label for it in images.items}
        counts = Counter(label[i] for i in choice.chosen)
        per_class = {images.classes[k] if k < len(images.classes) else str(k): v for k, v in sorted(counts.items())}
    workers = max(pool.workers, 1)
    if choice.decision is not None:  # --budget: the plan measured the sizes
        d = choice.decision
        per_image = d.get("seconds_per_image")
        seconds = per_image * len(pending) / workers if per_image else None
        basis = (f"the plan's sample at d = {choice.distance:.4g}" if choice.plan is not None
                 else f"the plan of the first run, kept in {SETTINGS}")
        return DryRun(out, len(images), choice.chosen, choice.distance, None, choice.plan_lines, d["bytes"],
                      d.get("bytes_hi"), basis, opts.budget, len(choice.chosen) - len(pending), seconds,
                      pool.description, per_class)
    from tqdm import tqdm

    args = plan_args or plan_mod.PlanSettings()
    by_id = {it.id: it for it in images.items}
    picked = [choice.chosen[i] for i in plan_mod.sample_indices(len(choice.chosen), args.sample, args.seed)]
    items = [by_id[i] for i in picked]

    def tasks():
        for k in range(0, len(items), plan_mod.CHUNK):
            part = items[k:k + plan_mod.CHUNK]
            yield EncodeTask([it.id for it in part], images.read_many(part),
                             [choice.distances[it.id] for it in part], opts.effort, limits)

    rows = []
    bar = tqdm(total=len(items), desc="sizes of a sample", unit="img", disable=not progress)
    try:
        for _, part in pool.imap_unordered(size_chunk, tasks()):
            rows += part
            bar.update(len(part))
    finally:
        bar.close()
    ok = [r for r in rows if r["status"] == OK]
    if not ok:
        raise ValueError(f"none of the {len(rows):,} sampled files of {images.describe()} can be encoded "
                         f"(first: {rows[0]['id']}: {rows[0]['notes']}); nothing would be written")
    sizes = np.asarray([r["bytes"] for r in ok], dtype=float)
    usable = max(1, round(len(choice.chosen) * len(ok) / len(rows)))
    means = sizes[np.random.default_rng(args.seed).integers(0, len(sizes), size=(1000, len(sizes)))].mean(axis=1)
    predicted, hi = usable * float(sizes.mean()), usable * float(np.quantile(means, 0.975))
    seconds = float(np.mean([r["seconds"] for r in ok])) * len(pending) / workers
    which = "every file" if len(rows) == len(choice.chosen) else f"a seeded sample of {len(rows):,} of them (--sample)"
    basis = f"from {which}, encoded here ({len(ok):,} usable)"
    return DryRun(out, len(images), choice.chosen, choice.distance, opts.randomized, [], predicted,
                  None if len(rows) == len(choice.chosen) else hi, basis, None, len(choice.chosen) - len(pending),
                  seconds, pool.description, per_class)


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
        if sum(r["status"] == OK for r in self.buffer) >= PART_ROWS:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        ok = [r for r in self.buffer if r["status"] == OK]
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
        ok = [r for r in rows if r["status"] == OK]
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
    parser.add_argument("out", help="output folder: new or empty (its parent must exist), or one this command "
                                    "wrote before (a re-run resumes)")
    how = parser.add_mutually_exclusive_group(required=True)
    how.add_argument("--distance", type=float, metavar="D", help="one Butteraugli distance for every image")
    how.add_argument("--budget", metavar="S", help="plan first (see storage-scaling plan) and fit this budget: 10GB")
    how.add_argument("--randomized", type=float, nargs=2, metavar=("DMIN", "DMAX"),
                     help="each image its own distance in [DMIN, DMAX] (the paper's randomized scheme)")
    parser.add_argument("--dry-run", action="store_true",
                        help="say what would be kept, at what distance, and the predicted bytes (from a sample of "
                             "--sample images encoded here, or the plan's); write nothing")
    parser.add_argument("--best-effort", action="store_true",
                        help="with --budget: if the real bytes exceed the budget, finish anyway and exit 0 "
                             "(default: stop, exit 1, OUT marked NOT COMPLETE)")
    parser.add_argument("--format", dest="fmt", choices=("jxl", "parquet"), default="jxl",
                        help="jxl: files mirroring the input's layout (default); parquet: one pack in the book's schema")
    parser.add_argument("--chunk", type=int, default=None, metavar="N",
                        help="images per task (default: about 256 kB of input per task, at most 32)")
    plan_mod.add_common(parser)
    cluster.add_arguments(parser)


def cmd(args: argparse.Namespace) -> int:
    budget = parse_size(args.budget) if args.budget is not None else None
    plan_mod.check_common(args)
    opts = Options(distance=args.distance, budget=budget,
                   randomized=tuple(args.randomized) if args.randomized else None, fmt=args.fmt,
                   effort=args.effort, seed=args.seed, best_effort=args.best_effort)
    result = run(args.images, args.out, opts, plan_args=args, processes=args.processes, workers=args.workers,
                 scheduler=args.scheduler, chunk=args.chunk, dry_run=args.dry_run)
    for line in result.lines():
        print(line)
    if not args.dry_run:
        print(f"manifest: {result.out / MANIFEST}; report: {result.out / REPORT}")
    return 0

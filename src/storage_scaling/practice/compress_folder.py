"""``storage-scaling compress IMAGES OUT``: write your dataset compressed, resumable, in parallel.

How hard: ``--distance D`` (every image at one Butteraugli distance), ``--budget S`` (plans first,
as ``storage-scaling plan`` does: the storage-optimal number of images and the distance that fits
them in ``S``), ``--randomized DMIN DMAX`` (the paper's randomized scheme: each image its own
distance, spread over the range by a seeded permutation), or ``--original`` (every pixel kept:
each JPEG is transcoded losslessly to JPEG XL -- reversible: ``compress_folder.restore_jpeg`` gives
back the JPEG's exact bytes -- and kept as its JPEG file where the transcode is not smaller; any other
image is kept as its file). ``--max-side N`` first shrinks every image whose longer side exceeds
N pixels (Lanczos), as dataset tools do.

Which images, when ``--budget`` keeps fewer than there are (``--keep``): ``stratified`` (each class
keeps its share; the default for images with classes), ``random`` (a seeded random subset; the
default without classes), or ``FILE`` (a text file of ids or paths, in order of priority: the
first n of them; with the other modes, only the listed images are written).

``--dry-run`` says what would be kept, at what distance, and the predicted bytes (from a seeded
sample of ``--sample`` images encoded here, or the plan's), and how many are already in OUT;
nothing is written and OUT is not created.

What comes out in ``OUT`` (a new or empty folder, or one this command wrote before; a local path
or a URL that fsspec writes, see below), by ``--format``:

* ``jxl`` (default): files mirroring the input's layout (``cats/001.jpg`` -> ``cats/001.jxl``; for
  a list of paths, relative to the deepest folder holding them all; an image kept as stored keeps
  its own name);
* ``parquet``: shards ``images-00000-of-00003.parquet``... in the book's schema (``image``: a
  struct of ``bytes`` and ``path``, ``label``, ``distance``), each at most ``--shard-size``;
* ``webdataset``: tar shards ``images-00000-of-00003.tar``... in the WebDataset layout
  (``KEY.jxl``, ``KEY.cls``, ``KEY.json``), each at most ``--shard-size``;

and with each: ``classes.txt`` when the images have classes (sub-folders of a folder, or a pack's
labels: the label is the class's line number, from 0); ``manifest.csv``: one row per image (id,
status, distance, source and output bytes, size, output, conversion notes, or why it was
skipped); ``compress.json`` (the settings, checked when resuming, and with ``--budget`` the plan's
choice, reused when resuming) and ``report.md`` (counts, bytes, conversions, skipped files).
``storage_scaling.practice.loader`` reads every format back (PyTorch datasets).

A budget is a limit: with ``--budget`` the kept images are chosen so that the sample's upper 95 %
mean size fits it, and when the largest distance is reached fewer images are kept. It counts the
images' bytes, as the law's L does; the shards' own headers come on top (reported: in tar,
about 2-3 kB per image). If the real
bytes still exceed it, the run stops, exits with status 1 and leaves OUT marked NOT COMPLETE
(``report.md``; no shards), unless ``--best-effort`` is given: a re-run with it keeps what was
written and finishes over the budget. A run in which every image was skipped exits 1 too.

Bad input is one line, exit status 2, before any work; a refusal, or an interrupt before the first
image is written, leaves OUT as it was found. The work runs on local processes or a Dask cluster
in chunks; the client (this process) reads the inputs, writes every output atomically and then
its manifest rows, flushed to disk, so an interrupt -- even ``kill -9`` -- loses at most the chunks
in flight: a re-run skips every image of the manifest whose output is there and encodes the rest
(no image twice, none lost). Each output is decoded in the worker before it is written (a bitstream
that does not decode to the input's size, or a transcode that does not give back the JPEG's bytes,
is not stored). Unreadable, corrupt and non-image files are skipped and listed; greyscale, palette,
CMYK, 16-bit and alpha images are converted to 8-bit RGB (alpha composited over white) and
counted. Images over ``--max-pixels``, or needing more memory than one worker's share
(``--worker-memory``), are skipped with the option that would include them, and a re-run with a
higher limit retries them.

Remote storage: ``IMAGES`` may be a URL, and so may ``OUT`` (``s3://bucket/out`` with s3fs
installed; any protocol fsspec writes). A remote OUT is prepared in a local staging folder
(``--staging``, default under ``~/.cache/storage-scaling/staging``) exactly as a local one, and
its files are uploaded when the run is complete (those already there with the same size are
skipped). The staging folder is kept: a re-run resumes from it and uploads what is missing.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import fcntl
import hashlib
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
from . import Failed, cluster, images as images_mod, plan as plan_mod, remote, shards
from .units import format_duration, format_size, parse_size

MANIFEST = "manifest.csv"
SETTINGS = "compress.json"
REPORT = "report.md"
PARTS = shards.PARTS
SEAL = shards.SEAL
LOCK = ".compress.lock"
CLASSES = "classes.txt"
FORMATS = ("jxl", "parquet", "webdataset")
DEFAULT_SHARD_SIZE = 500e6  # --shard-size: what WebDataset and the Hugging Face Hub suggest (100 MB-1 GB)
KEEP_AUTO, KEEP_RANDOM, KEEP_STRATIFIED = "auto", "random", "stratified"
LATER_DEFAULTS = {"shard_size": DEFAULT_SHARD_SIZE}  # settings an OUT of an earlier version has not recorded
COLUMNS = ("id", "status", "distance", "source_bytes", "bytes", "width", "height", "output", "notes")
OK, SKIPPED, TOO_LARGE = "ok", "skipped", "too-large"  # manifest statuses (too-large: retried when allowed)
PART_ROWS = shards.PART_ROWS  # images per staging part (an interrupt loses at most one part being filled)
NOT_IN_SETTINGS = ("started_at", "code_version", "decision")  # what a resume does not compare
# notes of --original (counted in the report like the conversions)
TRANSCODED = "JPEG transcoded losslessly to JPEG XL"
KEPT_BIGGER = "JPEG kept as stored: its transcode was not smaller"
KEPT_FAILED = "JPEG kept as stored: libjxl cannot transcode it"
KEPT_OTHER = "kept as stored (not a JPEG)"
ORIGINAL_NOTES = (TRANSCODED, KEPT_BIGGER, KEPT_FAILED, KEPT_OTHER)

EXAMPLES = """examples:
  storage-scaling compress ~/photos ~/photos-d4 --distance 4
  storage-scaling compress ~/photos ~/photos-10GB --budget 10GB --law my_law.json --dry-run   # look first
  storage-scaling compress ~/photos ~/photos-10GB --budget 10GB --law my_law.json
  storage-scaling compress train.parquet out/ --randomized 0.5 15 --format parquet
  storage-scaling compress ~/photos out/ --original                  # every pixel: lossless JPEG transcode
  storage-scaling compress ~/classes shards/ --distance 3 --max-side 512 --format webdataset --shard-size 1GB
  storage-scaling compress ~/classes out/ --budget 5GB --keep stratified --law my_law.json
  storage-scaling compress s3://bucket/photos s3://bucket/photos-d4 --distance 4   # needs s3fs
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
    max_side: int | None = None  # --max-side
    original: bool = False  # --original: lossless JPEG transcode, else the file as stored


def _decoded(image_id, data, task: EncodeTask):
    """(row, pixels, notes): the row says why not when the image cannot be used (pixels None)."""
    row = {"id": image_id, "source_bytes": images_mod.stored_bytes(data)}
    try:
        pixels, notes = images_mod.to_rgb8(data, task.limits)
    except images_mod.TooLarge as exc:
        return {**row, "status": TOO_LARGE, "notes": str(exc), "width": exc.width, "height": exc.height}, None, ()
    except images_mod.Unusable as exc:
        return {**row, "status": SKIPPED, "notes": str(exc)}, None, ()
    pixels, resized = images_mod.limit_side(pixels, task.max_side)
    return row, pixels, notes + ((images_mod.RESIZED,) if resized else ())


def transcode(data: bytes) -> bytes | None:
    """The lossless JPEG XL transcode of a JPEG file, checked: None when libjxl cannot transcode
    it or the transcode does not give back the file's exact bytes."""
    import imagecodecs

    try:
        out = bytes(imagecodecs.jpegxl_encode_jpeg(bytes(data), numthreads=1))
        back = bytes(imagecodecs.jpegxl_decode_jpeg(out, numthreads=1))
    except Exception:  # noqa: BLE001 - imagecodecs raises its own error types
        return None
    return out if back == bytes(data) else None


def restore_jpeg(bitstream: bytes) -> bytes:
    """The original JPEG file's exact bytes from its lossless transcode (``--original``)."""
    import imagecodecs

    return bytes(imagecodecs.jpegxl_decode_jpeg(bytes(bitstream), numthreads=1))


def _original(data: bytes) -> tuple[bytes, str]:
    """``--original``: the smaller of the JPEG's lossless transcode and the file; a non-JPEG as stored."""
    if not images_mod.is_jpeg(data):
        return bytes(data), KEPT_OTHER
    out = transcode(data)
    if out is None:
        return bytes(data), KEPT_FAILED
    return (out, TRANSCODED) if len(out) < len(data) else (bytes(data), KEPT_BIGGER)


def encode_chunk(task: EncodeTask) -> list[dict]:
    """Each image converted to 8-bit RGB, encoded, decoded back and checked; or why not (with
    ``original``: transcoded and checked, or kept as stored, see :func:`_original`)."""
    out = []
    for image_id, data, distance in zip(task.ids, task.data, task.distances):
        row, pixels, notes = _decoded(image_id, data, task)
        row["distance"] = float(distance)
        if pixels is None:
            out.append(row)
            continue
        if task.original:
            bitstream, how = _original(data)
            out.append({**row, "status": OK, "bitstream": bitstream, "bytes": len(bitstream),
                        "height": int(pixels.shape[0]), "width": int(pixels.shape[1]), "notes": how})
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
    """Each image's bytes at its distance (or ``original``) and the seconds it took (``--dry-run``)."""
    out = []
    for image_id, data, distance in zip(task.ids, task.data, task.distances):
        row, pixels, _ = _decoded(image_id, data, task)
        if pixels is not None:
            start = time.perf_counter()
            size = (len(_original(data)[0]) if task.original
                    else len(codecs.encode(pixels, "jxl", float(distance), effort=task.effort)))
            row.update(status=OK, bytes=size, seconds=time.perf_counter() - start)
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
    original: bool = False  # --original: every pixel kept (lossless JPEG transcode, else the file)
    fmt: str = "jxl"
    effort: int = codecs.DEFAULT_EFFORT
    seed: int = 0
    best_effort: bool = False  # --budget: finish over the budget instead of stopping (not a setting of OUT)
    max_side: int | None = None  # --max-side: shrink larger images first
    keep: str = KEEP_AUTO  # --keep: auto, random, stratified, or a file of ids
    shard_size: float | None = None  # --shard-size (parquet, webdataset); None: DEFAULT_SHARD_SIZE

    def check(self) -> "Options":
        modes = [m for m, v in (("--distance", self.distance), ("--budget", self.budget),
                                ("--randomized", self.randomized), ("--original", self.original or None))
                 if v is not None]
        if len(modes) != 1:
            raise ValueError("say how hard to compress with exactly one of --distance D, --budget S, "
                             f"--randomized DMIN DMAX or --original (got {', '.join(modes) or 'none'})")
        lo, hi = codecs.DISTANCE_RANGE
        if self.distance is not None and not (lo < self.distance <= hi):
            raise ValueError(f"--distance must lie in ({lo:g}, {hi:g}] (Butteraugli distance; 1 is visually "
                             f"lossless, 15 the paper's largest), got {self.distance:g}")
        if self.randomized is not None:
            a, b = self.randomized
            if not (lo < a < b <= hi):
                raise ValueError(f"--randomized DMIN DMAX needs {lo:g} < DMIN < DMAX <= {hi:g}, got {a:g} {b:g}")
        if self.fmt not in FORMATS:
            raise ValueError(f"--format must be jxl (files), parquet or webdataset (shards), got {self.fmt!r}")
        if self.best_effort and self.budget is None:
            raise ValueError("--best-effort goes with --budget (it lets a compression finish over its budget)")
        check_max_side(self.max_side)
        if self.original and self.max_side:
            raise ValueError("--original keeps every pixel and --max-side resizes: choose one (to resize, give "
                             "--distance D with --max-side)")
        if self.keep in (KEEP_RANDOM, KEEP_STRATIFIED) and self.budget is None:
            raise ValueError(f"--keep {self.keep} chooses which images --budget keeps when it keeps fewer than "
                             "there are; with --distance, --randomized or --original every image is written "
                             "(give --keep FILE to write only some)")
        if self.shard_size is not None and self.fmt == "jxl":
            raise ValueError("--shard-size goes with --format parquet or webdataset (jxl writes one file per image)")
        codecs.check_effort(self.effort)
        return self

    @property
    def keep_file(self) -> str | None:
        return None if self.keep in (KEEP_AUTO, KEEP_RANDOM, KEEP_STRATIFIED) else self.keep

    @property
    def sharded(self) -> bool:
        return self.fmt in shards.FORMATS


def check_max_side(max_side) -> None:
    if max_side is not None and (isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 8):
        raise ValueError(f"--max-side must be a whole number of pixels >= 8, got {max_side!r}")


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


def kept_name(image_id: str, layout: dict, data: bytes = b"") -> str:
    """Where an image kept as stored (``--original``) goes in OUT: its relative path, its own
    suffix (one from its bytes when the id has none, as a pack's ``row-0000001``)."""
    rel = layout.get(image_id, image_id)
    parts = [p for p in PurePosixPath(rel.replace("\\", "/")).parts if p not in ("/", "..", ".", "")]
    name = str(PurePosixPath(*parts)) if parts else "image"
    if not PurePosixPath(name).suffix and data:
        name += "." + shards.extension({"id": name, "bytes": data})
    return name


def check_out(out: Path, images_arg) -> Path:
    """OUT may not exist yet, but its parent must; it must be writable, not the input itself, and
    new, empty, or a compression this command wrote (its ``compress.json``). Nothing is written."""
    out = plan_mod.check_writable_folder(Path(out), "OUT")
    if remote.is_remote(images_arg):
        src = None
    else:
        src = remote.local_path(images_arg).resolve()
    if src is None:
        pass
    elif out.exists() and out.resolve() == src:
        raise ValueError(f"OUT {out} is IMAGES itself; write the compressed images to another folder")
    elif out.exists() and out.resolve() in src.parents:
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
    had = {name: (out / name).exists() for name in (LOCK, SETTINGS, PARTS, SEAL)}
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
    for folder in (PARTS, SEAL):
        if not had[folder]:
            shards._discard(out / folder)
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


def settings_of(images, opts: Options, plan_args, keep_ids: list | None = None) -> dict:
    settings = {"images": str(images.root), "kind": images.kind, "listing": images.digest(), "listed": len(images),
                "distance": opts.distance, "budget": opts.budget,
                "randomized": list(opts.randomized) if opts.randomized else None, "format": opts.fmt,
                "effort": opts.effort, "seed": opts.seed, "codec": codecs.ENCODER_SETTINGS["jxl"],
                "code_version": provenance.code_version(), "started_at": provenance.now()}
    if opts.budget is not None:
        settings["law"] = getattr(plan_args, "law", None) or "paper:food101"
    # settings of later versions: recorded only when used, so an OUT written before them resumes
    if opts.original:
        settings["original"] = True
    if opts.max_side:
        settings["max_side"] = int(opts.max_side)
    if opts.keep in (KEEP_RANDOM, KEEP_STRATIFIED):
        settings["keep"] = opts.keep
    elif keep_ids is not None:
        settings["keep"] = "list " + hashlib.sha1("\n".join(keep_ids).encode()).hexdigest()[:16]
    if opts.sharded:
        settings["shard_size"] = float(opts.shard_size or DEFAULT_SHARD_SIZE)
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
    keys = [k for k in dict.fromkeys([*settings, *before]) if k not in NOT_IN_SETTINGS]
    # a setting added later, absent from an older OUT, matches its default (an old parquet pack resumes)
    older = {k: v for k, v in LATER_DEFAULTS.items() if k not in before and before.get("format") in ("parquet",)}
    changed = [f"{k}: {before.get(k, older.get(k))!r} then, {settings.get(k)!r} now" for k in keys
               if before.get(k, older.get(k)) != settings.get(k)]
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


def select(images, n: int | None, seed: int, keep: str = KEEP_AUTO, listed: list | None = None) -> list:
    """The ids kept (in id order): all (n None), or n of them: the first n of ``listed`` (``--keep
    FILE``, in its order), else in the seeded nested order, stratified by class (``stratified``, and
    ``auto`` for images with classes: the classes keep their shares) or not (``random``)."""
    ids = [it.id for it in images.items]
    if listed is not None:
        return sorted(listed if n is None else listed[:n])
    if n is None or n >= len(ids):
        return ids
    if keep == KEEP_STRATIFIED or (keep == KEEP_AUTO and images.labelled):
        from .. import data

        order = data.nested_order(np.asarray([it.label for it in images.items]), seed)
    else:
        order = np.random.default_rng(seed).permutation(len(ids))
    return [ids[i] for i in np.sort(order[:n])]


def read_keep_list(path, images) -> list[str]:
    """The ids a ``--keep FILE`` names, in its order: each line an id (as in the manifest) or a
    path of one of the images; blank lines and ``#`` comments ignored. One ValueError for a line
    that names none of IMAGES, or a file that cannot be read."""
    where = remote.local_path(path)
    try:
        text = remote.read_bytes(path).decode("utf-8") if remote.is_remote(path) else where.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"--keep {path}: cannot read it as a text file of image ids ({exc}); give random, "
                         "stratified or a text file with one id or path a line") from exc
    by_id = {it.id: it.id for it in images.items}
    by_path = {os.path.abspath(it.path): it.id for it in images.items if it.path and not remote.is_remote(it.path)}
    by_path.update({it.path: it.id for it in images.items if it.path and remote.is_remote(it.path)})
    out, seen, unknown = [], set(), []
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        found = by_id.get(entry)
        if found is None and not remote.is_remote(entry):
            local = Path(entry).expanduser()
            found = by_path.get(os.path.abspath(local if local.is_absolute() else where.parent / local))
        elif found is None:
            found = by_path.get(entry)
        if found is None:
            unknown.append((number, entry))
        elif found not in seen:
            seen.add(found)
            out.append(found)
    if unknown:
        shown = "; ".join(f"line {k}: {e}" for k, e in unknown[:3]) + ("; ..." if len(unknown) > 3 else "")
        raise ValueError(f"--keep {path}: {len(unknown):,} line(s) name none of the images of {images.describe()} "
                         f"({shown}); give ids as in the manifest (e.g. {images.items[0].id}) or their paths")
    if not out:
        raise ValueError(f"--keep {path} names no image; give one id or path a line")
    return out


def fit_budget(plan, listed: int, budget: float, available: int | None = None) -> dict:
    """The decision of ``--budget``: how many images (None: all) at which distance, aiming the
    sample's upper 95 % mean size at the budget; when even the largest distance measured does not
    fit the plan's n, n shrinks to the images that fit there. Also the predicted bytes.
    ``available``: the images that may be kept (``--keep FILE``), when fewer than ``listed``."""
    usable_here = max(1, round(listed * plan.sample.usable_fraction))
    if available is not None:
        usable_here = min(usable_here, max(1, round(available * plan.sample.usable_fraction)))
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
    keep = None if n >= usable_here and available is None else int(n)
    kept = usable_here if keep is None else keep
    at = budget_mod.interpolate_sizes
    return {"n": keep, "distance": distance, "why": why,
            "bytes": float(kept * at(mean, grid, distance)[0]), "bytes_hi": float(kept * at(upper, grid, distance)[0]),
            "seconds_per_image": plan.sample.seconds_per_encode}


def choose(images, opts: Options, plan_args, pool, progress: bool, decision: dict | None = None,
           limits: images_mod.Limits | None = None, keep_ids: list | None = None, log=print) -> Choice:
    """What this run writes, for the chosen mode (``decision``: a resumed budget run's, reused;
    ``keep_ids``: the ``--keep FILE`` list)."""
    ids = [it.id for it in images.items] if keep_ids is None else sorted(keep_ids)
    if opts.distance is not None or opts.original:
        d = 0.0 if opts.original else float(opts.distance)
        return Choice(ids, dict.fromkeys(ids, d), d)
    if opts.randomized is not None:
        ranks = budget_mod.permutation_ranks(len(ids), opts.seed)
        d = budget_mod.randomized_distances(ranks, *opts.randomized)
        return Choice(ids, dict(zip(ids, map(float, d))), None)
    plan = None
    if decision is None:
        settings = _for_run(plan_args or plan_mod.PlanSettings(), limits, opts.max_side)
        plan = plan_mod.plan_images(images, opts.budget, settings, pool, progress=progress, log=log)
        decision = fit_budget(plan, len(images), opts.budget, None if keep_ids is None else len(keep_ids))
        decision["lines"] = plan_mod.summary_lines(plan)
        lines = list(decision["lines"])
    else:
        lines = list(decision.get("lines", [])) + [f"(the plan of the first run, kept in {SETTINGS})"]
    chosen = select(images, decision["n"], opts.seed, opts.keep, keep_ids)
    distance = float(decision["distance"])
    lines.append(f"compressing {len(chosen):,} images at d = {distance:.2f} ({decision['why']})")
    return Choice(chosen, dict.fromkeys(chosen, distance), distance, lines, decision, plan)


def _for_run(settings, limits: images_mod.Limits | None, max_side: int | None):
    """The plan's settings with this run's guards and --max-side (a namespace or a PlanSettings):
    the sample is measured as the run will encode."""
    import dataclasses

    changes = {"max_side": max_side}
    if limits is not None:
        changes.update(max_pixels=limits.max_pixels, worker_memory=limits.memory)
    if dataclasses.is_dataclass(settings):
        return dataclasses.replace(settings, **changes)
    copy = argparse.Namespace(**vars(settings))
    for k, v in changes.items():
        setattr(copy, k, v)
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
            elif fmt != "jxl" and not target.is_file():
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
    fmt: str = "jxl"
    shards: list = field(default_factory=list)  # shard names (parquet, webdataset)
    remote: str | None = None  # the URL the outputs were uploaded to
    uploaded: int = 0  # files copied there by this run
    shard_bytes: int = 0  # the shards' bytes on disk (images and the container's headers)

    @property
    def images_per_second(self) -> float:
        return self.encoded_now / self.seconds if self.seconds > 0 else math.nan

    @property
    def status(self) -> str:
        """'' for a finished run, else what the report's title says."""
        if not self.complete:
            return "NOT COMPLETE (over the budget)"
        return "NO IMAGE WRITTEN" if self.selected and not self.ok else ""

    @property
    def where(self) -> str:
        return self.remote or str(self.out)

    def lines(self) -> list[str]:
        lines = list(self.plan_lines)
        lines.append(f"{self.ok:,} images written to {self.where} ({format_size(self.total_bytes)}, "
                     f"{format_size(self.total_bytes / max(self.ok, 1))} per image; the originals of these images: "
                     f"{format_size(self.source_bytes)}), {len(self.skipped):,} skipped")
        if self.shards:
            extra = self.shard_bytes - self.total_bytes
            lines.append(f"  in {len(self.shards):,} {self.fmt} shard(s): {shards.pattern(self.fmt, len(self.shards))}; "
                         f"{format_size(self.shard_bytes)} on disk, {format_size(extra / max(self.ok, 1))} per image "
                         f"more than the images ({extra / max(self.total_bytes, 1):+.0%}: the container's headers"
                         + (" and padding" if self.fmt == "webdataset" else "") + ")")
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
        original = {k: v for k, v in self.notes.items() if k in ORIGINAL_NOTES}
        converted = {k: v for k, v in self.notes.items() if k not in ORIGINAL_NOTES}
        if original:
            lines.append("original format: " + "; ".join(f"{v:,} {k}" for k, v in sorted(original.items())))
        if converted:
            lines.append("converted: " + "; ".join(f"{v:,} {k}" for k, v in sorted(converted.items())))
        if self.skipped:
            shown = "; ".join(f"{i}: {r}" for i, r in self.skipped[:5])
            more = f" (and {len(self.skipped) - 5:,} more, see {REPORT})" if len(self.skipped) > 5 else ""
            lines.append(f"skipped: {shown}{more}")
        if self.encoded_now:
            lines.append(f"this run: {self.encoded_now:,} images in {self.seconds:,.1f} s "
                         f"({self.images_per_second:,.2f} images/s); {self.done_before:,} were done before")
        if self.remote:
            lines.append(f"uploaded {self.uploaded:,} file(s) to {self.remote} (staging folder: {self.out})")
        return lines


def _chunk_size(sizes: np.ndarray) -> int:
    """About 256 kB of stored images per task (at least 1, at most 32 images): enough work to
    hide a cluster's overhead, little lost to an interrupt."""
    mean = float(sizes[sizes > 0].mean()) if np.any(sizes > 0) else 1e5
    return int(np.clip(2.5e5 / mean, 1, 32))


def resolve_out(out, images_arg, staging=None, *, dry_run: bool = False) -> tuple[Path, str | None]:
    """The local folder a run writes (OUT itself, or a remote OUT's staging folder) and the URL
    to upload to (None for a local OUT); one ValueError for an OUT that cannot be used."""
    target = str(out)
    if not remote.is_remote(target):
        if staging is not None:
            raise ValueError("--staging goes with a remote OUT (a URL such as s3://bucket/out)")
        return check_out(remote.local_path(target), images_arg), None
    remote.filesystem(target, "OUT")  # a protocol fsspec cannot open: one line, before anything
    local = Path(staging).expanduser() if staging else remote.default_staging(target)
    if not dry_run and not local.parent.is_dir():
        local.parent.mkdir(parents=True, exist_ok=True)
    remote.check_remote_out(target, (local / SETTINGS).is_file(), SETTINGS)
    if dry_run and not local.parent.is_dir():
        return local, target
    return check_out(local, images_arg), target


def run(images_arg, out, opts: Options, *, pool=None, plan_args=None, progress: bool = True,
        processes: int | None = None, workers: int | None = None, scheduler: str | None = None,
        chunk: int | None = None, dry_run: bool = False, limits: images_mod.Limits | None = None,
        staging=None, log=print):
    """The whole job (see the module docstring): a :class:`Summary`, or with ``dry_run`` a
    :class:`DryRun` and nothing written. Bad input is a ValueError before any work; an over-budget
    run and a run that writes no image raise :class:`Failed` after writing their report.
    ``staging``: the local folder of a remote OUT (default :func:`remote.default_staging`)."""
    opts = opts.check()
    if chunk is not None and chunk < 1:
        raise ValueError(f"--chunk must be at least 1 image per task, got {chunk}")
    out, url = resolve_out(out, images_arg, staging, dry_run=dry_run)
    cluster.check_options(processes, workers, scheduler)
    images = images_mod.open_images(images_arg, exclude=out)
    keep_ids = read_keep_list(opts.keep_file, images) if opts.keep_file else None
    if opts.keep == KEEP_STRATIFIED and not images.labelled:
        raise ValueError(f"--keep stratified needs classes, and {images.describe()} has none (give one sub-folder "
                         "per class, or a pack with labels); use --keep random")
    if opts.budget is not None:
        from . import laws

        laws.load(getattr(plan_args, "law", None))  # a bad --law is one line before any work
    settings = settings_of(images, opts, plan_args, keep_ids)
    before = read_settings(out)
    check_settings(out, before, settings)
    check_not_busy(out)
    owned = pool is None
    if owned:
        pool = cluster.open_pool(processes, workers, scheduler)
    try:
        limits = limits or plan_mod.limits_for(plan_args or plan_mod.PlanSettings(), pool)
        choice = choose(images, opts, plan_args, pool, progress, (before or {}).get("decision"), limits,
                        keep_ids, log)
        if dry_run:
            result = dry_run_of(images, out, opts, choice, pool, plan_args, limits, progress)
            result.remote = url
            return result
        with claim(out) as state:
            if before is None:
                record = {**settings, "decision": choice.decision}
                atomic.write_text(out / SETTINGS, json.dumps(record, indent=1) + "\n")
            summary = _run(images, out, opts, pool, choice, limits, progress, chunk, state)
    finally:
        if owned:
            pool.close()
    if url is not None:
        summary.remote = url
        try:
            summary.uploaded = remote.upload(out, url, _outputs(out, summary), progress=progress)
        except OSError as exc:
            raise Failed(f"{exc}; the compression is complete in the staging folder {out}: re-run the same command "
                         "to upload what is missing") from exc
    return summary


def _outputs(out: Path, summary: Summary) -> list[str]:
    """What a finished OUT holds, the files of the images first and the report last."""
    manifest = Manifest(out / MANIFEST, read_only=True)
    if summary.shards:
        names = list(summary.shards)
    else:
        names = sorted({r["output"] for r in manifest.rows.values() if r["status"] == OK and r["output"]})
    extra = [CLASSES] if (out / CLASSES).is_file() else []
    return names + extra + [MANIFEST, SETTINGS, REPORT]


def _run(images, out: Path, opts: Options, pool, choice: Choice, limits, progress: bool, chunk: int | None,
         state: _Claim) -> Summary:
    from tqdm import tqdm

    remove_stale_temp_files(out)
    manifest = Manifest(out / MANIFEST)
    shards.recover(out, manifest)
    chosen, distances = choice.chosen, choice.distances
    _refresh_too_large(manifest, chosen, limits)
    layout = images.layout() if opts.fmt == "jxl" else {}
    names = output_names(images.items, layout) if opts.fmt == "jxl" else {}
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
                             opts.effort, limits, opts.max_side, opts.original)

    def over() -> bool:
        return opts.budget is not None and total > opts.budget and not opts.best_effort

    labels = {it.id: it.label for it in images.items}
    parts = shards.Parts(out, labels, manifest, PART_ROWS) if opts.sharded else None
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
                        transcoded = r["bitstream"][:2] == b"\xff\x0a" or r["bitstream"][4:8] == b"JXL "
                        r["output"] = names[r["id"]] if transcoded else kept_name(r["id"], layout, r["bitstream"])
                        atomic.write_bytes(out / r["output"], r["bitstream"])
                manifest.append(rows)
            else:
                parts.add(rows, OK)
            encoded += len(rows)
            total += sum(r["bytes"] for r in rows if r["status"] == OK)
            bar.update(len(rows))
            if over():  # the bytes only grow: stop now, keep what is written for a --best-effort re-run
                break
        if parts is not None:
            parts.flush(OK)
    finally:
        if hasattr(stream, "close"):
            stream.close()  # cancels the tasks in flight
        bar.close()
    seconds = time.perf_counter() - start
    stopped = over()
    names_of_shards = []
    if opts.sharded and not stopped:
        names_of_shards = shards.seal(out, manifest, chosen, opts.fmt, opts.shard_size or DEFAULT_SHARD_SIZE,
                                      labels, images.classes if images.labelled else [], OK, progress)
    elif not stopped and images.labelled and images.classes:
        atomic.write_text(out / CLASSES, "\n".join(images.classes) + "\n")
    summary = _summarise(out, manifest, chosen, done_before, encoded, seconds, opts, choice, complete=not stopped,
                         shard_names=names_of_shards)
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
               complete: bool = True, shard_names=()) -> Summary:
    rows = [manifest.rows[i] for i in chosen if i in manifest.rows]
    ok = [r for r in rows if r["status"] == OK]
    skipped = [(r["id"], r["notes"]) for r in rows if r["status"] != OK]
    notes = Counter(n for r in ok for n in r["notes"].split("; ") if n)
    summary = Summary(out, len(chosen), done_before, len(ok), skipped, notes,
                      sum(int(r["bytes"]) for r in ok), sum(int(r["source_bytes"]) for r in ok), seconds, encoded,
                      opts.budget, choice.distance, choice.plan_lines, complete, opts.best_effort, opts.fmt,
                      list(shard_names), shard_bytes=sum((out / n).stat().st_size for n in shard_names))
    atomic.write_text(out / REPORT, report_markdown(summary))
    return summary


def report_markdown(s: Summary) -> str:
    title = "# Compression report" + (f": {s.status}" if s.status else "")
    lines = [title, ""] + [f"- {line}" for line in s.lines()]
    lines += ["", "## Skipped files", ""] + ([f"- `{i}`: {r}" for i, r in s.skipped] or ["None."])
    original = {k: v for k, v in s.notes.items() if k in ORIGINAL_NOTES}
    converted = {k: v for k, v in s.notes.items() if k not in ORIGINAL_NOTES}
    if original:
        lines += ["", "## Original format (every pixel kept)", ""]
        lines += [f"- {v:,} images: {k}" for k, v in sorted(original.items())]
        lines += ["", "A transcoded JPEG gives back its exact file: `compress_folder.restore_jpeg(bytes)` "
                      "(imagecodecs' `jpegxl_decode_jpeg`)."]
    else:
        lines += ["", "## Conversions to 8-bit RGB", ""]
        lines += [f"- {v:,} images: {k}" for k, v in sorted(converted.items())] or ["None: every image was 8-bit RGB."]
    if images_mod.ALPHA in s.notes:
        lines += ["", "Transparent pixels were composited over white before encoding (JPEG XL stores no alpha here)."]
    if s.shards:
        lines += ["", f"Shards ({s.fmt}): `{shards.pattern(s.fmt, len(s.shards))}`; read them back with "
                      "`storage_scaling.practice.loader`."]
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
    original: bool = False
    remote: str | None = None

    def lines(self) -> list[str]:
        created = "" if self.out.exists() else f" ({self.remote or self.out} was not created)"
        lines = [f"dry run: nothing was written{created}"] + list(self.plan_lines[:-1] if self.budget else [])
        how = "" if len(self.chosen) == self.listed else " (a seeded subset)"
        if self.original:
            at = "at their original quality (lossless JPEG transcode, or the file as stored)"
        elif self.distance is not None:
            at = f"at d = {self.distance:.4g}"
        else:
            at = f"at distances spread over [{self.randomized[0]:g}, {self.randomized[1]:g}] (--randomized)"
        lines.append(f"would keep {len(self.chosen):,} files of the {self.listed:,} listed{how} {at}")
        if self.per_class:
            lines.append("  per class: " + ", ".join(f"{k} {v:,}" for k, v in self.per_class.items()))
        upper = f" (upper 95%: {format_size(self.predicted_hi)})" if self.predicted_hi is not None else ""
        lines.append(f"predicted bytes: {format_size(self.predicted)}{upper}, {self.basis}")
        if self.budget is not None:
            lines.append(f"budget {format_size(self.budget)}: {self.predicted / self.budget:.0%} predicted to be used")
        todo = len(self.chosen) - self.done
        when = f", about {format_duration(self.seconds)} on {self.where}" if self.seconds is not None and todo else ""
        lines.append(f"{self.done:,} of them are already in OUT; {todo:,} would be encoded{when}")
        return lines


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
                             [choice.distances[it.id] for it in part], opts.effort, limits, opts.max_side,
                             opts.original)

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
                  seconds, pool.description, per_class, opts.original)


# ---------------------------------------------------------------------------------------------
# The command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", help="a folder of images (recursive), a .parquet pack, or a text file of paths; "
                                       "each may be a URL fsspec opens (s3://, gs://, https://)")
    parser.add_argument("out", help="output folder: new or empty (its parent must exist), or one this command "
                                    "wrote before (a re-run resumes); or a URL fsspec writes (s3://bucket/out)")
    how = parser.add_mutually_exclusive_group(required=True)
    how.add_argument("--distance", type=float, metavar="D", help="one Butteraugli distance for every image")
    how.add_argument("--budget", metavar="S", help="plan first (see storage-scaling plan) and fit this budget: 10GB")
    how.add_argument("--randomized", type=float, nargs=2, metavar=("DMIN", "DMAX"),
                     help="each image its own distance in [DMIN, DMAX] (the paper's randomized scheme)")
    how.add_argument("--original", action="store_true",
                     help="keep every pixel: JPEGs transcoded losslessly to JPEG XL (their exact bytes can be "
                          "restored), kept as stored where the transcode is not smaller; other images as stored")
    parser.add_argument("--dry-run", action="store_true",
                        help="say what would be kept, at what distance, and the predicted bytes (from a sample of "
                             "--sample images encoded here, or the plan's); write nothing")
    parser.add_argument("--best-effort", action="store_true",
                        help="with --budget: if the real bytes exceed the budget, finish anyway and exit 0 "
                             "(default: stop, exit 1, OUT marked NOT COMPLETE)")
    parser.add_argument("--format", dest="fmt", choices=FORMATS, default="jxl",
                        help="jxl: files mirroring the input's layout (default); parquet: shards in the book's "
                             "schema; webdataset: tar shards (KEY.jxl, KEY.cls, KEY.json)")
    parser.add_argument("--shard-size", default=None, metavar="SIZE",
                        help=f"largest shard of --format parquet or webdataset (default "
                             f"{format_size(DEFAULT_SHARD_SIZE)})")
    parser.add_argument("--keep", default=KEEP_AUTO, metavar="HOW",
                        help="which images --budget keeps when it keeps fewer than there are: stratified (each class "
                             "its share; the default with classes), random (the default without), or FILE (ids or "
                             "paths, one a line, in order of priority; with the other modes: write only these)")
    parser.add_argument("--staging", default=None, metavar="DIR",
                        help="with a remote OUT: the local folder the run prepares it in (default: under "
                             "~/.cache/storage-scaling/staging; kept, so that a re-run resumes)")
    parser.add_argument("--chunk", type=int, default=None, metavar="N",
                        help="images per task (default: about 256 kB of input per task, at most 32)")
    plan_mod.add_common(parser)
    cluster.add_arguments(parser)


def cmd(args: argparse.Namespace) -> int:
    budget = parse_size(args.budget) if args.budget is not None else None
    shard_size = parse_size(args.shard_size, "--shard-size") if args.shard_size is not None else None
    plan_mod.check_common(args)
    opts = Options(distance=args.distance, budget=budget,
                   randomized=tuple(args.randomized) if args.randomized else None, original=args.original,
                   fmt=args.fmt, effort=args.effort, seed=args.seed, best_effort=args.best_effort,
                   max_side=args.max_side, keep=args.keep, shard_size=shard_size)
    result = run(args.images, args.out, opts, plan_args=args, processes=args.processes, workers=args.workers,
                 scheduler=args.scheduler, chunk=args.chunk, dry_run=args.dry_run, staging=args.staging)
    for line in result.lines():
        print(line)
    if not args.dry_run:
        print(f"manifest: {result.out / MANIFEST}; report: {result.out / REPORT}")
    return 0

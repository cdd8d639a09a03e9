"""The sharded outputs of ``compress``: Parquet shards and tar shards in the WebDataset layout.

While a run encodes, finished images go to small staging *parts* (``OUT/.parts/part-*.parquet``,
each written atomically, then its manifest rows), so an interrupt loses at most the part being
filled (:class:`Parts`). When every chosen image is done, :func:`seal` writes the shards, in
the order of the image ids (so a local run and a Dask run write the same bytes), each at most
``--shard-size`` bytes (an image larger than that gets a shard of its own):

* ``--format parquet``: ``images-00000-of-00003.parquet``... in the book's schema: ``image`` (a
  struct of ``bytes`` and ``path``, the id), ``label`` (the class index, null without classes)
  and ``distance`` (0 for an image kept at its original quality). Row groups of
  :data:`ROW_GROUP` images, no compression (the images are compressed already), so a reader
  streams a shard a few megabytes at a time.
* ``--format webdataset``: ``images-00000-of-00003.tar``... Each sample is ``KEY.jxl`` (or, for
  an image kept as stored, its own extension: ``KEY.jpg``), ``KEY.cls`` (the class index as
  text, when the images have classes) and ``KEY.json`` (id, label, class name, distance); the
  key is the id without its extension (dots in the file name become ``_``, as WebDataset
  splits keys at the first dot). Members are in key order; headers carry no time or owner, so
  the bytes depend on the images only.

``classes.txt`` (one class name a line, in label order) is written beside the shards.

Sealing is journalled: the new shards are written in ``OUT/.seal/`` with the id -> shard
assignment last; only then is the manifest rewritten, the shards moved into place and the old
sources (parts, shards of an earlier seal) removed. An interrupt before the assignment is written
leaves the old state (``.seal`` is discarded); after it, the next run finishes the move
(:func:`recover`). No image is lost or written twice.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import tarfile
from collections import OrderedDict
from pathlib import Path, PurePosixPath

from .. import atomic

PARTS = ".parts"
SEAL = ".seal"
ASSIGNMENT = "assignment.json"
PART_ROWS = 512  # images per staging part (an interrupt loses at most one part being filled)
ROW_GROUP = 128  # images per Parquet row group
FORMATS = {"parquet": "parquet", "webdataset": "tar"}  # --format -> shard suffix
SHARD = re.compile(r"^images-\d{5}-of-\d{5}\.(parquet|tar)$")
OLD_PACK = "images.parquet"  # the single pack of earlier versions, resealed into shards
TAR_FORMAT = tarfile.GNU_FORMAT
TAR_RECORD = tarfile.RECORDSIZE
# a Parquet shard's bytes beyond its images, bounded from above (measured with pyarrow 26: a file of one
# row of 1 kB takes 5.4 kB more; 1,000 rows in 8 row groups take 70 B more per row)
PARQUET_FILE_OVERHEAD = 6_144  # footer, Arrow schema, magic
PARQUET_ROW_OVERHEAD = 48  # offsets, label, distance per row (plus the id)
PARQUET_GROUP_OVERHEAD = 3_072  # column chunk metadata and page headers per row group


def shard_name(fmt: str, k: int, total: int) -> str:
    return f"images-{k:05d}-of-{total:05d}.{FORMATS[fmt]}"


def pattern(fmt: str, total: int) -> str:
    """The shards as a brace pattern (WebDataset, ``braceexpand``): ``images-{00000..00002}-of-00003.tar``."""
    if total == 1:
        return shard_name(fmt, 0, 1)
    return f"images-{{00000..{total - 1:05d}}}-of-{total:05d}.{FORMATS[fmt]}"


def _pack_schema():
    import pyarrow as pa

    return pa.schema([("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                      ("label", pa.int64()), ("distance", pa.float64())])


def write_parquet(f, records: list[dict], *, staging: bool = False) -> None:
    """Records (``id``, ``bytes``, ``label``, ``distance``) as a Parquet file in the book's schema."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"image": [{"bytes": r["bytes"], "path": r["id"]} for r in records],
                      "label": [r["label"] for r in records],
                      "distance": [float(r["distance"]) for r in records]}, schema=_pack_schema())
    if staging:
        pq.write_table(table, f)
    else:
        pq.write_table(table, f, compression="none", row_group_size=ROW_GROUP)


def read_parquet(path) -> dict[str, dict]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    image = table.column("image").combine_chunks()
    ids, data = image.field("path").to_pylist(), image.field("bytes").to_pylist()
    labels, distances = table.column("label").to_pylist(), table.column("distance").to_pylist()
    return {i: {"id": i, "bytes": b, "label": lab, "distance": d}
            for i, b, lab, d in zip(ids, data, labels, distances)}


# ---------------------------------------------------------------------------------------------
# WebDataset tar shards


def sample_keys(ids) -> dict[str, str]:
    """A WebDataset key per id: the id without its extension, dots of the file name as ``_``,
    unique (a repeat gets ``_2``, ``_3``...)."""
    out, used = {}, set()
    for image_id in sorted(ids):
        path = PurePosixPath(image_id.replace("\\", "/"))
        parts = [p for p in path.parts if p not in ("/", "..", ".", "")] or ["image"]
        stem = parts[-1].rsplit(".", 1)[0] if "." in parts[-1][1:] else parts[-1]
        key = "/".join(parts[:-1] + [stem.replace(".", "_") or "image"])
        candidate, k = key, 1
        while candidate in used:
            k += 1
            candidate = f"{key}_{k}"
        used.add(candidate)
        out[image_id] = candidate
    return out


def extension(record: dict) -> str:
    """The member extension of a record's image: ``jxl`` for JPEG XL, else the id's own suffix
    (an image kept as stored)."""
    data = bytes(record["bytes"][:12])
    if data[:2] == b"\xff\x0a" or data == b"\x00\x00\x00\x0cJXL \r\n\x87\n":
        return "jxl"
    suffix = PurePosixPath(record["id"].split("#", 1)[0]).suffix.lower().lstrip(".")
    if data[:3] == b"\xff\xd8\xff":
        return suffix if suffix in ("jpg", "jpeg") else "jpg"
    return suffix or "bin"


def _meta(image_id: str, label, distance, classes: list[str]) -> bytes:
    meta = {"id": image_id, "label": label, "distance": distance}
    if label is not None and 0 <= int(label) < len(classes):
        meta["class"] = classes[int(label)]
    return json.dumps(meta, sort_keys=True).encode()


def _members(record: dict, key: str, classes: list[str]) -> list[tuple[str, bytes]]:
    members = [(f"{key}.{extension(record)}", bytes(record["bytes"]))]
    if record["label"] is not None:
        members.append((f"{key}.cls", str(int(record["label"])).encode()))
    members.append((f"{key}.json", _meta(record["id"], record["label"], record["distance"], classes)))
    return members


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _member_bytes(name: str, size: int) -> int:
    header = len(_tarinfo(name, size).tobuf(TAR_FORMAT, "utf-8", "surrogateescape"))
    return header + math.ceil(size / tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE


def tar_sample_bytes(image_id: str, nbytes: int, label, distance: float, key: str, classes: list[str]) -> int:
    """At least the bytes a sample adds to a tar shard: each member's header(s) and its padded data
    (the image's extension is taken as long as the longest it can be)."""
    suffix = PurePosixPath(image_id.split("#", 1)[0]).suffix.lstrip(".")
    ext = "x" * max(4, len(suffix))
    total = _member_bytes(f"{key}.{ext}", nbytes)
    if label is not None:
        total += _member_bytes(f"{key}.cls", len(str(int(label))))
    return total + _member_bytes(f"{key}.json", len(_meta(image_id, label, distance, classes)))


def tar_total(sample_bytes: int) -> int:
    """A tar file's size from its samples' bytes: two zero blocks, padded to a whole record."""
    return math.ceil((sample_bytes + 2 * tarfile.BLOCKSIZE) / TAR_RECORD) * TAR_RECORD


def write_tar(f, records: list[dict], keys: dict, classes: list[str]) -> None:
    with tarfile.open(fileobj=f, mode="w", format=TAR_FORMAT) as tar:
        for r in records:
            for name, data in _members(r, keys[r["id"]], classes):
                tar.addfile(_tarinfo(name, len(data)), io.BytesIO(data))


def read_tar(path) -> dict[str, dict]:
    """The records of a tar shard written by :func:`write_tar` (by id)."""
    samples: dict[str, dict] = {}
    with tarfile.open(path, "r") as tar:
        for member in tar:
            if not member.isfile():
                continue
            key, ext = member.name.rsplit(".", 1) if "." in member.name.rsplit("/", 1)[-1] else (member.name, "")
            data = tar.extractfile(member).read()
            sample = samples.setdefault(key, {})
            if ext == "json":
                sample["meta"] = json.loads(data)
            elif ext != "cls":
                sample["bytes"] = data
    out = {}
    for sample in samples.values():
        meta = sample["meta"]
        out[meta["id"]] = {"id": meta["id"], "bytes": sample["bytes"], "label": meta.get("label"),
                           "distance": meta.get("distance")}
    return out


def read_source(path) -> dict[str, dict]:
    return read_tar(path) if str(path).endswith(".tar") else read_parquet(path)


# ---------------------------------------------------------------------------------------------
# Staging parts


class Parts:
    """Sharded output while the run encodes: rows go to part files (each written, then its
    manifest rows); :func:`seal` turns them into shards when every image is done."""

    def __init__(self, out: Path, labels: dict, manifest, part_rows: int = PART_ROWS):
        self.out, self.labels, self.manifest, self.part_rows = out, labels, manifest, part_rows
        self.folder = out / PARTS
        self.folder.mkdir(exist_ok=True)
        referenced = {r["output"] for r in manifest.rows.values() if r["output"].startswith(PARTS)}
        for f in self.folder.glob("part-*.parquet"):  # written, but their rows never reached the manifest
            if f"{PARTS}/{f.name}" not in referenced:
                f.unlink()
        self.next = 1 + max([int(Path(r).stem.split("-")[1]) for r in referenced] or [0])
        self.buffer: list[dict] = []

    def add(self, rows: list[dict], ok: str) -> None:
        self.buffer += rows
        if sum(r["status"] == ok for r in self.buffer) >= self.part_rows:
            self.flush(ok)

    def flush(self, ok: str) -> None:
        if not self.buffer:
            return
        done = [r for r in self.buffer if r["status"] == ok]
        if done:
            name = f"{PARTS}/part-{self.next:06d}.parquet"
            self.next += 1
            records = [{"id": r["id"], "bytes": r["bitstream"], "label": self.labels.get(r["id"]),
                        "distance": float(r["distance"])} for r in done]
            atomic.write_with(self.out / name, lambda f: write_parquet(f, records, staging=True))
            for r in done:
                r["output"] = name
        self.manifest.append(self.buffer)
        self.buffer = []


# ---------------------------------------------------------------------------------------------
# Sealing


def _shard_bytes(fmt: str, content: int, rows: int) -> int:
    if fmt == "webdataset":
        return tar_total(content)
    return content + PARQUET_FILE_OVERHEAD + PARQUET_GROUP_OVERHEAD * math.ceil(rows / ROW_GROUP)


class _Sources:
    """The records of parts and old shards, read one file at a time (the two last kept)."""

    def __init__(self, out: Path, keep: int = 2):
        self.out, self.keep = out, keep
        self.cache: OrderedDict = OrderedDict()

    def get(self, source: str, image_id: str) -> dict:
        if source not in self.cache:
            self.cache[source] = read_source(self.out / source)
            while len(self.cache) > self.keep:
                self.cache.popitem(last=False)
        self.cache.move_to_end(source)
        return self.cache[source][image_id]


def plan_shards(fmt: str, rows: list[dict], sizes: dict, shard_size: float) -> list[list[str]]:
    """Ids grouped into shards in id order, each within ``shard_size`` (one image at least)."""
    groups, current, content = [], [], 0
    for r in sorted(rows, key=lambda r: r["id"]):
        add = sizes[r["id"]]
        if current and _shard_bytes(fmt, content + add, len(current) + 1) > shard_size:
            groups.append(current)
            current, content = [], 0
        current.append(r["id"])
        content += add
    if current:
        groups.append(current)
    return groups


def seal(out: Path, manifest, chosen, fmt: str, shard_size: float, labels: dict, classes: list[str], ok: str,
         progress: bool = False) -> list[str]:
    """Write the shards of every chosen image that is done (see the module docstring); returns
    their names. Nothing is rewritten when the shards already hold exactly these images."""
    from tqdm import tqdm

    rows = [manifest.rows[i] for i in chosen if i in manifest.rows and manifest.rows[i]["status"] == ok]
    keys = sample_keys([r["id"] for r in rows])
    sizes = {}
    for r in rows:  # each image as it will be stored, from the manifest (nothing read)
        if fmt == "webdataset":
            sizes[r["id"]] = tar_sample_bytes(r["id"], int(r["bytes"]), labels.get(r["id"]), float(r["distance"]),
                                              keys[r["id"]], classes)
        else:
            sizes[r["id"]] = int(r["bytes"]) + len(r["id"].encode()) + PARQUET_ROW_OVERHEAD
    groups = plan_shards(fmt, rows, sizes, shard_size)
    names = [shard_name(fmt, k, len(groups)) for k in range(len(groups))]
    assignment = {i: name for name, ids in zip(names, groups) for i in ids}
    if all(r["output"] == assignment[r["id"]] for r in rows) and all((out / n).is_file() for n in names) \
            and not (out / PARTS).is_dir():
        return names
    staging = out / SEAL
    _discard(staging)
    staging.mkdir()
    sources = _Sources(out)
    by_id = {r["id"]: r for r in rows}
    bar = tqdm(total=len(rows), desc="shards", unit="img", disable=not progress)
    try:
        for name, ids in zip(names, groups):
            records = [sources.get(by_id[i]["output"], i) for i in ids]
            if fmt == "webdataset":
                atomic.write_with(staging / name, lambda f, rec=records: write_tar(f, rec, keys, classes))
            else:
                atomic.write_with(staging / name, lambda f, rec=records: write_parquet(f, rec))
            bar.update(len(ids))
    finally:
        bar.close()
    if classes:
        atomic.write_text(staging / "classes.txt", "\n".join(classes) + "\n")
    atomic.write_text(staging / ASSIGNMENT, json.dumps({"names": names, "assignment": assignment}) + "\n")
    _apply(out, manifest)
    return names


def recover(out: Path, manifest) -> None:
    """Finish a seal cut by an interrupt after its assignment was written; else discard it."""
    staging = out / SEAL
    if not staging.is_dir():
        return
    if (staging / ASSIGNMENT).is_file():
        _apply(out, manifest)
    else:
        _discard(staging)


def _apply(out: Path, manifest) -> None:
    staging = out / SEAL
    plan = json.loads((staging / ASSIGNMENT).read_text())
    names, assignment = plan["names"], plan["assignment"]
    rows = [{**r, "output": assignment[r["id"]]} if r["id"] in assignment else r for r in manifest.rows.values()]
    manifest.rewrite(rows)
    for name in names + ["classes.txt"]:
        if (staging / name).is_file():
            os.replace(staging / name, out / name)
    keep = set(names)
    for f in out.iterdir():
        if f.is_file() and (SHARD.match(f.name) or f.name == OLD_PACK) and f.name not in keep:
            f.unlink()
    _discard(out / PARTS)
    _discard(staging)


def _discard(folder: Path) -> None:
    if folder.is_dir():
        for f in folder.iterdir():
            with contextlib.suppress(FileNotFoundError):
                f.unlink()
        with contextlib.suppress(OSError):
            folder.rmdir()

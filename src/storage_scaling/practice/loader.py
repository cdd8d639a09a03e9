"""Read what ``storage-scaling compress`` wrote, in a training pipeline: PyTorch datasets that
decode JPEG XL (Pillow cannot open ``.jxl``; imagecodecs can).

Two datasets, for every output format (``--format jxl``: a folder of files; ``parquet`` and
``webdataset``: shards), from a local path or a URL fsspec opens::

    import torch
    from torch.utils.data import DataLoader
    from torchvision.transforms import v2
    from storage_scaling.practice.loader import CompressedImages, ShardStream

    crop = v2.Compose([v2.Resize(128), v2.CenterCrop(128), v2.ToDtype(torch.float32, scale=True)])
    train = CompressedImages("out/", transform=crop)    # map-style: any order, shuffle=True works
    loader = DataLoader(train, batch_size=64, shuffle=True, num_workers=4)
    for images, labels in loader:                      # images: (64, 3, 128, 128) float, labels: (64,) int
        ...

    stream = ShardStream("s3://bucket/out/", transform=crop, shuffle=True)  # streamed, shard by shard
    loader = DataLoader(stream, batch_size=64, num_workers=4)              # the shards split across workers

Each sample is ``(image, label)``: the image a ``(3, H, W)`` uint8 tensor (what torchvision's
``v2`` transforms take), or ``transform(image)``; the label the class index (``classes.txt``
beside the output names the classes), or -1 for images without classes. Images of different
sizes need a transform that makes them one size before a ``DataLoader`` batches them.
:class:`CompressedImages` keeps the compressed bytes of the shards in memory (in each
``DataLoader`` worker; they are small: that is the point) and decodes an image when asked; :class:`ShardStream` reads one shard at a
time, so it serves datasets larger than memory. :func:`decode` is the one decoder: JPEG XL with
imagecodecs, anything else (an image ``--original`` kept as stored: JPEG, PNG...) with Pillow, as
``compress`` read it.

With Hugging Face ``datasets``, Parquet shards load as they are, and :func:`decode` turns the
stored bytes into pixels::

    from datasets import load_dataset
    from storage_scaling.practice.loader import decode

    ds = load_dataset("parquet", data_files="out/images-*.parquet", split="train")
    ds = ds.with_transform(lambda batch: {"pixels": [decode(x["bytes"]) for x in batch["image"]],
                                          "label": batch["label"]})
    ds[0]["pixels"].shape   # (H, W, 3) uint8

and tar shards with the ``webdataset`` package: ``wds.WebDataset(urls).map(lambda s: (decode(s["jxl"]),
int(s["cls"])))``.
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
from pathlib import PurePosixPath

import numpy as np

from . import remote

try:  # the datasets are PyTorch's; everything else here works without it
    import torch
    from torch.utils.data import Dataset, IterableDataset, get_worker_info
except ImportError:  # pragma: no cover - exercised on hosts without torch
    torch = None
    Dataset = IterableDataset = object

    def get_worker_info():
        return None

SHARD = re.compile(r"images-\d{5}-of-\d{5}\.(parquet|tar)$")
IMAGE_SUFFIXES = (".jxl", ".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
NO_LABEL = -1


def decode(data) -> np.ndarray:
    """(H, W, 3) uint8 pixels of one stored image: JPEG XL (imagecodecs), or anything Pillow reads."""
    data = bytes(data)
    if data[:2] == b"\xff\x0a" or data[4:8] == b"JXL ":
        import imagecodecs

        pixels = imagecodecs.jpegxl_decode(data, numthreads=1)
        if pixels.ndim == 2:
            pixels = np.repeat(pixels[..., None], 3, axis=2)
        return np.ascontiguousarray(pixels[..., :3], dtype=np.uint8)
    from .images import to_rgb8

    return to_rgb8(data)[0]


# ---------------------------------------------------------------------------------------------
# Where the samples are


def _fs(source: str):
    if remote.is_remote(source):
        return remote.filesystem(source, "the dataset")
    import fsspec

    return fsspec.filesystem("file"), str(remote.local_path(source).resolve())


def _read(fs, path: str) -> bytes:
    with fs.open(path, "rb") as f:
        return f.read()


def _classes(fs, folder: str) -> list[str]:
    path = folder.rstrip("/") + "/classes.txt"
    if not fs.exists(path):
        return []
    return [c for c in _read(fs, path).decode("utf-8").splitlines() if c]


class _Source:
    """The shards or files of one output (see :func:`locate`)."""

    def __init__(self, fs, kind: str, paths: list[str], classes: list[str], files: list | None = None):
        self.fs, self.kind, self.paths, self.classes = fs, kind, paths, classes
        self.files = files or []  # (path, label) of a folder of files


def locate(source) -> _Source:
    """What ``source`` holds: a folder ``compress`` wrote (shards, or files), one shard file, or
    a list of shard files; one ValueError when it is none of these."""
    if isinstance(source, (list, tuple)):
        paths = [str(p) for p in source]
        if not paths:
            raise ValueError("no shard files given")
        fs, _ = _fs(paths[0])
        resolved = [_fs(p)[1] for p in paths]
        kinds = {"tar" if p.endswith(".tar") else "parquet" for p in resolved}
        if len(kinds) != 1:
            raise ValueError("give shards of one format (all .parquet or all .tar)")
        folder = resolved[0].rsplit("/", 1)[0]
        return _Source(fs, kinds.pop(), resolved, _classes(fs, folder))
    text = str(source)
    fs, path = _fs(text)
    if not fs.exists(path):
        raise ValueError(f"{text} does not exist; give the OUT folder of storage-scaling compress, or its shards")
    if not fs.isdir(path):
        if not path.endswith((".parquet", ".tar")):
            raise ValueError(f"{text} is neither a folder nor a .parquet or .tar shard")
        return _Source(fs, "tar" if path.endswith(".tar") else "parquet", [path],
                       _classes(fs, path.rsplit("/", 1)[0]))
    names = sorted(p for p in fs.ls(path, detail=False))
    shards = [p for p in names if SHARD.search(p)]
    classes = _classes(fs, path)
    if shards:
        kinds = {"tar" if p.endswith(".tar") else "parquet" for p in shards}
        if len(kinds) != 1:
            raise ValueError(f"{text} holds shards of two formats; give a list of one format's shards")
        return _Source(fs, kinds.pop(), shards, classes)
    if any(p.endswith(".parquet") for p in names):
        return _Source(fs, "parquet", [p for p in names if p.endswith(".parquet")], classes)
    files = _files(fs, path, classes)
    if not files:
        raise ValueError(f"{text} holds no images written by storage-scaling compress (no shards, no .jxl files)")
    return _Source(fs, "files", [], classes, files)


def _files(fs, folder: str, classes: list[str]) -> list[tuple[str, int]]:
    """(path, label) of each image of a ``--format jxl`` output: the manifest's written rows when
    there is a manifest, else every image file; the label from the first folder of its path."""
    folder = folder.rstrip("/")
    manifest = folder + "/manifest.csv"
    if fs.exists(manifest):
        rows = list(csv.DictReader(io.StringIO(_read(fs, manifest).decode("utf-8"))))
        latest = {r["id"]: r for r in rows}
        rel = sorted(r["output"] for r in latest.values() if r["status"] == "ok" and r["output"])
    else:
        rel = sorted(p[len(folder) + 1:] for p in fs.find(folder) if p.lower().endswith(IMAGE_SUFFIXES))
    index = {c: k for k, c in enumerate(classes)}
    out = []
    for r in rel:
        top = PurePosixPath(r).parts[0] if "/" in r else None
        out.append((f"{folder}/{r}", index.get(top, NO_LABEL) if classes else NO_LABEL))
    return out


def _parquet_records(fs, path: str, columns=("image", "label")):
    """(bytes, label) of each row of a Parquet shard, a row group at a time."""
    import pyarrow.parquet as pq

    with fs.open(path, "rb") as f:
        pf = pq.ParquetFile(f)
        names = pf.schema_arrow.names
        image = "image" if "image" in names else "img"
        for k in range(pf.num_row_groups):
            group = pf.read_row_group(k, columns=[image] + (["label"] if "label" in names else []))
            data = group.column(image).combine_chunks().field("bytes").to_pylist()
            labels = group.column("label").to_pylist() if "label" in names else [None] * len(data)
            for b, lab in zip(data, labels):
                yield b, NO_LABEL if lab is None else int(lab)


def _tar_records(fs, path: str):
    """(bytes, label) of each sample of a tar shard in the WebDataset layout, in order."""
    import tarfile

    with fs.open(path, "rb") as f, tarfile.open(fileobj=f, mode="r|") as tar:
        key, sample = None, {}
        for member in tar:
            if not member.isfile():
                continue
            base = member.name.rsplit("/", 1)
            dot = base[-1].find(".")
            k = member.name[:len(member.name) - len(base[-1]) + dot] if dot > 0 else member.name
            ext = base[-1][dot + 1:] if dot > 0 else ""
            if key is not None and k != key:
                yield _sample(sample)
                sample = {}
            key = k
            sample[ext] = tar.extractfile(member).read()
        if sample:
            yield _sample(sample)


def _sample(sample: dict):
    label = NO_LABEL
    if "cls" in sample:
        label = int(sample["cls"].decode().strip())
    elif "json" in sample:
        meta = json.loads(sample["json"])
        label = NO_LABEL if meta.get("label") is None else int(meta["label"])
    image = next(v for k, v in sample.items() if k not in ("cls", "json"))
    return image, label


def records(source: _Source, path: str):
    return _tar_records(source.fs, path) if source.kind == "tar" else _parquet_records(source.fs, path)


# ---------------------------------------------------------------------------------------------
# The datasets


def _needs_torch():
    if torch is None:
        raise ImportError("the datasets of storage_scaling.practice.loader need PyTorch (pip install torch); "
                          "decode() works without it")


def _tensor(pixels: np.ndarray):
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))


class CompressedImages(Dataset):
    """Map-style dataset of a ``compress`` output (see the module docstring): a folder of files is
    read file by file; shards are read once, on first use, into memory (the compressed bytes)."""

    def __init__(self, source, transform=None):
        _needs_torch()
        self.source = locate(source)
        self.transform = transform
        self.classes = self.source.classes
        self._items = None
        if self.source.kind == "files":
            self._items = list(self.source.files)
        else:
            self._count = sum(_rows(self.source, p) for p in self.source.paths)

    def _load(self):
        if self._items is None:
            self._items = [rec for p in self.source.paths for rec in records(self.source, p)]
        return self._items

    def __len__(self) -> int:
        return len(self._items) if self._items is not None else self._count

    def __getitem__(self, index: int):
        item, label = self._load()[index]
        data = _read(self.source.fs, item) if self.source.kind == "files" else item
        image = _tensor(decode(data))
        return (self.transform(image) if self.transform else image), label


def _rows(source: _Source, path: str) -> int:
    if source.kind == "parquet":
        import pyarrow.parquet as pq

        with source.fs.open(path, "rb") as f:
            return pq.ParquetFile(f).metadata.num_rows
    return sum(1 for _ in _tar_records(source.fs, path))


class ShardStream(IterableDataset):
    """Iterable dataset that streams a ``compress`` output shard by shard (see the module
    docstring). In a ``DataLoader`` with workers, each worker reads its own shards (or, with fewer
    shards than workers, every worker's share of each), so every image comes once per epoch.
    ``shuffle``: the shard order and, through a buffer of ``buffer`` images, the images, anew each
    epoch (:meth:`set_epoch`), from ``seed``."""

    def __init__(self, source, transform=None, *, shuffle: bool = False, buffer: int = 256, seed: int = 0):
        _needs_torch()
        self.source = locate(source)
        self.transform, self.shuffle, self.buffer, self.seed = transform, shuffle, int(buffer), int(seed)
        self.classes = self.source.classes
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _units(self):
        """(reader, [paths]) of this worker."""
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        if self.source.kind == "files":
            files = list(self.source.files)
            if self.shuffle:
                rng.shuffle(files)
            return [((_read(self.source.fs, p), lab) for p, lab in files[worker::workers])]
        paths = list(self.source.paths)
        if self.shuffle:
            rng.shuffle(paths)
        if len(paths) >= workers:
            return [records(self.source, p) for p in paths[worker::workers]]
        return [_every(records(self.source, p), worker, workers) for p in paths]

    def __iter__(self):
        rng = random.Random((self.seed * 1_000_003 + self.epoch) * 31 + (get_worker_info().id
                                                                         if get_worker_info() else 0))
        pool = []
        for unit in self._units():
            for data, label in unit:
                if not self.shuffle or self.buffer <= 1:
                    yield self._sample(data, label)
                    continue
                pool.append((data, label))
                if len(pool) >= self.buffer:
                    yield self._sample(*pool.pop(rng.randrange(len(pool))))
        rng.shuffle(pool)
        for data, label in pool:
            yield self._sample(data, label)

    def _sample(self, data, label):
        image = _tensor(decode(data))
        return (self.transform(image) if self.transform else image), label


def _every(stream, worker: int, workers: int):
    for k, item in enumerate(stream):
        if k % workers == worker:
            yield item

"""Image datasets as the book uses them: exact stored bytes, labels, ids, splits and nested subsets.

The offline default reads the Parquet packs in ``../shared/data`` (checksums verified against its
``SHA256SUMS``). A reader with internet access gets the same columns from the public Hugging Face
hub datasets. Pixels are decoded only on request; everything downstream (codecs, stores,
training) starts from the exact file bytes, because the bytes *are* the storage being studied.
"""

from __future__ import annotations

import hashlib
import io
import os
import socket
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pyarrow.parquet as pq

from . import paths


class DataUnavailableError(ValueError, RuntimeError):
    """The data cannot be found or trusted; the message says how to get it.

    A ``ValueError`` (a user error: the command lines print its one-line message and exit 2), and
    still a ``RuntimeError`` for callers written against the first version.
    """


@dataclass(frozen=True)
class DatasetSpec:
    folder: str
    image_column: str
    files: dict[str, str]  # split name -> parquet file in the folder
    hub_repo: str | None  # public hub dataset with the same columns, if any
    hub_splits: dict[str, str] = field(default_factory=dict)
    hub_resize: int | None = None  # the offline pack is a downscaled copy of the hub images
    description: str = ""
    mask_column: str | None = None  # segmentation: a per-pixel label PNG beside each image (never compressed)
    void_label: int | None = None  # the mask value the metric ignores
    folder_env: str | None = None  # where a downloaded original folder layout is read when the pack is missing
    # PNG originals: the original format counts their lossless JPEG XL encode (the paper's Cityscapes rule)
    png_originals: bool = False

    @property
    def task(self) -> str:
        return "segmentation" if self.mask_column else "classification"


DATASETS: dict[str, DatasetSpec] = {
    "food101-64px": DatasetSpec(
        folder="food101-64px",
        image_column="image",
        files={"train": "train.parquet", "test": "test.parquet"},
        hub_repo="ethz/food101",
        hub_splits={"train": "train", "test": "validation"},
        hub_resize=64,
        description="Food-101, 101 classes, 64x64 JPEG (quality about 75)",
    ),
    "food101-originals": DatasetSpec(
        folder="food101-originals",
        image_column="image",
        files={"sample": "sample.parquet"},
        hub_repo=None,
        description="300 full-size Food-101 JPEGs (macaroni_and_cheese, paella, waffles)",
    ),
    "cifar10-jpg": DatasetSpec(
        folder="cifar10-jpg",
        image_column="img",
        files={"train": "train.parquet", "test": "test.parquet"},
        hub_repo="uoft-cs/cifar10",
        hub_splits={"train": "train", "test": "test"},
        description="CIFAR-10, 32x32 JPEG (quality about 75)",
    ),
    "camvid-240x180": DatasetSpec(
        folder="camvid-240x180",
        image_column="image",
        files={"train": "train.parquet", "val": "val.parquet", "test": "test.parquet"},
        hub_repo=None,
        description="CamVid street scenes (the SegNet tutorial's split), 11 classes + void, 240x180 PNG",
        mask_column="mask",
        void_label=11,
        folder_env="STORAGE_SCALING_CAMVID",
        png_originals=True,
    ),
}

SEGNET_SIZE = (240, 180)  # the pack halves the SegNet tutorial's 480x360 scenes

HOW_TO_GET_DATA = (
    "Either place the offline Parquet packs in ../shared/data beside the checkout (or point "
    f"${paths.DATA_ENV} at a folder holding them), or allow network access (unset HF_HUB_OFFLINE) "
    "so the public Hugging Face hub datasets (ethz/food101, uoft-cs/cifar10) can be downloaded."
)


@dataclass(frozen=True)
class ImageSet:
    """One split of one dataset: encoded files exactly as stored, with labels and stable ids."""

    dataset: str
    split: str
    encoded: list[bytes]
    labels: np.ndarray
    ids: np.ndarray
    classes: list[str]
    masks: list[bytes] | None = None  # segmentation: each image's label PNG, kept exact (never compressed)

    def __len__(self) -> int:
        return len(self.encoded)

    def subset(self, indices) -> "ImageSet":
        indices = np.asarray(indices, dtype=np.int64)
        return ImageSet(
            self.dataset,
            self.split,
            [self.encoded[i] for i in indices],
            self.labels[indices],
            self.ids[indices],
            self.classes,
            None if self.masks is None else [self.masks[i] for i in indices],
        )

    @property
    def stored_bytes(self) -> np.ndarray:
        """Size of each stored file in bytes (what a team actually pays for)."""
        return np.fromiter((len(b) for b in self.encoded), dtype=np.int64, count=len(self))

    def decode(self, workers: int | None = None) -> np.ndarray | list[np.ndarray]:
        """uint8 RGB pixels: one (N, H, W, 3) array when all images share a size, else a list.

        Every file is checked complete first, then decoded by ``codecs.decode`` (the one decoder of
        the package, imported here lazily so that ``data`` stays below ``codecs``); a file that
        fails is named by id and dataset.
        """
        from .compress import codecs

        for data, image_id in zip(self.encoded, self.ids):
            codecs.check_source(data, image_id, self.dataset)
        return codecs.decode_many(self.encoded, None, workers=workers, backend="thread", ids=list(self.ids),
                                  dataset=self.dataset, progress=False)

    def decode_masks(self) -> np.ndarray:
        """The label masks, (N, H, W) uint8 (a ValueError for a set without masks, or a mask that is
        not one 8-bit channel)."""
        if self.masks is None:
            raise ValueError(f"{self.dataset!r} ({self.split}) has no masks: it is not a segmentation dataset")
        return decode_masks(self.masks, self.ids, self.dataset)


def decode_masks(masks: list[bytes], ids, dataset: str) -> np.ndarray:
    """Label PNGs -> (N, H, W) uint8; a mask that is not one 8-bit channel is named by id."""
    import imagecodecs

    out = [imagecodecs.png_decode(m) for m in masks]
    bad = next((i for i, m in enumerate(out) if m.ndim != 2 or m.dtype != np.uint8), None)
    if bad is not None:
        raise ValueError(f"the mask of {ids[bad]} ({dataset}) is {out[bad].dtype} of shape "
                         f"{out[bad].shape}, not one 8-bit channel of labels")
    return np.stack(out)


# ---------------------------------------------------------------------------------------------
# Loading


def read_checksums(root: Path) -> dict[str, str]:
    sums = root / "SHA256SUMS"
    if not sums.is_file():
        raise DataUnavailableError(f"{sums} is missing, so the data cannot be verified. {HOW_TO_GET_DATA}")
    table = {}
    for line in sums.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            table[name.strip().lstrip("*")] = digest
    return table


@lru_cache(maxsize=None)
def _sha256(path: str, size: int, mtime: float) -> str:  # size/mtime key the cache
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_file(root: Path, relative: str) -> Path:
    """Return the path of a pack file after checking it against SHA256SUMS."""
    path = root / relative
    if not path.is_file():
        raise DataUnavailableError(f"data file {path} is missing. {HOW_TO_GET_DATA}")
    expected = read_checksums(root).get(relative)
    if expected is None:
        raise DataUnavailableError(f"{relative} is not listed in {root / 'SHA256SUMS'}. {HOW_TO_GET_DATA}")
    stat = path.stat()
    actual = _sha256(str(path), stat.st_size, stat.st_mtime)
    if actual != expected:
        raise DataUnavailableError(
            f"checksum mismatch for {path}: expected {expected[:12]}..., got {actual[:12]}...; "
            f"the file is damaged or a different version. Replace it. {HOW_TO_GET_DATA}"
        )
    return path


def verify_dataset(dataset: str, data_root=None) -> list[Path]:
    """Check every offline file of ``dataset`` against SHA256SUMS now (before hours of work, not when
    a split is first read); nothing to check when the data comes from the hub instead."""
    s = spec(dataset)
    root = paths.data_root(data_root)
    if root is None or not (root / s.folder).is_dir():
        return []
    return [verify_file(root, f"{s.folder}/{name}") for name in sorted(set(s.files.values()))]


HUB_CONNECT_TIMEOUT = 3.0  # seconds: an unreachable hub fails at once instead of after retries


def hub_address() -> tuple[str, int]:
    """Host and port of the Hugging Face hub ($HF_ENDPOINT overrides, as for huggingface_hub)."""
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    return url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)


def hub_reachable(timeout: float = HUB_CONNECT_TIMEOUT) -> bool:
    """Whether a TCP connection to the hub opens within ``timeout`` seconds (name lookup included)."""
    host, port = hub_address()
    outcome: list[bool] = []

    def attempt() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append(True)
        except OSError:
            outcome.append(False)

    # a thread bounds the name lookup too, which the socket timeout does not cover
    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(outcome and outcome[0])


def spec(dataset: str) -> DatasetSpec:
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[dataset]


def load(dataset: str, split: str, data_root=None, allow_download: bool | None = None) -> ImageSet:
    """Load one split: offline packs first, else the public hub copy, else a clear error."""
    s = spec(dataset)
    if split not in s.files:
        raise ValueError(f"dataset {dataset!r} has splits {sorted(s.files)}, not {split!r}")
    root = paths.data_root(data_root)
    if root is not None and (root / s.folder).is_dir():
        return _load_parquet(dataset, split, root)
    if s.folder_env and os.environ.get(s.folder_env):
        return load_segnet_folder(Path(os.environ[s.folder_env]), split, dataset)
    if allow_download is None:
        allow_download = os.environ.get("HF_HUB_OFFLINE", "0") in ("0", "", "false", "False")
    where = root / s.folder if root is not None else "../shared/data (not found)"
    if allow_download and s.hub_repo is not None:
        host, _ = hub_address()
        if not hub_reachable():
            raise DataUnavailableError(
                f"no offline copy of {dataset!r} at {where}, and the Hugging Face hub ({host}) cannot be "
                f"reached (no connection within {HUB_CONNECT_TIMEOUT:g} s). {HOW_TO_GET_DATA}")
        try:
            return _load_from_hub(dataset, split)
        except OSError as exc:  # requests' and huggingface_hub's network errors are OSErrors
            raise DataUnavailableError(
                f"no offline copy of {dataset!r} at {where}, and downloading {s.hub_repo!r} from the "
                f"Hugging Face hub failed ({type(exc).__name__}: {exc}). {HOW_TO_GET_DATA}") from exc
    if s.folder_env:
        raise DataUnavailableError(
            f"no offline copy of {dataset!r} at {where}. Place the pack there, or download CamVid as the SegNet "
            f"tutorial packages it (folders train, trainannot, val, valannot, test, testannot) and point "
            f"${s.folder_env} at that CamVid folder")
    raise DataUnavailableError(f"no offline copy of {dataset!r} at {where} and no network download allowed. {HOW_TO_GET_DATA}")


def _classes(root: Path, s: DatasetSpec) -> list[str]:
    path = root / s.folder / "classes.txt"
    if not path.is_file():  # the originals pack uses the 101-class order of food101-64px
        path = root / "food101-64px" / "classes.txt"
    return [c for c in path.read_text().splitlines() if c] if path.is_file() else []


def _load_parquet(dataset: str, split: str, root: Path) -> ImageSet:
    s = DATASETS[dataset]
    path = verify_file(root, f"{s.folder}/{s.files[split]}")
    table = pq.read_table(path)
    images = table.column(s.image_column).to_pylist()
    encoded = [im["bytes"] for im in images]
    ids = np.asarray(
        [im.get("path") or f"{split}/{k:06d}" for k, im in enumerate(images)], dtype=object
    )
    if s.mask_column:  # segmentation: no image label (zeros), a mask per image
        masks = [m["bytes"] for m in table.column(s.mask_column).to_pylist()]
        return ImageSet(dataset, split, encoded, np.zeros(len(encoded), np.int64), ids, _classes(root, s), masks)
    labels = np.asarray(table.column("label").to_pylist(), dtype=np.int64)
    return ImageSet(dataset, split, encoded, labels, ids, _classes(root, s))


def load_segnet_folder(folder: Path, split: str, dataset: str = "camvid-240x180",
                       size: tuple[int, int] = SEGNET_SIZE) -> ImageSet:
    """CamVid as the SegNet tutorial packages it (``<split>/*.png`` and ``<split>annot/*.png``),
    made what the offline pack holds: images resized to ``size`` with Lanczos and masks with
    nearest neighbour (every mask value stays an original label), both stored as lossless PNG."""
    import imagecodecs
    from PIL import Image

    s = spec(dataset)
    images_dir, masks_dir = Path(folder) / split, Path(folder) / f"{split}annot"
    for d in (images_dir, masks_dir):
        if not d.is_dir():
            raise DataUnavailableError(f"{d} is missing: ${s.folder_env} must point at the SegNet tutorial's CamVid "
                                       "folder (train, trainannot, val, valannot, test, testannot)")
    names = sorted(p.name for p in images_dir.glob("*.png"))
    missing = [n for n in names if not (masks_dir / n).is_file()]
    if not names or missing:
        raise DataUnavailableError(f"{images_dir} has {len(names)} PNG images"
                                   + (f", and {masks_dir} lacks the masks of {missing[:3]}" if missing else ""))
    encoded, masks = [], []
    for name in names:
        with Image.open(images_dir / name) as im:
            encoded.append(imagecodecs.png_encode(np.asarray(im.convert("RGB").resize(size, Image.LANCZOS))))
        with Image.open(masks_dir / name) as m:
            labels = np.asarray(m.resize(size, Image.NEAREST))
        if labels.ndim != 2 or labels.max() > s.void_label:
            raise ValueError(f"{masks_dir / name} is not a label mask of values 0..{s.void_label} "
                             f"(shape {labels.shape}, largest value {labels.max()})")
        masks.append(imagecodecs.png_encode(labels.astype(np.uint8)))
    return ImageSet(dataset, split, encoded, np.zeros(len(names), np.int64), np.asarray(names, dtype=object),
                    list(CAMVID_CLASSES), masks)


CAMVID_CLASSES = ["sky", "building", "pole", "road", "pavement", "tree", "sign_symbol", "fence", "car",
                  "pedestrian", "bicyclist"]  # the SegNet tutorial's label order (void is 11)


def _load_from_hub(dataset: str, split: str) -> ImageSet:  # pragma: no cover - needs network
    """The public path: the hub's Parquet shards have the same columns as the offline packs."""
    from huggingface_hub import HfApi, hf_hub_download

    s = DATASETS[dataset]
    hub_split = s.hub_splits[split]
    files = [
        f
        for f in HfApi().list_repo_files(s.hub_repo, repo_type="dataset")
        if f.endswith(".parquet") and f"{hub_split}-" in Path(f).name
    ]
    encoded, labels = [], []
    for f in sorted(files):
        table = pq.read_table(hf_hub_download(s.hub_repo, f, repo_type="dataset"))
        encoded += [im["bytes"] for im in table.column(s.image_column).to_pylist()]
        labels += table.column("label").to_pylist()
    if s.hub_resize:
        encoded = [_downscale_jpeg(b, s.hub_resize) for b in encoded]
    ids = np.asarray([f"{split}/{k:06d}" for k in range(len(encoded))], dtype=object)
    return ImageSet(dataset, split, encoded, np.asarray(labels, dtype=np.int64), ids, [])


def _downscale_jpeg(data: bytes, size: int) -> bytes:  # pragma: no cover - needs network
    from PIL import Image

    image = Image.open(io.BytesIO(data)).convert("RGB").resize((size, size), Image.BICUBIC)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=75)
    return out.getvalue()


# ---------------------------------------------------------------------------------------------
# Splits and subsets


def stratified_split(labels, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (keep, held_out) with ``fraction`` of every class held out."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    keep, held = [], []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(fraction * len(members)))
        held.append(members[:k])
        keep.append(members[k:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(held))


def paper_split(labels, seed: int = 42, val_fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """The paper's Food-101 protocol: official train split 80/20 into train pool and validation."""
    return stratified_split(labels, val_fraction, seed)


def nested_order(labels, seed: int) -> np.ndarray:
    """An ordering of the pool whose every prefix keeps the class proportions.

    Each class is shuffled and its k-th member gets the key (k + u) / size(class) with one random
    offset u per class; sorting by key interleaves the classes evenly. The subset of size n is the
    first n indices, so for one seed the subset of size n lies inside the subset of size 2n.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    keys = np.empty(len(labels))
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        keys[members] = (np.arange(len(members)) + rng.random()) / len(members)
    return np.argsort(keys, kind="stable")


def nested_subset(labels, n: int, seed: int) -> np.ndarray:
    """Indices (into ``labels``) of the stratified subset of size n for this seed."""
    if not 1 <= n <= len(labels):
        raise ValueError(f"subset size n={n} must be between 1 and the pool size {len(labels)}")
    return np.sort(nested_order(labels, seed)[:n])


# ---------------------------------------------------------------------------------------------
# Pools and scoring sets (the one place that says which images a study trains and tests on)


@lru_cache(maxsize=6)
def load_cached(dataset: str, split: str) -> ImageSet:
    """``load`` kept in memory: the pools, scoring sets and runs of one process share the packs."""
    return load(dataset, split)


def _restrict(images: ImageSet, classes) -> ImageSet:
    if classes is None:
        return images
    if not 2 <= int(classes) <= len(np.unique(images.labels)):
        raise ValueError(f"classes={classes} must be between 2 and the number of classes of {images.dataset!r}")
    return images.subset(np.flatnonzero(images.labels < int(classes)))


def pool_split(dataset: str) -> str:
    """The split a pool is drawn from: ``train``, or the only split of a sample pack (the originals)."""
    files = spec(dataset).files
    if "train" in files:
        return "train"
    if len(files) == 1:
        return next(iter(files))
    raise ValueError(f"dataset {dataset!r} has no train split (splits: {sorted(files)})")


@lru_cache(maxsize=16)
def pool(dataset: str, kind: str = "paper", classes=None, limit=None) -> ImageSet:
    """The training pool: the paper's 80 % of the train split (``kind="paper"``), or all of it.
    A dataset with an official validation split (CamVid) keeps its whole train split as the paper
    pool: the validation images are that split (:func:`eval_set`), as the paper did on Cityscapes.

    The compression tables count bytes over the same pools the experiments train on (and over all
    300 images of ``food101-originals``, a sample with no train split: ``kind="all"``).
    ``classes`` keeps the first k classes, ``limit`` the first ``limit`` images of the nested order
    (seed 0): both only for smoke runs.
    """
    split = pool_split(dataset)
    if kind == "paper" and has_val_split(dataset):  # its validation images are a split of their own
        kind = "all"
    elif kind == "paper" and split != "train":
        raise ValueError(f"dataset {dataset!r} is a sample without a train split, so it has no paper pool; "
                         "use kind='all'")
    train_split = _restrict(load_cached(dataset, split), classes)
    if kind == "paper":
        keep, _ = paper_split(train_split.labels)
        images = train_split.subset(keep)
    elif kind == "all":
        images = train_split
    else:
        raise ValueError(f"pool must be 'paper' or 'all', got {kind!r}")
    if limit is not None:
        if limit > len(images):
            raise ValueError(f"pool_limit={limit} exceeds the pool of {len(images)} images of {dataset!r}")
        images = images.subset(np.sort(nested_order(images.labels, 0)[: int(limit)]))
    return images


@lru_cache(maxsize=16)
def eval_set(dataset: str, split: str = "test", classes=None, limit=None, pool_kind: str = "paper") -> ImageSet:
    """The scoring set: the official test split, or the validation images (``split="val"``): the
    paper's 20 % held out of the train split, or the official val split where the dataset has one."""
    if split == "test":
        images = _restrict(load_cached(dataset, "test"), classes)
    elif split == "val" and has_val_split(dataset):
        images = load_cached(dataset, "val")
    elif split == "val":
        if pool_kind != "paper":
            raise ValueError("validation scoring needs the paper pool (the validation images are held out of it)")
        train_split = _restrict(load_cached(dataset, "train"), classes)
        _, held = paper_split(train_split.labels)
        images = train_split.subset(held)
    else:
        raise ValueError(f"eval_split must be 'test' or 'val', got {split!r}")
    if limit is not None and limit < len(images):
        images = images.subset(nested_subset(images.labels, int(limit), 0))
    return images


def has_val_split(dataset: str) -> bool:
    """Whether ``dataset`` ships an official validation split (CamVid), used instead of the 80/20 cut."""
    return "val" in spec(dataset).files


@lru_cache(maxsize=4)
def _masks_by_id(dataset: str) -> dict[str, bytes]:
    if spec(dataset).task != "segmentation":
        raise ValueError(f"{dataset!r} is a classification dataset: its images have labels, not masks")
    out: dict[str, bytes] = {}
    for split in spec(dataset).files:
        images = load_cached(dataset, split)
        for image_id, mask in zip(images.ids, images.masks):
            if str(image_id) in out:
                raise ValueError(f"image id {image_id!r} of {dataset!r} occurs in two splits; masks are looked up "
                                 "by id, so ids must be unique across splits")
            out[str(image_id)] = mask
    return out


def masks_of(dataset: str, ids) -> np.ndarray:
    """The label masks (N, H, W) uint8 of the images ``ids`` of a segmentation dataset, from any split.

    Masks are never compressed, so they do not travel with the stores: a model looks them up by the
    ids a store keeps (whatever its format, subset or mix of formats)."""
    table = _masks_by_id(dataset)
    missing = [str(i) for i in ids if str(i) not in table]
    if missing:
        raise ValueError(f"{len(missing)} id(s) of {dataset!r} have no mask (first: {missing[:3]}); "
                         "are they ids of this dataset?")
    return decode_masks([table[str(i)] for i in ids], list(ids), dataset)


def num_classes(dataset: str, classes=None) -> int:
    """Image classes, or for a segmentation dataset the pixel classes its metric averages over."""
    if classes is not None:
        return int(classes)
    if spec(dataset).task == "segmentation":
        return len(load_cached(dataset, "train").classes)
    return int(load_cached(dataset, "train").labels.max()) + 1

"""Tiny labelled images the training tests learn from in a few CPU steps (imported by tests)."""

import numpy as np

FAST = dict(batch_size=32, tta=0, eval_batch_size=256)  # trainer settings for a few-second CPU run


def stripes(n, size=32, seed=0, noise=40):
    """Class 0: horizontal stripes, class 1: vertical stripes, random phase and period, plus noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    grid = np.arange(size)
    period = rng.integers(3, 6, n)[:, None, None]
    phase = rng.integers(0, 6, n)[:, None, None]
    rows = ((grid[None, :, None] + phase) // period) % 2 * np.ones((1, 1, size))
    cols = ((grid[None, None, :] + phase) // period) % 2 * np.ones((1, size, 1))
    pattern = np.where(y[:, None, None] == 0, rows, cols)
    img = 60 + 120 * pattern[..., None] + rng.normal(0, noise, (n, size, size, 3))
    return np.clip(img, 0, 255).astype(np.uint8), y


def write_pack(root, name: str, splits: dict, class_names) -> None:
    """A data pack like the offline ones under ``root/name``: per split (``splits[split] = (uint8
    images, labels)``) a Parquet of JPEG bytes (quality 75) and labels, ``classes.txt``, and the
    files' lines in ``root/SHA256SUMS``."""
    import hashlib

    import imagecodecs
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = root / name
    folder.mkdir(parents=True)
    for split, (pixels, labels) in splits.items():
        rows = [{"bytes": imagecodecs.jpeg8_encode(np.ascontiguousarray(px), level=75), "path": f"{split}/{i:04d}.jpg"}
                for i, px in enumerate(pixels)]
        pq.write_table(pa.table({"image": rows, "label": [int(v) for v in labels]}), folder / f"{split}.parquet")
    (folder / "classes.txt").write_text("".join(f"{c}\n" for c in class_names))
    with open(root / "SHA256SUMS", "a") as sums:
        for split in splits:
            digest = hashlib.sha256((folder / f"{split}.parquet").read_bytes()).hexdigest()
            sums.write(f"{digest}  {name}/{split}.parquet\n")


def use_pack(monkeypatch, root, name: str, description: str, cache, results) -> None:
    """Register the pack ``name`` (train and test splits) as a dataset, with ``root`` as the data
    folder and ``cache`` and ``results`` as the cache and results folders."""
    from storage_scaling import data, paths

    monkeypatch.setitem(data.DATASETS, name, data.DatasetSpec(
        folder=name, image_column="image", files={"train": "train.parquet", "test": "test.parquet"},
        hub_repo=None, description=description))
    monkeypatch.setenv(paths.DATA_ENV, str(root))
    monkeypatch.setenv(paths.CACHE_ENV, str(cache))
    monkeypatch.setenv(paths.RESULTS_ENV, str(results))


def forget_packs() -> None:
    """Clear the data module's caches, so no later test sees a pack that is gone."""
    from storage_scaling import data

    for cached in (data.load_cached, data.pool, data.eval_set, data._masks_by_id):
        cached.cache_clear()


SEGMENTATION_CLASSES = ("left", "right")  # the two regions of :func:`scenes`
SCENE_VOID = 2  # the label of the scenes' top strip, ignored by the metric


def scenes(n, seed, height=48, width=64):
    """Street-scene stand-ins for segmentation: two regions split at a random column (label 0 left,
    dark red; 1 right, light blue; with noise) under a 4-pixel top strip of random colours labelled
    void (:data:`SCENE_VOID`). Returns uint8 images (N, H, W, 3) and masks (N, H, W)."""
    rng = np.random.default_rng(seed)
    images = np.empty((n, height, width, 3), np.uint8)
    masks = np.empty((n, height, width), np.uint8)
    for i in range(n):
        cut = rng.integers(width // 4, 3 * width // 4)
        masks[i] = np.arange(width)[None, :] >= cut
        colour = np.where(masks[i][..., None] == 1, [90, 170, 230], [150, 30, 30])
        images[i] = np.clip(colour + rng.normal(0, 12, (height, width, 3)), 0, 255)
        images[i, :4] = rng.integers(0, 256, (4, width, 3))
        masks[i, :4] = SCENE_VOID
    return images, masks


def write_segmentation_pack(root, name: str, splits: dict) -> None:
    """A segmentation pack like CamVid's under ``root/name``: per split (``splits[split] = (uint8
    images, masks)``) a Parquet of lossless PNG images and PNG masks (columns ``image`` and
    ``mask``), ``classes.txt``, and the files' lines in ``root/SHA256SUMS``."""
    import hashlib

    import imagecodecs
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = root / name
    folder.mkdir(parents=True)
    for split, (pixels, masks) in splits.items():
        image = [{"bytes": imagecodecs.png_encode(np.ascontiguousarray(px)), "path": f"{split}-{i:04d}.png"}
                 for i, px in enumerate(pixels)]
        mask = [{"bytes": imagecodecs.png_encode(np.ascontiguousarray(m)), "path": f"{split}-{i:04d}.png"}
                for i, m in enumerate(masks)]
        pq.write_table(pa.table({"image": image, "mask": mask}), folder / f"{split}.parquet")
    (folder / "classes.txt").write_text("".join(f"{c}\n" for c in SEGMENTATION_CLASSES))
    with open(root / "SHA256SUMS", "a") as sums:
        for split in splits:
            digest = hashlib.sha256((folder / f"{split}.parquet").read_bytes()).hexdigest()
            sums.write(f"{digest}  {name}/{split}.parquet\n")


def use_segmentation_pack(monkeypatch, name: str, description: str) -> None:
    """Register the pack ``name`` (train, val and test splits) as a segmentation dataset with PNG
    originals, as CamVid is (the data folder: :func:`use_pack`'s)."""
    from storage_scaling import data

    monkeypatch.setitem(data.DATASETS, name, data.DatasetSpec(
        folder=name, image_column="image", files={s: f"{s}.parquet" for s in ("train", "val", "test")},
        hub_repo=None, description=description, mask_column="mask", void_label=SCENE_VOID, png_originals=True))

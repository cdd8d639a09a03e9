import hashlib
import socket

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from skimage import data as skdata

from storage_scaling import data, paths

needs_data = pytest.mark.skipif(paths.data_root() is None, reason="needs ../shared/data (offline data packs)")


def _jpeg(image) -> bytes:
    import imagecodecs

    return imagecodecs.jpeg8_encode(np.ascontiguousarray(image), level=75)


@pytest.fixture
def tiny_pack(tmp_path):
    """A fake data root with a valid cifar10-jpg pack of 12 JPEGs and its SHA256SUMS."""
    root = tmp_path / "data"
    folder = root / "cifar10-jpg"
    folder.mkdir(parents=True)
    photo = skdata.astronaut()[::16, ::16]  # 32x32x3
    rows = [{"bytes": _jpeg(np.roll(photo, k, axis=1)), "path": f"img{k}.jpg"} for k in range(12)]
    table = pa.table({"img": rows, "label": [k % 3 for k in range(12)]})
    for split in ("train", "test"):
        pq.write_table(table, folder / f"{split}.parquet")
    (folder / "classes.txt").write_text("a\nb\nc\n")
    sums = "".join(
        f"{hashlib.sha256((folder / f'{s}.parquet').read_bytes()).hexdigest()}  cifar10-jpg/{s}.parquet\n"
        for s in ("train", "test")
    )
    (root / "SHA256SUMS").write_text(sums)
    return root


def test_load_reads_exact_bytes_labels_ids(tiny_pack):
    images = data.load("cifar10-jpg", "train", data_root=tiny_pack)
    assert len(images) == 12
    assert images.ids[3] == "img3.jpg"
    assert list(images.labels[:4]) == [0, 1, 2, 0]
    assert images.classes == ["a", "b", "c"]
    pixels = images.decode()
    assert pixels.shape == (12, 32, 32, 3) and pixels.dtype == np.uint8
    assert images.stored_bytes.sum() == sum(len(b) for b in images.encoded)


def test_checksum_mismatch_is_a_clear_error(tiny_pack):
    target = tiny_pack / "cifar10-jpg" / "train.parquet"
    target.write_bytes(target.read_bytes() + b"tampered")
    with pytest.raises(data.DataUnavailableError, match="checksum mismatch.*train.parquet"):
        data.load("cifar10-jpg", "train", data_root=tiny_pack)


def test_missing_file_names_both_ways_to_get_data(tiny_pack):
    (tiny_pack / "cifar10-jpg" / "test.parquet").unlink()
    with pytest.raises(data.DataUnavailableError, match="missing.*shared/data.*hub"):
        data.load("cifar10-jpg", "test", data_root=tiny_pack)


def test_no_data_and_no_network_names_both_ways(tmp_path):
    with pytest.raises(data.DataUnavailableError, match="STORAGE_SCALING_DATA.*HF_HUB_OFFLINE"):
        data.load("cifar10-jpg", "train", data_root=tmp_path / "nowhere", allow_download=False)


def _hub_unreachable(monkeypatch):
    """No offline copy, HF_HUB_OFFLINE unset, and every connection attempt refused at once."""
    attempts = []

    def refuse(address, timeout=None, *args, **kwargs):
        attempts.append((address, timeout))
        raise ConnectionRefusedError(f"mock: {address} unreachable")

    def no_download(*args, **kwargs):
        pytest.fail("tried to download although the hub is unreachable (the long network wait)")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(data, "_load_from_hub", no_download)
    return attempts


def test_unreachable_hub_fails_fast_naming_both_ways(tmp_path, monkeypatch):
    attempts = _hub_unreachable(monkeypatch)
    with pytest.raises(ValueError) as caught:  # a user error: one line from the command lines
        data.load("cifar10-jpg", "train", data_root=tmp_path / "nowhere")
    message = str(caught.value)
    assert isinstance(caught.value, data.DataUnavailableError)
    assert "cannot be reached" in message and "huggingface.co" in message
    assert "shared/data" in message and "STORAGE_SCALING_DATA" in message  # way 1: offline packs
    assert "uoft-cs/cifar10" in message and "hub" in message  # way 2: the public hub datasets
    assert [a for a, _ in attempts] == [("huggingface.co", 443)]
    assert all(t is not None and t <= 5 for _, t in attempts), attempts  # a short connect timeout


def test_network_error_during_download_names_both_ways(tmp_path, monkeypatch):
    _hub_unreachable(monkeypatch)
    monkeypatch.setattr(data, "hub_reachable", lambda timeout=None: True)

    def broken(*args, **kwargs):
        import requests

        raise requests.exceptions.ConnectionError("Max retries exceeded with url: /api/datasets")

    monkeypatch.setattr(data, "_load_from_hub", broken)
    with pytest.raises(data.DataUnavailableError, match="downloading 'uoft-cs/cifar10'.*failed.*shared/data"):
        data.load("cifar10-jpg", "train", data_root=tmp_path / "nowhere")


def test_unknown_dataset_and_split():
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'"):
        data.load("imagenet", "train")
    with pytest.raises(ValueError, match="splits"):
        data.load("cifar10-jpg", "validation")


def test_corrupt_image_is_named():
    good = _jpeg(skdata.astronaut()[::16, ::16])
    with pytest.raises(ValueError, match="'bad.jpg' of dataset 'toy'"):
        data.ImageSet("toy", "train", [good, good[:40]], np.zeros(2, dtype=np.int64),
                      np.asarray(["ok.jpg", "bad.jpg"], dtype=object), ["a"]).decode()


def test_nested_subsets_are_nested_and_stratified():
    rng = np.random.default_rng(0)
    labels = rng.choice(7, size=3000, p=[0.3, 0.2, 0.15, 0.15, 0.1, 0.05, 0.05])
    share = np.bincount(labels, minlength=7) / len(labels)
    previous = None
    for n in (100, 200, 400, 800, 1600, 3000):
        subset = data.nested_subset(labels, n, seed=3)
        assert len(subset) == len(np.unique(subset)) == n
        counts = np.bincount(labels[subset], minlength=7)
        assert np.all(np.abs(counts - share * n) <= 1.0 + 1e-9), (n, counts, share * n)
        if previous is not None:
            assert set(previous) <= set(subset)
        previous = subset
    assert not np.array_equal(data.nested_subset(labels, 100, seed=3), data.nested_subset(labels, 100, seed=4))
    with pytest.raises(ValueError, match="n=3001"):
        data.nested_subset(labels, 3001, seed=0)


def test_paper_split_is_stratified_and_disjoint():
    labels = np.repeat(np.arange(5), 100)
    keep, held = data.paper_split(labels, seed=42)
    assert len(held) == 100 and len(keep) == 400
    assert not set(keep) & set(held)
    assert np.all(np.bincount(labels[held]) == 20)
    again_keep, _ = data.paper_split(labels, seed=42)
    assert np.array_equal(keep, again_keep)


@needs_data
def test_real_food101_split_sizes():
    train = data.load("food101-64px", "train")
    assert len(train) == 75_709 and len(train.classes) == 101
    keep, held = data.paper_split(train.labels)
    assert len(keep) + len(held) == len(train)
    assert abs(len(held) - 0.2 * len(train)) < 101


# ---------------------------------------------------------------------------------------------
# Segmentation: CamVid, images with exact label masks


@needs_data
def test_camvid_pack_has_the_segnet_split_and_exact_masks():
    train = data.load("camvid-240x180", "train")
    assert [len(data.load("camvid-240x180", s)) for s in ("train", "val", "test")] == [367, 101, 233]
    assert train.classes[:4] == ["sky", "building", "pole", "road"] and len(train.classes) == 11
    assert data.num_classes("camvid-240x180") == 11 and data.spec("camvid-240x180").task == "segmentation"
    some = train.subset([0, 5, 9])
    masks = some.decode_masks()
    assert masks.shape == (3, 180, 240) and masks.max() <= 11 and some.ids.tolist() == train.ids[[0, 5, 9]].tolist()
    assert some.decode().shape == (3, 180, 240, 3) and some.masks[1] == train.masks[5]


def test_a_classification_set_has_no_masks_to_decode(tiny_pack):
    with pytest.raises(ValueError, match="has no masks: it is not a segmentation dataset"):
        data.load("cifar10-jpg", "train", data_root=tiny_pack).decode_masks()


def _segnet_folder(root, masks_ok=True):
    """The SegNet tutorial's layout at 480x360: two scenes with label blocks of 4x4 pixels (void included)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "trainannot"):
        (root / split).mkdir(parents=True)
    for name in ("0001TP_006690.png", "Seq05VD_f00000.png"):
        Image.fromarray(rng.integers(0, 256, (360, 480, 3), dtype=np.uint8)).save(root / "train" / name)
        blocks = rng.integers(0, 12 if masks_ok else 13, (90, 120)).astype(np.uint8)
        Image.fromarray(np.kron(blocks, np.ones((4, 4), np.uint8))).save(root / "trainannot" / name)
    return root


def test_segnet_folder_is_made_what_the_pack_holds(tmp_path):
    folder = _segnet_folder(tmp_path / "CamVid")
    got = data.load_segnet_folder(folder, "train")
    masks = got.decode_masks()
    assert got.decode().shape == (2, 180, 240, 3) and masks.shape == (2, 180, 240)
    from PIL import Image

    original = np.asarray(Image.open(folder / "trainannot" / got.ids[0]))
    # nearest neighbour: every value is an original label, and each 4x4 block becomes a 2x2 one
    assert set(np.unique(masks[0])) <= set(np.unique(original))
    assert (masks[0][::2, ::2] == original[::4, ::4]).mean() > 0.99
    assert got.classes == data.CAMVID_CLASSES and (got.labels == 0).all()


def test_segnet_folder_errors_name_the_folder_and_the_fix(tmp_path, monkeypatch):
    folder = _segnet_folder(tmp_path / "bad", masks_ok=False)
    with pytest.raises(ValueError, match="is not a label mask of values 0..11"):
        data.load_segnet_folder(folder, "train")
    with pytest.raises(data.DataUnavailableError, match="val is missing"):
        data.load_segnet_folder(folder, "val")
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.delenv("STORAGE_SCALING_CAMVID", raising=False)
    with pytest.raises(data.DataUnavailableError, match=r"point \$STORAGE_SCALING_CAMVID at that CamVid folder"):
        data.load("camvid-240x180", "train", data_root=empty)
    monkeypatch.setenv("STORAGE_SCALING_CAMVID", str(_segnet_folder(tmp_path / "CamVid")))
    assert len(data.load("camvid-240x180", "train", data_root=empty)) == 2


@pytest.fixture
def scene_pack(tmp_path, monkeypatch):
    """A segmentation pack with train, val and test splits of PNG scenes (``synthetic_images``)."""
    from synthetic_images import forget_packs, scenes, use_pack, use_segmentation_pack, write_segmentation_pack

    root = tmp_path / "data"
    root.mkdir()
    write_segmentation_pack(root, "scenes", {"train": scenes(10, 0), "val": scenes(4, 1), "test": scenes(3, 2)})
    use_pack(monkeypatch, root, "unused", "", tmp_path / "cache", tmp_path / "results")
    use_segmentation_pack(monkeypatch, "scenes", "test scenes")
    forget_packs()
    yield "scenes"
    forget_packs()


def test_a_dataset_with_a_val_split_pools_all_of_train_and_validates_on_val(scene_pack):
    train, val = data.load(scene_pack, "train"), data.load(scene_pack, "val")
    assert data.has_val_split(scene_pack) and not data.has_val_split("cifar10-jpg")
    assert data.pool(scene_pack, "paper").ids.tolist() == train.ids.tolist()  # no 80/20 cut of train
    assert data.eval_set(scene_pack, "val").ids.tolist() == val.ids.tolist()
    assert len(data.eval_set(scene_pack, "test")) == 3 and len(data.pool(scene_pack, "paper", limit=6)) == 6


def test_masks_are_looked_up_by_id_from_any_split_and_kept_exact(scene_pack):
    from synthetic_images import scenes

    ids = [data.load(scene_pack, "test").ids[2], data.load(scene_pack, "train").ids[7]]
    masks = data.masks_of(scene_pack, ids)
    assert masks.dtype == np.uint8 and (masks[0] == scenes(3, 2)[1][2]).all() and (masks[1] == scenes(10, 0)[1][7]).all()
    with pytest.raises(ValueError, match="have no mask"):
        data.masks_of(scene_pack, ["no-such-image.png"])
    with pytest.raises(ValueError, match="classification dataset"):
        data.masks_of("cifar10-jpg", ["x"])


def test_png_originals_are_counted_as_their_lossless_jpeg_xl(scene_pack):
    from storage_scaling.compress import codecs
    from storage_scaling.experiments import inputs

    images = data.load(scene_pack, "val")
    entry = inputs.compress(images, "original")  # the paper's rule for a PNG dataset (Cityscapes)
    assert (np.asarray(entry.pixels()) == images.decode()).all()  # lossless: the same pixels
    assert entry.sizes.tolist() == inputs.original_sizes(images).tolist()
    assert {codecs.sniff(b) for b in entry.bitstreams} == {"jxl"}  # counted as JPEG XL files, not the PNGs
    assert entry.sizes.tolist() == [len(b) for b in entry.bitstreams] != images.stored_bytes.tolist()

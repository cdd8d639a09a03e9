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

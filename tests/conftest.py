"""Shared test helpers: tests never touch the network or the committed results/ tables."""

import os

import pytest

from storage_scaling import threads

os.environ.setdefault("HF_HUB_OFFLINE", "1")
threads.single_blas_thread()  # before numpy loads: the law fits' small optimizers hate contention


LAST = ("test_book_e2e", "test_claims")  # wait for the background book builds: run after everything else


def pytest_collection_modifyitems(config, items):
    """The book's end-to-end tests run last, in that order, so the builds they wait for overlap
    every other test (``pytest_collection_finish``)."""
    def rank(item):
        name = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        return LAST.index(name) + 1 if name in LAST else 0

    items[:] = sorted(items, key=rank)  # stable: the order within each group is kept


def pytest_collection_finish(session):
    """Start the end-to-end book builds now if this session runs them: they then overlap the unit
    tests (``book_builds``). Not on an xdist worker, where the test starts its own build."""
    if hasattr(session.config, "workerinput") or session.config.option.collectonly:
        return
    from storage_scaling import paths

    profiles = [item.callspec.params["profile"] for item in session.items
                if item.module.__name__.endswith("test_book_e2e") and hasattr(item, "callspec")]
    if profiles and paths.data_root() is not None:
        import book_builds

        book_builds.start(profiles)


def pytest_sessionfinish(session):
    """Stop a background book build still running (a session cut short) and remove its copy."""
    import sys

    if "book_builds" in sys.modules:
        sys.modules["book_builds"].stop()


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Every test runs PyTorch on one thread (two threads on a busy 2-core machine wait for each
    other), restored afterwards: importing or running a test module changes no thread count."""
    with threads.limit(torch=1):
        yield


@pytest.fixture
def results_env(tmp_path, monkeypatch):
    """Point the results directory at a temporary folder."""
    folder = tmp_path / "results"
    folder.mkdir()
    monkeypatch.setenv("STORAGE_SCALING_RESULTS", str(folder))
    return folder


@pytest.fixture(scope="module")
def private_cache(tmp_path_factory):
    """Stores and size tables of a test module live in a temporary cache, never the shared one
    (modules that encode use it with ``pytest.mark.usefixtures("private_cache")``)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("STORAGE_SCALING_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


def _photo(name: str):
    import skimage.data

    return getattr(skimage.data, name)()


def write_photo_folder(root, *, per_class: int = 3, size=(96, 80), bad_files: bool = True):
    """A labelled folder of small crops of scikit-image's photos (classes ``a`` and ``b``), plus,
    with ``bad_files``, the awkward files users have: a text file, a truncated JPEG, CMYK,
    16-bit, greyscale and RGBA (transparent) images, and a hidden file. Returns the folder."""
    import numpy as np
    from pathlib import Path
    from PIL import Image

    root = Path(root)
    w, h = size
    for cls, names in (("a", ("astronaut", "chelsea")), ("b", ("coffee", "rocket"))):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for name in names:
            im = Image.fromarray(_photo(name))
            for j in range(per_class):
                im.crop((30 * j, 20 * j, 30 * j + w, 20 * j + h)).save(root / cls / f"{name}{j}.jpg", quality=90)
    if bad_files:
        coffee = _photo("coffee")
        (root / "a" / "notes.txt").write_text("not an image")
        (root / "b" / "broken.jpg").write_bytes((root / "b" / "coffee0.jpg").read_bytes()[:1500])
        Image.fromarray(coffee[:60, :70]).convert("CMYK").save(root / "a" / "cmyk.jpg")
        rgba = np.dstack([coffee[:50, :60], np.full((50, 60), 255, np.uint8)])
        rgba[:, :30, 3] = 0  # the left half fully transparent
        Image.fromarray(rgba, "RGBA").save(root / "b" / "alpha.png")
        Image.fromarray(coffee[:40, :50, 0]).save(root / "b" / "grey.png")
        deep = (coffee[:40, :40, 1].astype(np.uint16) * 257)
        Image.fromarray(deep).save(root / "a" / "deep.png")  # 16-bit greyscale PNG
        (root / "a" / ".DS_Store").write_bytes(b"\0\1hidden")
    return root


@pytest.fixture
def photo_folder(tmp_path):
    """:func:`write_photo_folder` in a temporary folder."""
    return write_photo_folder(tmp_path / "photos")

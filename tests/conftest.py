"""Shared test helpers: tests never touch the network or the committed results/ tables."""

import os

import pytest

from storage_scaling import threads

os.environ.setdefault("HF_HUB_OFFLINE", "1")
threads.single_blas_thread()  # before numpy loads: the law fits' small optimizers hate contention


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

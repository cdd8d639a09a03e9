"""Shared test helpers: tests never touch the network or the committed results/ tables."""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# one BLAS thread: on the shared 2-core machine a threaded OpenBLAS makes scipy's small
# optimizers (L-BFGS-B in the law fits) ~40x slower through thread contention
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


@pytest.fixture
def results_env(tmp_path, monkeypatch):
    """Point the results directory at a temporary folder."""
    folder = tmp_path / "results"
    folder.mkdir()
    monkeypatch.setenv("STORAGE_SCALING_RESULTS", str(folder))
    return folder

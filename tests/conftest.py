"""Shared test helpers: tests never touch the network or the committed results/ tables."""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def results_env(tmp_path, monkeypatch):
    """Point the results directory at a temporary folder."""
    folder = tmp_path / "results"
    folder.mkdir()
    monkeypatch.setenv("STORAGE_SCALING_RESULTS", str(folder))
    return folder

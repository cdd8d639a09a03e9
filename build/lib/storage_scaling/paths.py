"""Where things live: the repository, the offline data packs and the committed result tables.

Every location can be overridden by an environment variable so that a reader can point the code at
their own copies (and tests at fixtures) without editing anything.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "STORAGE_SCALING_DATA"
RESULTS_ENV = "STORAGE_SCALING_RESULTS"
CACHE_ENV = "STORAGE_SCALING_CACHE"


def repo_root() -> Path:
    """The checkout this package was installed from (src layout: two levels above the package)."""
    return Path(__file__).resolve().parents[2]


def data_root(explicit: str | os.PathLike | None = None) -> Path | None:
    """The folder holding the offline Parquet packs, or None when there is none.

    Order: an explicit argument, then $STORAGE_SCALING_DATA, then ``../shared/data`` beside the
    checkout, then ``../shared/data`` beside the working directory.
    """
    if explicit is not None:
        return Path(explicit)
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV])
    for candidate in (repo_root().parent / "shared" / "data", Path.cwd().parent / "shared" / "data"):
        if candidate.is_dir():
            return candidate
    return None


def results_dir() -> Path:
    """Committed small result tables ($STORAGE_SCALING_RESULTS overrides, e.g. for fixtures)."""
    return Path(os.environ.get(RESULTS_ENV) or repo_root() / "results")


def cache_dir() -> Path:
    """Large, regenerable artefacts (compressed stores, decoded pixels); never committed."""
    path = Path(os.environ.get(CACHE_ENV) or repo_root() / ".cache")
    path.mkdir(parents=True, exist_ok=True)
    return path

"""Fitted models kept on disk, so that one experiment can score another's model without training it.

The grid keeps its whole-pool models (:meth:`kinds.Experiment.keeps_model`); cross-compression
scores them on every test format (:meth:`kinds.Experiment.model_source`), which makes it
evaluation only, as the paper's cross grid is. A model is kept under
``<cache>/models/<model>/<training key>.pt``, named by the run that trained it less its scoring
set, so a changed recipe or pool never finds a stale file. The cache is local: on a machine
without the file the run trains its own model (and says so in the ``model_from`` column).
"""

from __future__ import annotations

from pathlib import Path

from .. import atomic, paths
from ..results import run_key
from .kinds import EVAL_KEYS

FOLDER = "models"


def training_key(run: dict) -> str:
    """The run's identity less its scoring set: runs that share it share one fitted model."""
    return run_key({k: v for k, v in run.items() if k not in EVAL_KEYS})


def path(run: dict) -> Path:
    return paths.cache_dir() / FOLDER / str(run["model"]) / f"{training_key(run)}.pt"


def save(run: dict, fitted) -> Path:
    """Write ``fitted`` (what a model's ``fit`` returned) atomically; return its path."""
    import torch

    target = path(run)
    atomic.write_with(target, lambda f: torch.save(fitted, f))
    return target


def load(run: dict):
    """The fitted model kept for ``run``, or None when this machine has none."""
    import torch

    target = path(run)
    if not target.is_file():
        return None
    return torch.load(target, weights_only=False)  # our own pickle, written by save()

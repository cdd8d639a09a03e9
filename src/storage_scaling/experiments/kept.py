"""Fitted models kept on disk, so that one experiment can score another's model without training it.

The grid keeps its whole-pool models (:meth:`kinds.Experiment.keeps_model`); cross-compression
scores them on every test format (:meth:`kinds.Experiment.model_source`), which makes it
evaluation only, as the paper's cross grid is. A model is kept as two files under
``<cache>/models/<model>/``, named by the run that trained it less its scoring set, so a changed
recipe or pool never finds a stale file:

``<training key>.pt``    its arrays only: a dict of tensors (``to_state()`` of what ``fit`` returned),
                         read with ``torch.load(..., weights_only=True)``, which runs no code;
``<training key>.json``  how to rebuild it (``kind``, its config and training metrics), the
                         training key and the SHA256 of the ``.pt`` file.

Loading never unpickles objects: the cache may be shared or redirected (``STORAGE_SCALING_CACHE``),
and a pickle placed there would run code. A model is used only when both files exist and agree
(the hash, the training key, the format); otherwise it is not kept and the run trains its own. A
``.pt`` without its ``.json`` (the pickled models of older versions) or one that is not a plain dict
of tensors is refused in one line that says to delete it. The ``.json`` is written first and the
``.pt`` second, each atomically, so an interrupted save leaves a pair that disagrees (not kept),
never a lone ``.pt``. The cache is local: on a machine without the files the run trains its own
model (and says so in the ``model_from`` column).
"""

from __future__ import annotations

import hashlib
import io
import json
import shlex
from pathlib import Path

from .. import atomic, paths
from ..results import run_key
from .kinds import EVAL_KEYS

FOLDER = "models"
FORMAT = 1  # of the .json record; another value is not kept (retrained)


def training_key(run: dict) -> str:
    """The run's identity less its scoring set: runs that share it share one fitted model."""
    return run_key({k: v for k, v in run.items() if k not in EVAL_KEYS})


def path(run: dict) -> Path:
    """The kept model's tensor file (its record is :func:`record_path`)."""
    return paths.cache_dir() / FOLDER / str(run["model"]) / f"{training_key(run)}.pt"


def record_path(run: dict) -> Path:
    return path(run).with_suffix(".json")


def _plain(value):
    """numpy scalars in a fitted model's config as JSON values."""
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        return value.item()
    raise TypeError(f"{type(value).__name__} is not a plain JSON value")


def save(run: dict, fitted) -> Path:
    """Keep ``fitted`` (what a model's ``fit`` returned) for ``run``: record first, then tensors, each
    written atomically; return the tensor file's path."""
    import torch

    tensors, config = fitted.to_state()
    buffer = io.BytesIO()
    torch.save(tensors, buffer)
    data = buffer.getvalue()
    record = {"format": FORMAT, "training_key": training_key(run), "sha256": hashlib.sha256(data).hexdigest(),
              "fitted": config}
    atomic.write_text(record_path(run), json.dumps(record, indent=1, default=_plain) + "\n")
    atomic.write_bytes(path(run), data)
    return path(run)


def _refusal(target: Path, why: str, record: Path | None = None) -> ValueError:
    files = (target,) if record is None else (target, record)
    rm = " ".join(shlex.quote(str(f)) for f in files)
    what = "it" if record is None else "it and its record"
    return ValueError(f"kept model {target} {why} and cannot be loaded safely; delete {what} (rm {rm}) and re-run: "
                      "the grid writes it again")


def load(run: dict, device=None):
    """The fitted model kept for ``run``, or None when this machine has none that agrees with its
    record. A file that could run code on loading is refused (a ValueError that says to delete it)."""
    import torch

    from ..learn import learners

    target, record_file = path(run), record_path(run)
    if not target.is_file():
        return None
    if not record_file.is_file():
        raise _refusal(target, f"has no record {record_file.name} beside it: it was written by an older version")
    data = target.read_bytes()  # hashed and loaded from memory: the file cannot change in between
    try:
        record = json.loads(record_file.read_text())
        agrees = (record["format"] == FORMAT and record["training_key"] == training_key(run)
                  and record["sha256"] == hashlib.sha256(data).hexdigest())
    except (OSError, ValueError, KeyError, TypeError):
        return None  # an unreadable record: not kept
    if not agrees:
        return None
    try:
        tensors = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # UnpicklingError (it holds objects), RuntimeError (not a torch file), ...
        raise _refusal(target, f"is not a plain file of tensors ({type(error).__name__})", record_file) from None
    if not isinstance(tensors, dict) or not all(isinstance(t, torch.Tensor) for t in tensors.values()):
        raise _refusal(target, "is not a dict of tensors", record_file)
    try:
        return learners.from_state(tensors, record["fitted"], device)
    except (AttributeError, KeyError, TypeError, ValueError, RuntimeError):
        return None  # kept by code that built this model differently: train it again

"""The results store: one CSV row per finished run, looked up by its parameters.

A run is identified by the canonical JSON of its parameters (``run_key``). Appending rewrites the
whole table atomically under a lock, so an interrupt never leaves a half row or a corrupt file,
and re-running an experiment skips every key already present (resume, never duplicate).
Tables stay small (hundreds of rows), so a full rewrite per run costs nothing that matters.

Every read checks the table against the row schema (:mod:`.results_integrity`): a damaged table
(a cut or duplicated row, a missing column, a row count its sidecar disagrees with) is refused in
one line that names the repair, never read "as well as possible".
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pandas as pd

from . import atomic, provenance
from .results_integrity import PROVENANCE_COLUMNS, check_table, is_run_table, sidecar_path


def canonical(params: dict) -> str:
    """Parameters as sorted, compact JSON: the identity of a run."""
    def clean(v):
        if hasattr(v, "item"):  # numpy scalars
            v = v.item()
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return json.dumps({k: clean(v) for k, v in params.items()}, sort_keys=True, separators=(",", ":"))


def run_key(params: dict) -> str:
    return hashlib.sha1(canonical(params).encode()).hexdigest()[:16]


def read_rows(path: str | Path) -> pd.DataFrame:
    """The rows of a CSV: a run table (its header has ``run_key`` and ``params_json``) with every check
    of its schema; any other CSV (a table of your own runs) as it is, or one line naming it."""
    path = Path(path)
    if is_run_table(path):
        return ResultsStore(path).frame()
    try:
        return pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        raise ValueError(f"{path} cannot be read as CSV ({' '.join(str(exc).split())}); it is empty or damaged: "
                         "restore it or recompute it") from exc


class ResultsStore:
    """Append-only table of runs in one CSV file.

    Opening a store removes the temporary files an interrupted append left beside the table
    (they are never read: rows come only from the table itself).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if atomic.temp_files(self.path):  # checked first: opening a clean table writes nothing
            with atomic.locked(self.path):  # no append is mid-write while we hold the lock
                pass  # locked() removes them

    def frame(self) -> pd.DataFrame:
        """Every row, after the table passed its checks (a damaged table raises, naming the repair)."""
        if not self.path.is_file():
            return pd.DataFrame(columns=["run_key", "params_json"])
        check_table(self.path)
        # Text columns stay text: a commit hash of digits only ("3077286") must not become an int.
        return pd.read_csv(self.path, dtype=dict.fromkeys(("run_key", *PROVENANCE_COLUMNS), str))

    def keys(self) -> set[str]:
        return set(self.frame()["run_key"].astype(str))

    def has(self, params: dict) -> bool:
        return run_key(params) in self.keys()

    def get(self, params: dict) -> dict | None:
        frame = self.frame()
        match = frame[frame["run_key"].astype(str) == run_key(params)]
        return None if match.empty else match.iloc[0].to_dict()

    def append(self, params: dict, metrics: dict, stamp: dict | None = None) -> dict:
        """Record one finished run; a run already recorded raises instead of duplicating."""
        overlap = set(params) & set(metrics)
        if overlap:
            raise ValueError(f"metric names clash with parameter names: {sorted(overlap)}")
        row = {"run_key": run_key(params), **params, **metrics, **(stamp or provenance.stamp())}
        row["params_json"] = canonical(params)
        broken = [k for k, v in row.items() if isinstance(v, str) and ("\n" in v or "\r" in v)]
        if broken:
            raise ValueError(f"values of {broken} hold a line break; a results row is one line of CSV")
        with atomic.locked(self.path):
            frame = self.frame()
            if row["run_key"] in set(frame["run_key"].astype(str)):
                raise ValueError(f"run {row['run_key']} ({row['params_json']}) is already in {self.path}")
            new = pd.DataFrame([row])
            frame = new if frame.empty else pd.concat([frame, new], ignore_index=True)
            buffer = io.StringIO()
            frame.to_csv(buffer, index=False)
            sidecar = sidecar_path(self.path)
            if sidecar.is_file():  # it counted the finished table; the runner writes it again when complete
                sidecar.unlink()
            atomic.write_text(self.path, buffer.getvalue())
        return row

    def pending(self, runs: list[dict]) -> list[dict]:
        """The runs of a list whose parameters have no row yet (what a resumed experiment does)."""
        done = self.keys()
        return [r for r in runs if run_key(r) not in done]

"""Profile-aware result tables: the contract between expensive computations and the book.

Every notebook computation that is too slow for a book build goes through :func:`profile_table`:

* ``smoke``   computes at toy size (``smoke_params``) and writes nothing to ``results/``;
* ``full``    computes at real size (``full_params``) and writes ``results/<name>.csv`` plus a
              ``<name>.json`` provenance sidecar (parameters, code version, device, date, duration);
* ``publish`` loads the committed table when its recorded parameters equal ``full_params``
              exactly; else the committed rows of a full-size run that has not finished (when the
              caller passes ``partial``), under a banner saying "partial: k of N runs"; otherwise
              it computes the smoke size and marks the result so the notebook shows a visible
              banner saying the real table is pending.

Cheap computations (fits, closed forms, algebra) never go through here: they always run.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from . import atomic, paths, provenance
from .results import canonical, read_rows

PROFILES = ("smoke", "full", "publish")


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {PROFILES}")
    return profile


@dataclass(frozen=True)
class ProfileTable:
    name: str
    frame: pd.DataFrame
    source: str  # "smoke", "full", "committed", "partial" or "smoke-fallback"
    meta: dict

    @property
    def is_placeholder(self) -> bool:
        """True when a publish build had no committed table and shows smoke-size numbers."""
        return self.source == "smoke-fallback"

    def banner_markdown(self) -> str:
        if self.source == "committed":
            m = self.meta
            return (f"Loaded committed table `results/{self.name}.csv` (code {m.get('code_version')}, "
                    f"{m.get('device')}, {m.get('finished_at')}).")
        if self.source == "full":
            return f"Computed at full size now and written to `results/{self.name}.csv`."
        if self.source == "partial":
            m = self.meta
            return (f"**Partial: {m['done']} of {m['total']} runs** of the full-size table `results/{self.name}.csv` "
                    f"are committed ({', '.join(m['devices'])}; code {', '.join(m['code_versions'])}). The rest "
                    "has not run yet; everything below uses only these rows.")
        if self.source == "smoke":
            return f"Smoke profile: `{self.name}` computed at toy size; numbers are not meaningful."
        return (f"**Pending: no committed table `results/{self.name}.csv` for the full-size "
                f"parameters.** The numbers below come from the smoke-size computation "
                f"({canonical(self.meta.get('params', {}))}) and are placeholders, not results.")


SOURCE_ORDER = ("smoke-fallback", "smoke", "partial", "full", "committed")  # weakest first


def combine(parts: list[ProfileTable]) -> ProfileTable:
    """Several tables of one experiment (one per model) as one: rows concatenated, the weakest
    source (a chapter is only as final as its least finished table), every part's banner kept."""
    if not parts:
        raise ValueError("combine needs at least one table")
    if len(parts) == 1:
        return parts[0]
    weakest = min(parts, key=lambda t: SOURCE_ORDER.index(t.source))
    frame = pd.concat([t.frame for t in parts], ignore_index=True)
    meta = {**weakest.meta, "parts": parts}
    if weakest.source == "partial":
        meta.update(done=sum(t.meta.get("done", len(t.frame)) for t in parts),
                    total=sum(t.meta.get("total", len(t.frame)) for t in parts),
                    devices=sorted({d for t in parts for d in t.meta.get("devices", [t.meta.get("device", "?")])}))
    return ProfileTable("+".join(t.name for t in parts), frame, weakest.source, meta)


def banner(table: ProfileTable):
    """Display the table's provenance line; a warning admonition when it is a placeholder."""
    from IPython.display import Markdown, display

    if "parts" in table.meta:
        for part in table.meta["parts"]:
            banner(part)
        return
    text = table.banner_markdown()
    if table.is_placeholder or table.source in ("smoke", "partial"):
        text = f"> ⚠️ {text}"
    display(Markdown(text))


def status_text(table: ProfileTable, what: str) -> str:
    """One line of provenance for prose ("the grid is ..."), glued beside the numbers it qualifies.

    ``what`` names the computation ("the grid", "the quality check"). Covers every source of
    :class:`ProfileTable`; a partial table's meta must carry ``done``, ``total`` and ``devices``.
    """
    if not isinstance(table, ProfileTable):
        raise ValueError(f"status_text needs a tables.ProfileTable, got {type(table).__name__}")
    if not str(what).strip():
        raise ValueError("status_text: name what the table holds (e.g. 'the grid'), got an empty string")
    if table.source == "committed":
        return f"measured on {table.meta.get('device', 'a GPU')} (committed results)"
    if table.source == "full":
        return "measured now at full size"
    if table.source == "partial":
        missing = [k for k in ("done", "total", "devices") if k not in table.meta]
        if missing:
            raise ValueError(f"partial table {table.name!r} lacks meta key(s) {missing}; "
                             "profile_table's partial() must return done, total and devices")
        devices = ', '.join(table.meta['devices'])
        if table.meta['done'] >= table.meta['total']:
            return (f"all {table.meta['total']} full-size runs measured on {devices} (committed rows; "
                    "the run's .json sidecar is not written yet)")
        return (f"partial: {table.meta['done']} of {table.meta['total']} full-size runs measured on "
                f"{devices} (committed results; the rest has not run yet)")
    if table.source == "smoke":
        return f"smoke profile: {what} ran at toy size on this machine; its numbers are not meaningful"
    if table.source == "smoke-fallback":
        return f"pending: {what} has not run at full size yet; the numbers shown come from a toy-size CPU run"
    raise ValueError(f"unknown table source {table.source!r} for {table.name!r}; expected one of "
                     "committed, full, partial, smoke, smoke-fallback")


def note_box(text: str, commands=(), title: str = "Note"):
    """A note box as HTML, since ``{glue:any}`` across documents pastes HTML but not Markdown: what a
    chapter shows in place of a table that has not run (what is missing and the command that runs
    it), so that a publish build never shows the toy numbers it computed as a stand-in."""
    from html import escape

    from IPython.display import HTML

    if not str(text).strip():
        raise ValueError("note_box: give the text of the note, got an empty string")
    lines = "\n".join(escape(str(c)) for c in commands)
    code = f"<pre><code>{lines}</code></pre>" if lines else ""
    return HTML(f'<div class="admonition note"><p class="admonition-title">{escape(title)}</p>'
                f"<p>{escape(str(text))}</p>{code}</div>")


def table_paths(name: str, results_dir: Path | None = None) -> tuple[Path, Path]:
    base = Path(results_dir) if results_dir is not None else paths.results_dir()
    return base / f"{name}.csv", base / f"{name}.json"


def load_committed(name: str, params: dict, results_dir: Path | None = None) -> ProfileTable | None:
    csv_path, meta_path = table_paths(name, results_dir)
    if not (csv_path.is_file() and meta_path.is_file()):
        return None
    meta = json.loads(meta_path.read_text())
    if canonical(meta.get("params", {})) != canonical(params):
        return None
    return ProfileTable(name, read_checked(csv_path, meta.get("rows")), "committed", meta)


def read_checked(csv_path: Path, rows: int | None) -> pd.DataFrame:
    """A committed table, refused in one line when it is not what was written: a run table gets
    every check of its row schema (:mod:`.results_integrity`); any table, its sidecar's row count."""
    frame = read_rows(csv_path)
    if rows is not None and len(frame) != rows:
        raise ValueError(f"table {csv_path} has {len(frame)} rows but its sidecar records {rows}; it is damaged or "
                         f"was edited: restore it (git checkout -- {csv_path}) or recompute it with the full profile")
    return frame


def write_table(name: str, frame: pd.DataFrame, params: dict, seconds: float,
                results_dir: Path | None = None) -> dict:
    """Write the CSV first, then the sidecar: a table without its sidecar is never trusted."""
    csv_path, meta_path = table_paths(name, results_dir)
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    meta = {"name": name, "params": json.loads(canonical(params)), "rows": len(frame),
            "seconds": round(seconds, 2), **provenance.stamp()}
    with atomic.locked(csv_path):
        if meta_path.exists():
            meta_path.unlink()
        atomic.write_text(csv_path, buffer.getvalue())
        atomic.write_text(meta_path, json.dumps(meta, indent=2) + "\n")
    return meta


def load_committed_or_partial(name: str, full_params: dict, partial=None,
                              results_dir: Path | None = None) -> ProfileTable | None:
    """The committed full-size table, else the committed rows of an unfinished one (``partial()``
    gives them with ``done``, ``total``, ``devices``, ``code_versions``), else None."""
    committed = load_committed(name, full_params, results_dir)
    if committed is not None:
        return committed
    got = partial() if partial is not None else None
    if got is not None and len(got[0]):
        return ProfileTable(name, got[0], "partial", {"params": full_params, **got[1]})
    return None


def profile_table(name: str, *, profile: str, full_params: dict, smoke_params: dict,
                  compute: Callable[[dict], pd.DataFrame],
                  results_dir: Path | None = None,
                  partial: Callable[[], tuple[pd.DataFrame, dict] | None] | None = None) -> ProfileTable:
    """Compute, or load, the table ``name`` as the profile asks (see the module docstring).

    ``partial()`` returns the committed rows of the unfinished full-size table and a dict with
    ``done``, ``total``, ``devices`` and ``code_versions`` (or None when there are none).
    """
    check_profile(profile)
    if profile == "publish":
        found = load_committed_or_partial(name, full_params, partial, results_dir)
        if found is not None:
            return found
    params = full_params if profile == "full" else smoke_params
    start = time.perf_counter()
    frame = compute(dict(params))
    seconds = time.perf_counter() - start
    if profile == "full":
        meta = write_table(name, frame, params, seconds, results_dir)
        return ProfileTable(name, frame, "full", meta)
    source = "smoke" if profile == "smoke" else "smoke-fallback"
    return ProfileTable(name, frame, source, {"params": params, "seconds": seconds})

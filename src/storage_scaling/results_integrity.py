"""The row schema of the results tables, the check every read makes, and the repair of a damaged table.

The results tables are the book's ground truth, so a table that is not exactly what the runner wrote
is refused, never read "as well as possible": ``pandas.read_csv`` pads a cut row with blanks and
keeps a cut number (0.6 for 0.6833). Every read of a run table (:class:`results.ResultsStore`)
checks, line by line with the ``csv`` module:

* the header: the identity and provenance columns, and the columns the row's experiment writes
  (:data:`EXPERIMENT_COLUMNS`, declared once, here);
* each row: as many fields as the header; its ``params_json`` parses and hashes to its ``run_key``;
  every parameter's column holds that parameter's value; every declared column parses as its type
  and range; ``error`` and ``accuracy`` add up to 1; no run key seen on an earlier line;
* the table: as many rows as its ``.json`` sidecar records, where one exists (a finished full
  table). Partial and smoke tables have no sidecar, so they get every check except the count.

The runner writes against the same schema: :func:`check_row` refuses a row that lacks a declared
column (or holds a value not of its kind) before it is appended.

The first problem stops the caller with one line naming the file, the line and the repair:
``storage-scaling results repair FILE`` moves the bad lines aside (into ``<table>.rejected.txt``,
never deleted), keeps every good row, and lets the next run redo only the runs whose rows left.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

IDENTITY_COLUMNS = ("run_key", "params_json")
PROVENANCE_COLUMNS = ("code_version", "device", "finished_at")
REPAIR_COMMAND = "storage-scaling results repair"
CHECK_COMMAND = "storage-scaling results check"
REJECTED_SUFFIX = ".rejected.txt"


# ---------------------------------------------------------------------------------------------
# The schema: value kinds, and the columns each experiment writes


@dataclass(frozen=True)
class Kind:
    """How a column's text must parse: a name for messages and a test of the parsed value."""

    name: str
    parse: object  # str -> value, raising ValueError when the text is not of this kind


def _number(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


def _in_range(low: float, high: float = math.inf, integral: bool = False):
    def parse(text: str) -> float:
        value = _number(text)
        if not low <= value <= high:
            raise ValueError(f"outside [{low:g}, {high:g}]")
        if integral and value != int(value):
            raise ValueError("not a whole number")
        return value
    return parse


def _flag(text: str) -> bool:
    if text not in ("True", "False"):
        raise ValueError("not True or False")
    return text == "True"


def _text(text: str) -> str:
    if not text.strip():
        raise ValueError("empty")
    return text


def _timestamp(text: str) -> datetime:
    return datetime.fromisoformat(text)


PROBABILITY = Kind("a number in [0, 1]", _in_range(0.0, 1.0))
COUNT = Kind("a whole number >= 0", _in_range(0.0, integral=True))
POSITIVE_COUNT = Kind("a whole number >= 1", _in_range(1.0, integral=True))
BYTES = Kind("a number of bytes >= 0", _in_range(0.0))
DISTANCE = Kind("a Butteraugli distance >= 0", _in_range(0.0))
FLAG = Kind("True or False", _flag)
TEXT = Kind("non-empty text", _text)
TIMESTAMP = Kind("an ISO date and time", _timestamp)

def _json_rows(text: str) -> list:
    rows = json.loads(text)
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise ValueError("not a non-empty JSON list of objects")
    return rows


SECONDS = Kind("seconds >= 0", _in_range(0.0))
BITS_PER_PIXEL = Kind("bits per pixel >= 0", _in_range(0.0))
JSON_ROWS = Kind("a JSON list of evaluation objects", _json_rows)

PROVENANCE = {"code_version": TEXT, "device": TEXT, "finished_at": TIMESTAMP}
SCORES = {"accuracy": PROBABILITY, "error": PROBABILITY, "f1_macro": PROBABILITY, "f1_weighted": PROBABILITY,
          "n_test": POSITIVE_COUNT, "test_mean_bytes": BYTES}
STORAGE = {"mean_bytes": BYTES, "total_bytes": BYTES}
FILLED_BUDGET = {**STORAGE, "budget_fill": Kind("a fraction >= 0", _in_range(0.0))}
SEARCHED_BUDGET = {**FILLED_BUDGET, "within_tolerance": FLAG, "encodes": COUNT}

# The columns beyond its parameters that every row of an experiment holds, non-empty (the model's own
# metrics vary by model and are not declared). A row's experiment is its ``experiment`` parameter.
EXPERIMENT_COLUMNS: dict[str, dict[str, Kind]] = {
    "grid": {**SCORES, **STORAGE},
    "cross": {**SCORES, **STORAGE},
    "quality": {**SCORES, **STORAGE},
    "select": {**SCORES, **STORAGE},
    "original": {**SCORES, **FILLED_BUDGET, "n": COUNT, "pool_exhausted": FLAG},
    "naive": {**SCORES, **FILLED_BUDGET, "n": COUNT, "pool_exhausted": FLAG},
    "blog": {**SCORES, **FILLED_BUDGET, "n": COUNT, "pool_exhausted": FLAG},
    "budget": {**SCORES, **SEARCHED_BUDGET},  # no distance when the law keeps the originals
    "randomized": {**SCORES, **SEARCHED_BUDGET, "d_min": DISTANCE, "d_max": DISTANCE,
                   "mean_distance": DISTANCE, "n_kept_original": COUNT},
    "jpeg_dl": {"accuracy": PROBABILITY, "error": PROBABILITY, "n_test": POSITIVE_COUNT, "evaluations": JSON_ROWS,
                "n_train": POSITIVE_COUNT, "train_seconds": SECONDS, "eval_seconds": SECONDS,
                "bpp_standard": BITS_PER_PIXEL, "bpp_initial": BITS_PER_PIXEL},
}


def declared_columns(experiment: str | None) -> dict[str, Kind]:
    """Provenance, plus the columns ``experiment`` writes (none for rows of no experiment)."""
    return {**PROVENANCE, **EXPERIMENT_COLUMNS.get(experiment or "", {})}


def _as_written(value) -> str:
    """A value as ``DataFrame.to_csv`` writes it in a row (None: an empty field)."""
    return "" if value is None else str(value)


def check_row(params: dict, metrics: dict, where: str = "a results table") -> None:
    """A row the runner is about to append, against :func:`declared_columns` of its experiment
    (its ``experiment`` parameter): every declared column is there and parses as its kind (the
    provenance columns are left to the store, which stamps them). Raises a ValueError naming the
    column and the experiment (``where`` names the table and run), so a row that every later read
    would refuse is never written."""
    experiment = params.get("experiment")
    values = {**params, **metrics}
    for name, kind in declared_columns(experiment).items():
        if name in PROVENANCE:
            continue
        if name not in values:
            raise ValueError(f"a row of experiment {experiment!r} for {where} lacks the column {name!r} that its "
                             f"schema declares (results_integrity.EXPERIMENT_COLUMNS); nothing was written")
        text = _as_written(values[name])
        try:
            kind.parse(text)
        except ValueError as exc:
            raise ValueError(f"a row of experiment {experiment!r} for {where}: column {name!r} would hold {text!r}, "
                             f"which is not {kind.name} ({exc}); nothing was written") from exc


# ---------------------------------------------------------------------------------------------
# Checking a table


@dataclass(frozen=True)
class Problem:
    line: int  # 1-based line of the file; 0 for the whole table (a count that disagrees)
    reason: str


@dataclass
class TableCheck:
    """What a read of ``path`` found: the header, the good rows' lines and every problem."""

    path: Path
    header: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)  # the file's physical lines, newlines kept
    good: list[int] = field(default_factory=list)  # 1-based line numbers of the good rows
    problems: list[Problem] = field(default_factory=list)
    header_bad: bool = False  # the whole file is unusable (empty, unreadable header, missing columns)
    sidecar: Path | None = None
    sidecar_rows: int | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def refusal(self) -> str:
        """One line: the file, the first bad line, how many more, and the repair."""
        first = self.problems[0]
        where = f"line {first.line}" if first.line else "the table"
        more = len(self.problems) - 1
        also = f" ({more} more problem{'s' * (more > 1)}: {CHECK_COMMAND} {self.path})" if more else ""
        return (f"results table {self.path} is damaged at {where}: {first.reason}{also}; it was not read. "
                f"Repair: {REPAIR_COMMAND} {self.path} moves the bad lines aside (into "
                f"{rejected_path(self.path).name}, nothing is deleted), then a re-run redoes only those runs")


def rejected_path(path: Path) -> Path:
    return path.with_name(path.stem + REJECTED_SUFFIX)


def sidecar_path(path: Path) -> Path:
    """The ``.json`` sidecar a finished full table has beside its CSV (``tables.write_table``)."""
    return path.with_suffix(".json")


def sidecar_rows(path: Path) -> int | None:
    """The row count the table's sidecar records, or None when there is no (readable) sidecar."""
    meta_path = sidecar_path(path)
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"sidecar {meta_path} of {path} is not valid JSON ({exc}); delete it (the runner writes "
                         "it again when every run of the table is done)") from exc
    rows = meta.get("rows") if isinstance(meta, dict) else None
    return int(rows) if isinstance(rows, int) else None


def _run_key(params_json: str) -> str:
    return hashlib.sha1(params_json.encode()).hexdigest()[:16]


def _same_value(text: str, value) -> bool:
    """Whether a CSV field holds a parameter's JSON value, as ``DataFrame.to_csv`` writes it."""
    if value is None:
        return text == ""
    if isinstance(value, bool):
        return text == str(value)
    if isinstance(value, (int, float)):
        try:
            return float(text) == float(value)
        except ValueError:
            return False
    if isinstance(value, str):
        return text == value
    return text == str(value)  # lists and objects: their Python repr, as pandas writes them


def _check_row(fields: list[str], header: list[str], index: dict[str, int], seen: dict[str, int],
               line: int) -> str | None:
    """The first problem of one row, or None."""
    if len(fields) != len(header):
        return (f"{len(fields)} fields where the header has {len(header)} "
                f"({'a cut row' if len(fields) < len(header) else 'extra fields'})")
    key, params_json = fields[index["run_key"]], fields[index["params_json"]]
    try:
        params = json.loads(params_json)
    except json.JSONDecodeError:
        return "its params_json is not valid JSON (a cut or edited row)"
    if not isinstance(params, dict):
        return "its params_json is not an object of parameters"
    if _run_key(params_json) != key:
        return f"run_key {key!r} is not the key of its params_json (an edited row)"
    if key in seen:
        return f"run {key} is already on line {seen[key]} (a duplicated row)"
    for name, value in params.items():
        if name not in index:
            return f"parameter {name!r} of its params_json has no column"
        if not _same_value(fields[index[name]], value):
            return f"column {name!r} holds {fields[index[name]]!r}, its params_json says {value!r}"
    for name, kind in declared_columns(params.get("experiment")).items():
        if name not in index:
            return f"its experiment {params.get('experiment')!r} writes a column {name!r}, which the header lacks"
        text = fields[index[name]]
        try:
            kind.parse(text)
        except ValueError as exc:
            return f"column {name!r} holds {text!r}, which is not {kind.name} ({exc})"
    if "error" in index and "accuracy" in index and fields[index["error"]] and fields[index["accuracy"]]:
        total = float(fields[index["error"]]) + float(fields[index["accuracy"]])
        if abs(total - 1.0) > 1e-9:
            return f"error {fields[index['error']]} and accuracy {fields[index['accuracy']]} do not add up to 1"
    return None


def inspect(path: str | Path) -> TableCheck:
    """Check the table at ``path`` (see the module docstring); never raises for a damaged table."""
    path = Path(path)
    check = TableCheck(path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        check.header_bad = True
        check.problems.append(Problem(1, f"is not UTF-8 text (byte {exc.start})"))
        return check
    check.lines = text.splitlines(keepends=True)
    if not check.lines or not check.lines[0].strip():
        check.header_bad = True
        check.problems.append(Problem(1, "the file is empty (no header); an interrupted copy?"))
        return check
    try:
        check.header = next(csv.reader([check.lines[0]], strict=True))
    except csv.Error as exc:
        check.header_bad = True
        check.problems.append(Problem(1, f"the header is not CSV ({exc})"))
        return check
    missing = [c for c in IDENTITY_COLUMNS + PROVENANCE_COLUMNS if c not in check.header]
    if missing:
        check.header_bad = True
        check.problems.append(Problem(1, f"the header lacks the column(s) {missing} of every results table"))
        return check
    index = {name: k for k, name in enumerate(check.header)}
    seen: dict[str, int] = {}
    for line, raw_line in enumerate(check.lines[1:], start=2):
        if not raw_line.strip():
            check.problems.append(Problem(line, "an empty line"))
            continue
        try:
            fields = next(csv.reader([raw_line], strict=True))
        except csv.Error as exc:
            check.problems.append(Problem(line, f"not a CSV row ({exc}; a row cut inside quotes)"))
            continue
        reason = _check_row(fields, check.header, index, seen, line)
        if reason is not None:
            check.problems.append(Problem(line, reason))
            continue
        seen[fields[index["run_key"]]] = line
        check.good.append(line)
    check.sidecar_rows = sidecar_rows(path)
    if check.sidecar_rows is not None:
        check.sidecar = sidecar_path(path)
        rows = len(check.lines) - 1 - sum(1 for l in check.lines[1:] if not l.strip())
        if rows != check.sidecar_rows:
            check.problems.append(Problem(0, f"it has {rows} rows but its sidecar {check.sidecar.name} records "
                                             f"{check.sidecar_rows}"))
    return check


def check_table(path: str | Path) -> TableCheck:
    """:func:`inspect`, raising the one-line refusal (a ValueError) when the table is damaged."""
    check = inspect(path)
    if not check.ok:
        raise DamagedTable(check.refusal())
    return check


class DamagedTable(ValueError):
    """A results table that is not what the runner wrote; the message names the repair."""


def is_run_table(path: Path) -> bool:
    """Whether a CSV is a run table (its header has ``run_key`` and ``params_json``)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            first = f.readline()
    except OSError:
        return False
    return all(c in first for c in IDENTITY_COLUMNS)


# ---------------------------------------------------------------------------------------------
# Repairing a table: bad lines move aside, good rows stay, nothing is deleted


@dataclass
class Repair:
    path: Path
    moved_lines: list[Problem] = field(default_factory=list)
    moved_to: Path | None = None  # where the bad lines (or the whole file) went
    kept_rows: int = 0
    stale_sidecar: Path | None = None  # where a sidecar that no longer counts the rows went

    def summary(self) -> str:
        if self.moved_to is None and self.stale_sidecar is None:
            return f"ok: {self.path} ({self.kept_rows} rows), nothing to repair"
        parts = []
        if self.moved_to is not None and not self.moved_lines:
            parts.append(f"the whole file was unusable and moved to {self.moved_to}; the next run starts it afresh")
        elif self.moved_to is not None:
            lines = ", ".join(str(p.line) for p in self.moved_lines)
            parts.append(f"kept {self.kept_rows} rows, moved line(s) {lines} to {self.moved_to}")
        if self.stale_sidecar is not None:
            parts.append(f"its sidecar no longer counted the rows and was moved to {self.stale_sidecar} (the runner "
                         "writes a new one when every run is done)")
        return f"repaired: {self.path}: " + "; ".join(parts) + "; re-run the experiment to redo the missing runs"


def _aside(path: Path, tag: str, stamp: str) -> Path:
    """A free name beside ``path`` for a file moved aside: ``<stem>.<tag>-<stamp><suffix>``."""
    target = path.with_name(f"{path.stem}.{tag}-{stamp}{path.suffix}")
    k = 1
    while target.exists():
        target = path.with_name(f"{path.stem}.{tag}-{stamp}-{k}{path.suffix}")
        k += 1
    return target


def _ended(line: str) -> str:
    return line if line.endswith("\n") else line + "\n"


def repair(path: str | Path) -> Repair:
    """Move the bad lines of a run table aside (see the module docstring); refuses while a run holds it."""
    import os
    from datetime import datetime, timezone

    from . import atomic

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such results table; give the CSV to repair (list them with "
                                f"{CHECK_COMMAND})")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    with atomic.exclusive(path, "run or repair"), atomic.locked(path):
        check = inspect(path)
        out = Repair(path, kept_rows=len(check.good))
        if check.ok:
            return out
        if check.header_bad:
            out.moved_to = _aside(path, "rejected", stamp)
            os.replace(path, out.moved_to)
            if sidecar_path(path).is_file():
                out.stale_sidecar = _aside(sidecar_path(path), "stale", stamp)
                os.replace(sidecar_path(path), out.stale_sidecar)
            return out
        out.moved_lines = [p for p in check.problems if p.line]
        if out.moved_lines:
            out.moved_to = rejected_path(path)
            old = out.moved_to.read_text() if out.moved_to.is_file() else ""
            record = "".join(f"# {stamp} {path.name} line {p.line}: {p.reason}\n" + _ended(check.lines[p.line - 1])
                             for p in out.moved_lines)
            atomic.write_text(out.moved_to, old + record)  # first: a kill here leaves the table as it was
            kept = [check.lines[0]] + [check.lines[k - 1] for k in check.good]
            atomic.write_text(path, "".join(_ended(line) for line in kept))
        if check.sidecar_rows is not None and len(check.good) != check.sidecar_rows:
            out.stale_sidecar = _aside(sidecar_path(path), "stale", stamp)
            os.replace(sidecar_path(path), out.stale_sidecar)
    return out


# ---------------------------------------------------------------------------------------------
# storage-scaling results check | repair


def tables_in(targets: list[str] | None) -> list[Path]:
    """The run tables named (files, or folders searched for them), default the results folder."""
    from . import paths

    found: list[Path] = []
    for target in targets or [str(paths.results_dir())]:
        p = Path(target)
        if p.is_dir():
            found += [f for f in sorted(p.glob("*.csv")) if is_run_table(f)]
        elif p.is_file():
            found.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or folder; give results tables (CSV) or a folder holding them")
    return found


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="action")
    sub.required = True
    for action, text in (("check", "check run tables against the row schema; exit 1 when one is damaged"),
                         ("repair", "move the bad lines of damaged run tables aside (never deleted), keep every "
                                    "good row; a re-run then redoes only the runs that left")):
        p = sub.add_parser(action, help=text, description=text)
        p.add_argument("tables", nargs="*", help="CSV files or folders (default: the results folder, "
                                                 "$STORAGE_SCALING_RESULTS or results/)")
        p.add_argument("--debug", action="store_true", help="show the traceback of an input error")


def cmd(args) -> int:
    tables = tables_in(args.tables)
    if not tables:
        print("no run tables found (a run table is a CSV whose header has run_key and params_json)")
        return 0
    damaged = 0
    for path in tables:
        if args.action == "repair":
            print(repair(path).summary())
            continue
        check = inspect(path)
        if check.ok:
            print(f"ok: {path} ({len(check.good)} rows{', as its sidecar records' * (check.sidecar_rows is not None)})")
            continue
        damaged += 1
        print(f"damaged: {path}")
        for p in check.problems:
            print(f"  {'line ' + str(p.line) if p.line else 'table'}: {p.reason}")
    if damaged:
        print(f"{damaged} damaged table(s); repair with: {REPAIR_COMMAND} PATH")
    return 1 if damaged else 0

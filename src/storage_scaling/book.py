"""The book pipeline: run every notebook in order with papermill, then render with Jupyter Book.

    python -m storage_scaling.book                       # publish profile, all notebooks, build
    python -m storage_scaling.book --profile smoke       # toy sizes (tests, CI)
    python -m storage_scaling.book --only 03_scaling_law -p n_boot=200 --no-build

Papermill executes (in order, with the chosen profile) and writes ``book/executed/NN_name.ipynb``;
Jupyter Book only renders (``execute_notebooks: off``), with warnings as errors, and the build
fails if any page shows a Python traceback, loads anything from the network or shows an image
whose file is missing.

Bad input (an unknown --only name, a -p key that no selected notebook's parameters cell has, a
-p value whose type differs from the default's, --build-only before the notebooks ran, an executed
notebook cut short: re-run it with --only) is refused before any notebook runs, in one line on
stderr with exit status 2 (--debug: the traceback). A failing notebook or book build is reported
briefly with exit status 1.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from . import atomic, errors, paths, provenance, threads
from .tables import PROFILES, check_profile

NOTEBOOK_DIR = "notebooks"
EXECUTED_DIR = Path("book") / "executed"
PROVENANCE_PAGE = Path("book") / "provenance.md"
TRACEBACK_MARKERS = ("Traceback (most recent call last)", 'class="output traceback', "ipython-traceback")


class NotebookFailed(RuntimeError):
    """A notebook raised; the message names the notebook, the cell and the error."""


class BookBuildFailed(RuntimeError):
    """Jupyter Book failed, or a built page contains a traceback or a network reference."""


@dataclass(frozen=True)
class Notebook:
    path: Path

    @property
    def name(self) -> str:  # "03_scaling_law"
        return self.path.stem

    @property
    def number(self) -> str:  # "03"
        return self.name.split("_", 1)[0]

    @property
    def short(self) -> str:  # "scaling_law"
        return self.name.split("_", 1)[1] if "_" in self.name else self.name

    def executed_path(self, root: Path) -> Path:
        return root / EXECUTED_DIR / f"{self.name}.ipynb"


def discover(root: Path) -> list[Notebook]:
    """Notebooks in run order: ``notebooks/NN_name.py`` sorted by their number."""
    found = sorted((root / NOTEBOOK_DIR).glob("[0-9][0-9]_*.py"))
    return [Notebook(p) for p in found]


def select(notebooks: list[Notebook], only: list[str] | None) -> list[Notebook]:
    if not only:
        return notebooks
    chosen = []
    for want in only:
        match = [nb for nb in notebooks if want in (nb.number, nb.name, nb.short, nb.path.name)]
        if not match:
            names = ", ".join(nb.name for nb in notebooks)
            raise ValueError(f"--only {want!r} matches no notebook; choose from: {names}")
        chosen += match
    return chosen


def parse_param(text: str) -> tuple[str, object]:
    """``key=value`` with value read as a Python literal when possible (``n=3``, ``d=[1,2]``)."""
    if "=" not in text:
        raise ValueError(f"parameter {text!r} must look like key=value")
    key, raw = text.split("=", 1)
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return key.strip(), value


class _NoLiteralDefault:
    """The default of a parameter whose value is not a Python literal: any value is accepted."""

    def __repr__(self) -> str:
        return "<not a literal>"


NO_LITERAL_DEFAULT = _NoLiteralDefault()


def _parameters_cell(nb: Notebook):
    """The notebook's one ``parameters`` cell (jupytext source)."""
    import jupytext

    source = jupytext.read(nb.path)
    cells = [c for c in source.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise NotebookFailed(f"{nb.path} has {len(cells)} parameters cells; papermill needs exactly one")
    return source, cells[0]


def notebook_parameters(nb: Notebook) -> dict[str, object]:
    """Name -> default value of every variable assigned in the notebook's parameters cell.

    A default that is not a Python literal is :data:`NO_LITERAL_DEFAULT` (its type is unknown).
    """
    _, cell = _parameters_cell(nb)
    try:
        tree = ast.parse(cell.source)
    except SyntaxError as exc:
        raise NotebookFailed(f"the parameters cell of {nb.path} is not valid Python: {exc}") from None
    found: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        try:
            default = ast.literal_eval(value)
        except (ValueError, SyntaxError, TypeError):
            default = NO_LITERAL_DEFAULT
        for target in targets:
            if isinstance(target, ast.Name):
                found[target.id] = default
    return found


def _fits(default: object, value: object) -> bool:
    """Whether ``value`` has the type of ``default`` (an int may stand for a float)."""
    if default is NO_LITERAL_DEFAULT or default is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, (list, tuple)):
        if not isinstance(value, (list, tuple)):
            return False
        # elements: any number stands for a number (a list of distances [1, 2] may take 0.5)
        kinds = [0.0 if isinstance(d, int) and not isinstance(d, bool) else d for d in default]
        return not default or all(any(_fits(d, v) for d in kinds) for v in value)
    return isinstance(value, type(default))


def _type_words(default: object) -> str:
    if isinstance(default, bool):
        return "True or False"
    if isinstance(default, int):
        return "an int"
    if isinstance(default, float):
        return "a number"
    if isinstance(default, str):
        return "a string"
    if isinstance(default, (list, tuple)):
        return f"a {type(default).__name__} like the default"
    return f"a {type(default).__name__}"


def check_params(notebooks: list[Notebook], params: dict) -> dict[str, dict]:
    """Check ``-p`` overrides against the parameters cells of the selected notebooks.

    Every key must be a parameter of at least one of them and every value must have the type of
    that parameter's default (an int for a float is fine). Returns, per notebook name, the
    overrides that notebook declares (only those are injected into it). Raises ``ValueError``
    naming the key, the value and what is expected.
    """
    declared = {nb.name: notebook_parameters(nb) for nb in notebooks}
    valid = sorted({key for names in declared.values() for key in names} - {"profile"})
    names = ", ".join(nb.name for nb in notebooks)
    for key, value in params.items():
        if key == "profile":
            raise ValueError(f"-p profile={value}: choose the profile with --profile {value}, not with -p")
        if not any(key in found for found in declared.values()):
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(f"-p {key}={value!r}: {key!r} is not a parameter of {names}; {hint}"
                             f"valid keys: {', '.join(valid) or '(none)'}")
        for nb_name, found in declared.items():
            if key not in found or _fits(found[key], value):
                continue
            default = found[key]
            got = (f"the text {value!r}, which is not a Python literal (check brackets and quotes)"
                   if isinstance(value, str) else f"{value!r} ({type(value).__name__})")
            example = f"{default!r}" if not isinstance(default, str) else "'text'"
            raise ValueError(f"-p {key}: expected {_type_words(default)} (default {default!r} in "
                             f"{nb_name}) but got {got}; write e.g. -p \"{key}={example}\"")
    return {nb_name: {k: v for k, v in params.items() if k in found} for nb_name, found in declared.items()}


def parse_params(texts: list[str]) -> dict[str, object]:
    """``-p`` arguments to a dict; a key given twice is an error."""
    params: dict[str, object] = {}
    for text in texts:
        key, value = parse_param(text)
        if not key:
            raise ValueError(f"-p {text!r}: the key before '=' is empty; write -p key=value")
        if key in params:
            raise ValueError(f"-p {key} is given twice ({params[key]!r} and {value!r}); keep one")
        params[key] = value
    return params


def _failing_cell(nb_node) -> tuple[int, str]:
    """The first cell whose outputs hold an error: (index, first line of source)."""
    for index, cell in enumerate(nb_node.cells):
        if cell.get("cell_type") != "code":
            continue
        if any(out.get("output_type") == "error" for out in cell.get("outputs", [])):
            first = next((line for line in cell.source.splitlines() if line.strip()), "")
            return index, first
    return -1, ""


def execute(nb: Notebook, root: Path, profile: str, extra: dict | None = None) -> Path:
    """Run one notebook with papermill; on failure name the notebook and the failing cell."""
    import nbformat
    import papermill

    out = nb.executed_path(root)
    out.parent.mkdir(parents=True, exist_ok=True)
    source, _ = _parameters_cell(nb)
    parameters = {"profile": profile, **(extra or {})}
    tmp = out.with_name(f".{nb.name}.running.ipynb")
    try:
        papermill.execute_notebook(
            source, str(tmp), parameters=parameters, kernel_name="python3",
            cwd=str(root), progress_bar=False, log_output=False,
        )
    except papermill.PapermillExecutionError as exc:
        try:
            index, first = _failing_cell(nbformat.read(tmp, as_version=4)) if tmp.exists() else (-1, "")
        except (ValueError, KeyError, TypeError, AttributeError, nbformat.ValidationError):
            index, first = -1, ""  # a partial notebook cut short: the error itself still names the cause
        raise NotebookFailed(
            f"notebook {nb.path.name} failed in cell {index} ({first!r}): {exc.ename}: {exc.evalue}\n"
            f"The partially executed notebook is at {tmp}"
        ) from None
    os.replace(tmp, out)
    return out


# ---------------------------------------------------------------------------------------------
# Provenance page


def read_executed(nb: Notebook, root: Path, profile: str = "publish"):
    """The executed notebook ``book/executed/NN_name.ipynb`` of ``nb`` (nbformat v4).

    A file cut short (a killed run, a full disk, a bad copy) or otherwise not a notebook is a
    ValueError in one line naming the file and the command that re-runs it."""
    import nbformat

    path = nb.executed_path(root)
    try:
        node = nbformat.read(path, as_version=4)
        if not isinstance(node.get("metadata"), dict) or not isinstance(node.get("cells"), list):
            raise ValueError("it has no metadata or cells")
    except (ValueError, KeyError, TypeError, AttributeError, nbformat.ValidationError) as exc:
        # UnicodeDecodeError and json's and nbformat's NotJSONError are ValueErrors too
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        why = "invalid JSON, cut short?" if isinstance(exc, (nbformat.reader.NotJSONError, json.JSONDecodeError)) \
            else f"{type(exc).__name__}: {first[:100]}"
        shown = path.relative_to(root) if path.is_relative_to(root) else path
        raise ValueError(
            f"executed notebook {shown} is not a readable notebook ({why}); re-run it: "
            f"`python -m storage_scaling.book --only {nb.name} --profile {profile} --no-build`") from exc
    return node


GLUE_RECORD = "application/papermill.record/"  # where myst_nb's glue keeps a value's MIME bundle
GLUE_TEXT = GLUE_RECORD + "text/plain"  # ... and its repr


def glued_text(node) -> dict[str, str]:
    """Every value an executed notebook glued, as the text a chapter prints (strings unquoted;
    tables and figures as their repr), by glue name: for checks that re-derive what the book says."""
    out = {}
    for cell in node.get("cells", []):
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            text = output.get("data", {}).get(GLUE_TEXT)
            if name and isinstance(text, str):
                try:
                    value = ast.literal_eval(text)
                except (ValueError, SyntaxError):
                    value = text
                out[name] = value if isinstance(value, str) else text
    return out


def glued_values(node) -> dict[str, str]:
    """Every value an executed notebook glued, comparable across runs: text as printed, a table as
    its HTML (Styler's random ids made constant), a figure as the SHA256 of its PNG."""
    import hashlib

    out = glued_text(node)
    for cell in node.get("cells", []):
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            bundle = output.get("data", {})
            if not name:
                continue
            if GLUE_RECORD + "text/html" in bundle:
                out[name] = re.sub(r"T_[0-9a-f]{5}", "T_id", bundle[GLUE_RECORD + "text/html"])
            elif GLUE_RECORD + "image/png" in bundle:
                out[name] = "png sha256 " + hashlib.sha256(bundle[GLUE_RECORD + "image/png"].encode()).hexdigest()
    return out


def glued_snapshot(root: Path, notebooks: list[Notebook] | None = None) -> dict[str, dict[str, str]]:
    """Every glued value of every executed notebook (:func:`glued_values`), by notebook: what a
    refactor must leave unchanged. ``--glued PATH`` writes it; diff two such files."""
    notebooks = discover(root) if notebooks is None else notebooks
    return {nb.name: glued_values(read_executed(nb, root)) for nb in notebooks if nb.executed_path(root).exists()}


def check_executed(root: Path, notebooks: list[Notebook], profile: str = "publish") -> None:
    """Read every executed copy of ``notebooks`` that exists (:func:`read_executed` refuses a
    damaged one), so that a run refuses before it starts, not after its last notebook."""
    for nb in notebooks:
        if nb.executed_path(root).exists():
            read_executed(nb, root, profile)


def provenance_rows(root: Path, notebooks: list[Notebook]) -> list[dict]:
    rows = []
    for nb in notebooks:
        path = nb.executed_path(root)
        if not path.exists():
            continue
        meta = read_executed(nb, root).metadata.get("papermill", {})
        rows.append({
            "notebook": nb.name,
            "parameters": meta.get("parameters", {}),
            "duration_s": meta.get("duration"),
            "start": meta.get("start_time"),
            "end": meta.get("end_time"),
            "exception": meta.get("exception"),
        })
    return rows


def recorded_compute(csv_path: Path) -> str:
    """The compute a committed table's rows record (see :func:`write_provenance_page`), or "n/a"
    for tables whose rows record none (compression, fits, simulations)."""
    import pandas as pd

    from .experiments import report
    from .learn import jpeg_dl

    if not csv_path.is_file():
        return "n/a"
    try:
        frame = pd.read_csv(csv_path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError):
        return "n/a (unreadable)"
    if {"evaluations", "train_seconds", "eval_seconds", "bpp_seconds"} <= set(frame.columns):  # chapter 7's table
        seconds = jpeg_dl.timing(frame)["total"]
    elif {"run_key", "train_seconds"} <= set(frame.columns):
        seconds = 3600 * report.run_hours({csv_path.stem: frame})["hours"].sum(min_count=1)
    else:
        return "n/a"
    if seconds != seconds:  # NaN: a training without its seconds
        return "not recorded"
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def write_provenance_page(root: Path, notebooks: list[Notebook], profile: str) -> Path:
    """A MyST page from papermill metadata, package versions, device and the committed tables."""
    lines = ["# Provenance", "",
             "Generated by the book pipeline at every build: how each notebook was executed, with "
             "what software and on what machine, and where every committed result table came from.",
             "", f"- Profile of this build: `{profile}`",
             f"- Code version: `{provenance.code_version()}`",
             f"- Device: `{provenance.device()}`", f"- Built at: {provenance.now()}", "",
             "## Notebook executions", "",
             "| notebook | parameters | duration (s) | finished |", "|---|---|---|---|"]
    for row in provenance_rows(root, notebooks):
        params = ", ".join(f"`{k}={v!r}`" for k, v in row["parameters"].items())
        duration = f"{row['duration_s']:.1f}" if row["duration_s"] is not None else "n/a"
        lines.append(f"| [{row['notebook']}](executed/{row['notebook']}.ipynb) | {params} | {duration} | {row['end'] or ''} |")
    lines += ["", "## Committed result tables (`results/`)", "",
              "*Compute recorded in the rows* sums each training's own seconds, once per training, across "
              "every sitting that wrote the table (training tables: fits and features or training; chapter 7: "
              "training, scoring and bits per pixel); *last call* is how long the call that finished the table "
              "took, which for a table resumed over several sittings is only its last part.", "",
              "| table | rows | code version | device | finished | compute recorded in the rows | last call (s) |",
              "|---|---|---|---|---|---|---|"]
    for meta_path in sorted(paths.results_dir().glob("*.json")):
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError:
            continue
        if not isinstance(meta, dict) or "rows" not in meta:
            continue  # not a table's sidecar (a run list, the GPU staging manifest)
        lines.append(f"| `{meta_path.stem}` | {meta.get('rows', '')} | `{meta.get('code_version', '')}` | "
                     f"{meta.get('device', '')} | {meta.get('finished_at', '')} | "
                     f"{recorded_compute(meta_path.with_suffix('.csv'))} | {meta.get('seconds', '')} |")
    lines += ["", "## Package versions", "", "| package | version |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in provenance.package_versions().items()]
    out = root / PROVENANCE_PAGE
    atomic.write_text(out, "\n".join(lines) + "\n")
    return out


# ---------------------------------------------------------------------------------------------
# Building and checking the HTML

NETWORK_REFERENCE = re.compile(r"<(script|link|img)\b[^>]*\b(src|href)\s*=\s*[\"']https?://", re.IGNORECASE)


class _ImageSources(HTMLParser):
    """Collects the ``src`` of every ``<img>`` of a page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.sources: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            src = dict(attrs).get("src")
            if src is not None:
                self.sources.append(src)

    handle_startendtag = handle_starttag


def missing_images(page: Path, html_dir: Path, text: str | None = None) -> list[str]:
    """The ``<img src>`` of ``page`` that name a local file which does not exist.

    Relative sources resolve against the page's folder, ``/...`` against ``html_dir``; ``data:``
    and network sources are not files (the network ones are reported by :func:`check_html`).
    """
    parser = _ImageSources()
    parser.feed(page.read_text(errors="replace") if text is None else text)
    missing = []
    for src in parser.sources:
        parts = urlsplit(src)
        if parts.scheme or parts.netloc:  # data:, http(s):, //host/...
            continue
        local = unquote(parts.path)
        if not local:
            missing.append(src)
            continue
        target = (html_dir / local.lstrip("/")) if local.startswith("/") else (page.parent / local)
        if not target.is_file():
            missing.append(src)
    return missing


def check_html(html_dir: Path) -> None:
    """Fail when a page shows a traceback, loads anything from the network, or shows an image
    whose file is not in the built HTML."""
    problems = []
    for page in sorted(html_dir.rglob("*.html")):
        text = page.read_text(errors="replace")
        if any(marker in text for marker in TRACEBACK_MARKERS):
            problems.append(f"{page.relative_to(html_dir)}: contains a Python traceback")
        match = NETWORK_REFERENCE.search(text)
        if match:
            problems.append(f"{page.relative_to(html_dir)}: loads from the network: {match.group(0)[:120]}")
        for src in missing_images(page, html_dir, text):
            problems.append(f"{page.relative_to(html_dir)}: <img> points to a missing file: {src}")
    if problems:
        raise BookBuildFailed("the built book has problems:\n  " + "\n  ".join(problems))


BUILD_LOG = Path("_build") / "jupyter-book.log"
PROBLEM_LINE = re.compile(r"\b(WARNING|ERROR|CRITICAL|SEVERE)\b|Error:|Exception")


def build_html(root: Path) -> Path:
    # --all: chapters glue numbers from the executed notebooks, and Sphinx does not track that
    # dependency, so an incremental build would keep a chapter's numbers from the previous run.
    command = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build", str(root), "--builder", "html",
               "--all", "-W", "-n", "--keep-going"]
    done = subprocess.run(command, cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        log = root / BUILD_LOG
        atomic.write_text(log, done.stdout + done.stderr)
        lines = (done.stdout + done.stderr).splitlines()
        problems = [line.strip() for line in lines if PROBLEM_LINE.search(line)] or lines[-15:]
        shown = problems[:10] + ([f"... and {len(problems) - 10} more"] if len(problems) > 10 else [])
        raise BookBuildFailed(f"jupyter-book build failed (exit {done.returncode}); full log: {log}\n  "
                              + "\n  ".join(shown))
    html = root / "_build" / "html"
    check_html(html)
    return html / "index.html"


def missing_executed(root: Path, notebooks: list[Notebook]) -> list[Notebook]:
    """The notebooks whose executed copy (``book/executed/NN_name.ipynb``) does not exist."""
    return [nb for nb in notebooks if not nb.executed_path(root).is_file()]


def _run_first(profile: str) -> str:
    return f"python -m storage_scaling.book --profile {profile} --no-build"


def build_only(root: Path | None = None) -> Path:
    """Render the book from the notebooks already executed (``--build-only``).

    Refuses, in one line and before building, when a notebook of ``notebooks/`` has no executed
    copy: every chapter pastes numbers from them, and the build would only list missing glue keys;
    and when an executed copy is not a readable notebook (:func:`read_executed`).
    """
    root = root or paths.repo_root()
    notebooks = discover(root)
    if not notebooks:
        raise ValueError(f"no notebooks found in {root / NOTEBOOK_DIR}")
    missing = missing_executed(root, notebooks)
    if missing:
        which = ("none of the notebooks has been run" if len(missing) == len(notebooks)
                 else "not run yet: " + ", ".join(nb.name for nb in missing))
        raise FileNotFoundError(
            f"--build-only renders the executed notebooks in {EXECUTED_DIR}/, but {which}; run the "
            f"notebooks first with `{_run_first('publish')}` (or drop --build-only to run and build)")
    write_provenance_page(root, notebooks, executed_profile(root, notebooks))
    return build_html(root)


def executed_profile(root: Path, notebooks: list[Notebook]) -> str:
    """The profile the executed notebooks ran with (several, comma-separated, if they differ)."""
    found = {str(row["parameters"].get("profile", "unknown")) for row in provenance_rows(root, notebooks)}
    return ", ".join(sorted(found)) or "unknown"


def run(profile: str = "publish", only: list[str] | None = None, params: dict | None = None,
        build: bool = True, root: Path | None = None) -> Path | None:
    """Execute the chosen notebooks in order, write the provenance page, then build the book.

    Everything that can be wrong with the request (profile, ``only``, the keys and types of
    ``params``, executed notebooks the build needs) is checked before the first notebook runs.
    """
    from tqdm.auto import tqdm

    check_profile(profile)
    root = root or paths.repo_root()
    every = discover(root)
    notebooks = select(every, only)
    if not notebooks:
        raise ValueError(f"no notebooks found in {root / NOTEBOOK_DIR}")
    overrides = check_params(notebooks, dict(params or {}))
    if build:
        absent = [nb for nb in missing_executed(root, every) if nb not in notebooks]
        if absent:
            names = ", ".join(nb.name for nb in absent)
            chosen = ", ".join(nb.name for nb in notebooks)
            raise FileNotFoundError(
                f"the book also needs the executed notebooks {names}, which are not in {EXECUTED_DIR}/ "
                f"yet: run them first with `{_run_first(profile)}`, or add --no-build to run only {chosen}")
    # the provenance page reads every executed notebook after the run: a damaged one that this run
    # does not rewrite is refused now, not after the last notebook
    check_executed(root, [nb for nb in every if nb not in notebooks], profile)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    threads.single_blas_thread()  # inherited by every kernel: scipy's small optimizers hate contention
    with tqdm(notebooks, desc=f"notebooks ({profile})", unit="nb") as bar:
        for nb in bar:
            bar.set_postfix_str(nb.name)
            started = time.perf_counter()
            execute(nb, root, profile, overrides[nb.name])
            tqdm.write(f"  {nb.name}: {time.perf_counter() - started:.0f} s")
    write_provenance_page(root, every, executed_profile(root, every))
    if not build:
        return None
    index = build_html(root)
    print(f"Book built: {index}")
    return index


PROG = "python -m storage_scaling.book"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", choices=PROFILES, help="profile of the notebooks to run (default: publish)")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="run only this notebook (number, name or short name); repeatable")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                        help="override a parameter of the selected notebooks (VALUE is a Python literal; "
                             "the key must be in a notebook's parameters cell, the type must match its default)")
    parser.add_argument("--no-build", action="store_true", help="execute notebooks only")
    parser.add_argument("--build-only", action="store_true",
                        help="render the already executed notebooks (book/executed/) without running them")
    parser.add_argument("--glued", metavar="PATH",
                        help="write every value the executed notebooks glued to PATH (JSON) and stop: run it "
                             "before and after a change and diff the two files")
    parser.add_argument(errors.DEBUG_FLAG, action="store_true", help="show the traceback of an error")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return parser


def _main(argv: list[str]) -> int:
    return cmd(_parser().parse_args(argv))


def cmd(args: argparse.Namespace) -> int:
    """Run the notebooks and/or build the book as ``args`` say (``storage-scaling book``)."""
    if args.glued:
        if args.build_only or args.param or args.no_build or args.profile:
            raise ValueError("--glued only reads the executed notebooks (book/executed/); run them first, then "
                             "call --glued alone (with --only to pick notebooks)")
        root = paths.repo_root()
        snapshot = glued_snapshot(root, select(discover(root), args.only))
        atomic.write_text(Path(args.glued), json.dumps(snapshot, indent=1, sort_keys=True) + "\n")
        print(f"{sum(map(len, snapshot.values()))} glued values of {len(snapshot)} notebooks written to {args.glued}")
        return 0
    if args.build_only:
        ignored = [flag for flag, given in (("--profile", args.profile is not None), ("--only", bool(args.only)),
                                            ("-p", bool(args.param)), ("--no-build", args.no_build)) if given]
        if ignored:
            raise ValueError(f"--build-only renders the notebooks already executed, so {', '.join(ignored)} "
                             f"would have no effect: drop {'them' if len(ignored) > 1 else 'it'}, or drop "
                             f"--build-only to run the notebooks")
        print(f"Book built: {build_only()}")
        return 0
    run(args.profile or "publish", args.only, parse_params(args.param), build=not args.no_build)
    return 0


def main(argv=None) -> int:
    """Bad input: one line on stderr, exit 2 (``errors.run_main``). A failed notebook or build:
    a short message naming the notebook/cell or the pages, exit 1. ``--debug``: the traceback."""
    return errors.run_main(_main, argv, PROG, failures=(NotebookFailed, BookBuildFailed))


if __name__ == "__main__":
    sys.exit(main())

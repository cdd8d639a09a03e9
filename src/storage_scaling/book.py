"""The book pipeline: run every notebook in order with papermill, then render with Jupyter Book.

    python -m storage_scaling.book                       # publish profile, all notebooks, build
    python -m storage_scaling.book --profile smoke       # toy sizes (tests, CI)
    python -m storage_scaling.book --only 03_scaling_law -p n_boot=200 --no-build

Papermill executes (in order, with the chosen profile) and writes ``book/executed/NN_name.ipynb``;
Jupyter Book only renders (``execute_notebooks: off``), with warnings as errors, and the build
fails if any page shows a Python traceback.
"""

from __future__ import annotations

import argparse
import ast
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

from . import atomic, paths, provenance
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
        match = [nb for nb in notebooks if want in (nb.name, nb.short, nb.path.name)]
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
    import jupytext
    import nbformat
    import papermill

    out = nb.executed_path(root)
    out.parent.mkdir(parents=True, exist_ok=True)
    source = jupytext.read(nb.path)
    n_param_cells = sum("parameters" in c.get("metadata", {}).get("tags", []) for c in source.cells)
    if n_param_cells != 1:
        raise NotebookFailed(f"{nb.path} has {n_param_cells} parameters cells; papermill needs exactly one")
    parameters = {"profile": profile, **(extra or {})}
    tmp = out.with_name(f".{nb.name}.running.ipynb")
    try:
        papermill.execute_notebook(
            source, str(tmp), parameters=parameters, kernel_name="python3",
            cwd=str(root), progress_bar=False, log_output=False,
        )
    except papermill.PapermillExecutionError as exc:
        index, first = _failing_cell(nbformat.read(tmp, as_version=4)) if tmp.exists() else (-1, "")
        raise NotebookFailed(
            f"notebook {nb.path.name} failed in cell {index} ({first!r}): {exc.ename}: {exc.evalue}\n"
            f"The partially executed notebook is at {tmp}"
        ) from None
    os.replace(tmp, out)
    return out


# ---------------------------------------------------------------------------------------------
# Provenance page


def provenance_rows(root: Path, notebooks: list[Notebook]) -> list[dict]:
    import nbformat

    rows = []
    for nb in notebooks:
        path = nb.executed_path(root)
        if not path.exists():
            continue
        meta = nbformat.read(path, as_version=4).metadata.get("papermill", {})
        rows.append({
            "notebook": nb.name,
            "parameters": meta.get("parameters", {}),
            "duration_s": meta.get("duration"),
            "start": meta.get("start_time"),
            "end": meta.get("end_time"),
            "exception": meta.get("exception"),
        })
    return rows


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
              "| table | rows | code version | device | finished | compute time (s) |", "|---|---|---|---|---|---|"]
    for meta_path in sorted(paths.results_dir().glob("*.json")):
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError:
            continue
        lines.append(f"| `{meta_path.stem}` | {meta.get('rows', '')} | `{meta.get('code_version', '')}` | "
                     f"{meta.get('device', '')} | {meta.get('finished_at', '')} | {meta.get('seconds', '')} |")
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


def build_html(root: Path) -> Path:
    # --all: chapters glue numbers from the executed notebooks, and Sphinx does not track that
    # dependency, so an incremental build would keep a chapter's numbers from the previous run.
    command = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build", str(root), "--builder", "html",
               "--all", "-W", "-n", "--keep-going"]
    done = subprocess.run(command, cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-40:])
        raise BookBuildFailed(f"jupyter-book build failed (exit {done.returncode}):\n{tail}")
    html = root / "_build" / "html"
    check_html(html)
    return html / "index.html"


def run(profile: str = "publish", only: list[str] | None = None, params: dict | None = None,
        build: bool = True, root: Path | None = None) -> Path | None:
    """Execute the chosen notebooks in order, write the provenance page, then build the book."""
    from tqdm.auto import tqdm

    check_profile(profile)
    root = root or paths.repo_root()
    notebooks = select(discover(root), only)
    if not notebooks:
        raise ValueError(f"no notebooks found in {root / NOTEBOOK_DIR}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # One BLAS thread per kernel: on a busy 2-core machine a threaded OpenBLAS makes scipy's
    # small optimizers tens of times slower through contention.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    with tqdm(notebooks, desc=f"notebooks ({profile})", unit="nb") as bar:
        for nb in bar:
            bar.set_postfix_str(nb.name)
            started = time.perf_counter()
            execute(nb, root, profile, params)
            tqdm.write(f"  {nb.name}: {time.perf_counter() - started:.0f} s")
    write_provenance_page(root, discover(root), profile)
    if not build:
        return None
    index = build_html(root)
    print(f"Book built: {index}")
    return index


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m storage_scaling.book", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="publish", choices=PROFILES)
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="run only this notebook (number, name or short name); repeatable")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                        help="override a notebook parameter (applies to every selected notebook)")
    parser.add_argument("--no-build", action="store_true", help="execute notebooks only")
    parser.add_argument("--build-only", action="store_true", help="render the already executed notebooks")
    args = parser.parse_args(argv)
    try:
        params = dict(parse_param(p) for p in args.param)
        if args.build_only:
            root = paths.repo_root()
            write_provenance_page(root, discover(root), args.profile)
            print(f"Book built: {build_html(root)}")
        else:
            run(args.profile, args.only, params, build=not args.no_build)
    except (NotebookFailed, BookBuildFailed, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

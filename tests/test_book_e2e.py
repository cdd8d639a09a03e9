"""End to end: every notebook runs in the smoke profile and the book builds; the publish profile
builds from the committed result tables. Minutes on 2 cores.

The two builds run side by side, the smoke one in a copy of this checkout (its own executed
notebooks and HTML), the publish one here (``test_claims`` reads its notebooks): most of a build
is one thread (kernels starting, Sphinx writing pages), so on 2 cores the pair takes little more
than the longer one."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from storage_scaling import paths, plots

ROOT = paths.repo_root()
TABLE = re.compile(r"<table\b.*?</table>", re.IGNORECASE | re.DOTALL)
MAX_ROWS = plots.MAX_TABLE_ROWS  # chapters show summaries; raw rows stay in the executed notebooks
NETWORK = re.compile(r"<(script|link|img)\b[^>]*\b(src|href)\s*=\s*[\"']https?://", re.IGNORECASE)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.xdist_group("book"),  # these share book/executed/: one worker, in file order
    pytest.mark.skipif(paths.data_root() is None, reason="needs ../shared/data (offline data packs)"),
]


def chapter_files():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [c["file"] for part in toc["parts"] for c in part["chapters"]]


def start(profile: str, root: Path, log: Path, env: dict) -> subprocess.Popen:
    """The book pipeline of ``root`` in ``profile``, in the background, its output in ``log``."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **env}
    env.pop("STORAGE_SCALING_RESULTS", None)
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "storage_scaling.book", "--profile", profile],
                                cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """Both builds started at once: ``{profile: (process, checkout, log)}``; each test waits for its own."""
    copy = tmp_path_factory.mktemp("smoke-book") / "checkout"
    shutil.copytree(ROOT, copy, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".cache", "_build", "executed", "__pycache__", ".pytest_cache", "*.egg-info"))
    (copy / ".git").symlink_to(ROOT / ".git")  # the provenance page asks git for the code version
    smoke_env = {"PYTHONPATH": str(copy / "src"), paths.CACHE_ENV: str(paths.cache_dir()),
                 paths.DATA_ENV: str(paths.data_root())}
    logs = {profile: copy.parent / f"{profile}.log" for profile in ("smoke", "publish")}
    running = {"smoke": (start("smoke", copy, logs["smoke"], smoke_env), copy, logs["smoke"]),
               "publish": (start("publish", ROOT, logs["publish"], {}), ROOT, logs["publish"])}
    yield running
    for process, _, _ in running.values():
        if process.poll() is None:  # a test failed before waiting: stop its build
            process.kill()
            process.wait()


def finished(builds, profile: str) -> Path:
    """Wait for ``profile``'s build; its HTML folder, or the failure with the end of its output."""
    process, root, log = builds[profile]
    code = process.wait()
    assert code == 0, log.read_text(errors="replace")[-6000:]
    return root / "_build" / "html"


def check_pages(html: Path):
    assert (html / "index.html").is_file()
    for page in chapter_files():
        assert (html / f"{page}.html").is_file(), f"missing page {page}.html"
    for path in html.rglob("*.html"):
        text = path.read_text(errors="replace")
        assert not NETWORK.search(text), f"{path} loads from the network"
        assert "Traceback (most recent call last)" not in text, f"{path} shows a traceback"
    for page in chapter_files():
        if page.startswith("book/chapters/"):
            for table in TABLE.findall((html / f"{page}.html").read_text()):
                rows = table.count("<tr") - 1  # the header row
                assert rows <= MAX_ROWS, f"{page} shows a table of {rows} rows (at most {MAX_ROWS}: summarise)"
    mathjax = list((html / "_static").rglob("*mathjax*"))
    assert mathjax, "MathJax must be bundled for offline reading"


# Chapters whose every table is committed in results/: in publish they must show real numbers.
COMMITTED_CHAPTERS = ("01_compression", "03_scaling_law", "05_theory", "08_plan_your_dataset", "09_conclusions")
PASTED = re.compile(r'class="pasted-text">([^<]*)<')
# Chapters whose GPU tier has not run: in publish a note box says so (with the command), and no glued
# text is a toy-size stand-in or a "pending" placeholder.
GPU_TIER_CHAPTERS = ("02_training_grid", "06_blog_fixed_budget")


@pytest.mark.parametrize("profile", ["smoke", "publish"])
def test_book_builds(builds, profile):
    html = finished(builds, profile)
    check_pages(html)
    provenance = (html / "book" / "provenance.html").read_text()
    assert f"profile=&#x27;{profile}&#x27;" in provenance or f"profile='{profile}'" in provenance
    for chapter in COMMITTED_CHAPTERS:
        pasted = PASTED.findall((html / "book" / "chapters" / f"{chapter}.html").read_text())
        assert pasted, f"{chapter} shows no glued numbers"
        toy = [text for text in pasted if "smoke" in text.lower() or "toy" in text.lower()]
        # smoke builds must say so; publish builds must show the committed full-size tables
        assert bool(toy) == (profile == "smoke"), (chapter, toy[:3])
    for chapter in GPU_TIER_CHAPTERS if profile == "publish" else ():
        pasted = PASTED.findall((html / "book" / "chapters" / f"{chapter}.html").read_text())
        stale = [text for text in pasted if re.search(r"(?i)pending|toy|smoke", text)]
        assert pasted and not stale, (chapter, stale[:3])

"""The end-to-end book builds (``test_book_e2e``), started in the background as soon as pytest
knows it will run them (``conftest.pytest_collection_finish``), so that they overlap the unit tests,
which keep one core of two busy. The smoke build runs in a copy of this checkout (its own executed
notebooks and HTML), the publish one here (``test_claims`` reads its notebooks)."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from storage_scaling import paths

ROOT = paths.repo_root()
_running: dict[str, tuple[subprocess.Popen, Path, Path]] = {}  # profile -> (process, checkout, log)
_folder: list[Path] = []


def _start(profile: str, root: Path, log: Path, env: dict) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **env}
    env.pop("STORAGE_SCALING_RESULTS", None)
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "storage_scaling.book", "--profile", profile],
                                cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)


def start(profiles) -> dict[str, tuple[subprocess.Popen, Path, Path]]:
    """Start the builds of ``profiles`` not started yet; every build started so far."""
    if not _folder:
        _folder.append(Path(tempfile.mkdtemp(prefix="book-e2e-")))
    folder = _folder[0]
    for profile in profiles:
        if profile in _running:
            continue
        log = folder / f"{profile}.log"
        if profile == "smoke":
            copy = folder / "checkout"
            shutil.copytree(ROOT, copy, symlinks=True, ignore=shutil.ignore_patterns(
                ".git", ".venv", ".cache", "_build", "executed", "__pycache__", ".pytest_cache", "*.egg-info"))
            (copy / ".git").symlink_to(ROOT / ".git")  # the provenance page asks git for the code version
            env = {"PYTHONPATH": str(copy / "src"), paths.CACHE_ENV: str(paths.cache_dir()),
                   paths.DATA_ENV: str(paths.data_root())}
            _running[profile] = (_start(profile, copy, log, env), copy, log)
        else:
            _running[profile] = (_start(profile, ROOT, log, {}), ROOT, log)
    return _running


def finished(profile: str) -> Path:
    """Wait for ``profile``'s build (starting it if nothing has); its HTML folder. A failed build
    fails the test with the end of its output."""
    process, root, log = start([profile])[profile]
    code = process.wait()
    assert code == 0, log.read_text(errors="replace")[-6000:]
    return root / "_build" / "html"


def stop() -> None:
    """Stop what still runs (a session interrupted or failed early) and remove the copy."""
    for process, _, _ in _running.values():
        if process.poll() is None:
            process.kill()
            process.wait()
    _running.clear()
    for folder in _folder:
        shutil.rmtree(folder, ignore_errors=True)
    _folder.clear()

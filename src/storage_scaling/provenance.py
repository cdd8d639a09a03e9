"""Who computed a number, where and with what: attached to every result row and table."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import sys
from functools import lru_cache
from importlib import metadata

from . import paths

KEY_PACKAGES = (
    "storage-scaling", "numpy", "scipy", "sympy", "pandas", "pyarrow", "imagecodecs", "torch",
    "torchvision", "timm", "matplotlib", "seaborn", "papermill", "jupytext", "jupyter-book",
)


# What decides a computed number: a change elsewhere (README, prose) does not make results dirty.
CODE_PATHS = ("src", "notebooks", "benchmarks", "pyproject.toml", "requirements.txt", "requirements.lock")


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=paths.repo_root(), capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def in_git_checkout() -> bool:
    """Whether the code runs from a git checkout (a GPU host's copy of the tree has no .git)."""
    return _git("rev-parse", "HEAD") is not None


@lru_cache(maxsize=1)
def code_version() -> str:
    """The commit of the checkout, with -dirty when its code (CODE_PATHS) has uncommitted changes.

    ``$STORAGE_SCALING_CODE_VERSION`` overrides it, for copies of the tree without ``.git`` (GPU
    hosts); without git, the package version.
    """
    if os.environ.get("STORAGE_SCALING_CODE_VERSION"):
        return os.environ["STORAGE_SCALING_CODE_VERSION"]
    commit = _git("rev-parse", "--short=12", "HEAD")
    if commit:
        changed = _git("status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS)
        return commit + ("-dirty" if changed else "")
    try:
        return "v" + metadata.version("storage-scaling")
    except metadata.PackageNotFoundError:
        return "unknown"


def device() -> str:
    """The accelerator if torch is loaded and sees one, else the CPU with its core count."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name(0)}"
    return f"cpu:{platform.processor() or platform.machine()} x{os.cpu_count()}"


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def package_versions(names=KEY_PACKAGES) -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def stamp() -> dict[str, str]:
    """The provenance columns every result row carries."""
    return {"code_version": code_version(), "device": device(), "finished_at": now()}

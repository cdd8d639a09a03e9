"""Where the practitioner's files live: local paths, or URLs that fsspec opens.

``IMAGES`` (a folder, a Parquet pack or a list file), the entries of a list file, and ``OUT`` of
``compress`` may be URLs: ``s3://bucket/photos`` (needs s3fs), ``gs://...`` (gcsfs),
``https://...`` (aiohttp; read only), ``memory://...`` (fsspec's own, for tests), any protocol
fsspec knows. ``file://`` URLs are local paths. A URL whose protocol fsspec does not know, or
whose package is not installed, is one error naming the package to install, before any work
(:func:`filesystem`).

Reading goes through :func:`read_bytes` (the client reads every input; workers never need
access to the storage). Writing a remote ``OUT`` is done by :func:`upload`: ``compress`` works in
a local staging folder (resumable, atomic, locked as a local run) and copies the finished
outputs up, skipping those already there with the same size.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
PACKAGES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "http": "aiohttp", "https": "aiohttp",
            "abfs": "adlfs", "az": "adlfs", "hf": "huggingface_hub", "sftp": "paramiko", "ssh": "paramiko"}


def scheme(text) -> str | None:
    """The protocol of a URL (``s3``), or None for a local path."""
    match = URL.match(str(text))
    return match.group(1).lower() if match else None


def is_remote(text) -> bool:
    """A URL that is not a local ``file://`` one."""
    return scheme(text) not in (None, "file", "local")


def local_path(text) -> Path:
    """A local path from a path or a ``file://`` URL (``~`` expanded)."""
    text = str(text)
    if scheme(text) in ("file", "local"):
        parts = urlsplit(text)
        return Path(unquote(parts.netloc + parts.path) if parts.netloc not in ("", "localhost")
                    else unquote(parts.path))
    return Path(text).expanduser()


def filesystem(url: str, what: str = "IMAGES"):
    """``(fs, path)`` for a URL, or one ValueError saying why fsspec cannot open it here."""
    protocol = scheme(url)
    try:
        import fsspec
    except ImportError as exc:  # pragma: no cover - fsspec is a dependency
        raise ValueError(f"{what} {url}: URLs need fsspec (pip install fsspec)") from exc
    try:
        return fsspec.core.url_to_fs(url)
    except ImportError as exc:
        package = PACKAGES.get(protocol, "the package fsspec names")
        raise ValueError(f"{what} {url}: {protocol}:// URLs need a package that is not installed here "
                         f"({' '.join(str(exc).split())}); pip install {package}") from exc
    except ValueError as exc:
        raise ValueError(f"{what} {url}: fsspec cannot open {protocol}:// URLs ({' '.join(str(exc).split())}); "
                         "give a local path or a URL fsspec knows (s3://, gs://, https://, ...)") from exc


def read_bytes(url: str) -> bytes:
    """The bytes of one remote file (OSError when it cannot be read)."""
    fs, path = filesystem(url)
    try:
        return bytes(fs.cat_file(path))
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - each filesystem raises its own types
        raise OSError(f"cannot read {url} ({type(exc).__name__}: {exc})") from exc


def join(url: str, name: str) -> str:
    return url.rstrip("/") + "/" + name


def key_path(entry: str) -> str:
    """A URL or a local path as an absolute POSIX path, ``/<host>/<path>`` for a URL: what the
    outputs mirror (:meth:`.images.Images.layout`)."""
    if is_remote(entry):
        parts = urlsplit(entry)
        return "/" + "/".join(p for p in (parts.netloc + parts.path).split("/") if p)
    return Path(os.path.abspath(entry)).as_posix()


def default_staging(url: str) -> Path:
    """The local folder where ``compress`` prepares a remote OUT (kept, so that a re-run resumes)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "storage-scaling" / "staging"
    return base / hashlib.sha1(url.rstrip("/").encode()).hexdigest()[:16]


def check_remote_out(url: str, staged: bool, settings_name: str) -> None:
    """A remote OUT must be new or empty, or a compression this command wrote (its settings file)
    whose staging folder is here (``staged``); one ValueError otherwise."""
    fs, path = filesystem(url, "OUT")
    try:
        exists = fs.exists(path)
        names = sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(path, detail=False)) if exists else []
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"OUT {url} cannot be listed ({type(exc).__name__}: {exc}); check the URL and "
                         "your credentials") from exc
    if not names or staged:
        return
    if settings_name in names:
        raise ValueError(f"OUT {url} already holds a compression, written from another staging folder; resume "
                         "with --staging pointing at that folder, or choose a new OUT")
    raise ValueError(f"OUT {url} already holds {len(names):,} file(s) that are not a compression of this command "
                     f"(e.g. {names[0]}); give a new or empty location")


def upload(local: Path, url: str, names: list[str], *, progress: bool = True) -> int:
    """Copy ``names`` (relative to ``local``) to ``url``, in order, skipping files already there
    with the same size; returns how many were copied."""
    from tqdm import tqdm

    fs, root = filesystem(url, "OUT")
    copied = 0
    for name in tqdm(names, desc="upload", unit="file", disable=not progress):
        source = local / name
        target = root.rstrip("/") + "/" + name
        try:
            if fs.exists(target) and fs.size(target) == source.stat().st_size and name not in ALWAYS_COPIED:
                continue
            parent = target.rsplit("/", 1)[0]
            if parent:
                fs.makedirs(parent, exist_ok=True)
            fs.put_file(str(source), target)
        except Exception as exc:  # noqa: BLE001
            raise OSError(f"cannot write {url.rstrip('/')}/{name} ({type(exc).__name__}: {exc})") from exc
        copied += 1
    return copied


ALWAYS_COPIED = ("manifest.csv", "compress.json", "report.md")  # rewritten in place: their size may not change

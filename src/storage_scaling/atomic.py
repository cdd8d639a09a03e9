"""Write files so that an interrupt leaves either the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

_UMASK = os.umask(0)
os.umask(_UMASK)


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


def temp_files(path: str | os.PathLike) -> list[Path]:
    """The temporary files of atomic writes of ``path`` now beside it (a writer killed with
    ``kill -9`` leaves its own behind: the ``finally`` that removes it never runs)."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    prefix = _temp_prefix(path)

    def ours(name: str) -> bool:  # ".<name>.<random, no dot>.tmp": not those of "<name>.bak"
        return name.startswith(prefix) and name.endswith(".tmp") and "." not in name[len(prefix):-4]

    return sorted(p for p in path.parent.iterdir() if ours(p.name))


def remove_temp_files(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files of ``path``; only safe while holding :func:`locked` on ``path``
    (every writer of such a file holds that lock, so none of them is mid-write)."""
    removed = []
    for tmp in temp_files(path):
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
            removed.append(tmp)
    return removed


def write_with(path: str | os.PathLike, writer: Callable[[BinaryIO], object]) -> None:
    """Create ``path`` from ``writer(file_object)``: a temp file in the same folder, then a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(path), suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; results are for everyone
        with os.fdopen(fd, "wb") as f:
            writer(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    write_with(path, lambda f: f.write(data))


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def locked(path: str | os.PathLike):
    """An exclusive lock beside ``path`` so that two writers never interleave read-modify-write.

    Every writer of a locked file writes it while holding this lock, so on entry no temporary file
    of ``path`` belongs to a live writer: any left by an interrupted one are removed then.
    """
    path = Path(path)
    lock_path = path.parent / f".{path.name}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            remove_temp_files(path)
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Busy(ValueError):
    """Another process holds the run lock of a file (a user error: wait for it, or stop it)."""


@contextlib.contextmanager
def exclusive(path: str | os.PathLike, what: str = "run"):
    """Hold ``path``'s run lock for a whole run, or refuse at once when another process holds it.

    Unlike :func:`locked` (held for one read-modify-write, waited for), this lock spans a run, so
    two runs never work on one table at the same time: the second is refused in one line before any
    work. The lock file records who holds it; the kernel drops the lock when its holder dies, even
    by ``kill -9``, so a killed run never leaves a table locked.
    """
    path = Path(path)
    lock_path = path.parent / f".{path.name}.run.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(lock_path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise Busy(f"{path} is in use by another {what} ({holder}); wait for it to finish (or stop it), then "
                   "re-run: finished rows are kept") from None
    try:
        from datetime import datetime, timezone

        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}, since {datetime.now(timezone.utc).isoformat(timespec='seconds')}\n")
        handle.flush()
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def check_writable(folder: str | os.PathLike, what: str, fix: str) -> Path:
    """Refuse in one line, before any work, when files cannot be created in ``folder``."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-check.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise PermissionError(f"{what} {folder} is not writable ({reason}); {fix}") from None
    return folder

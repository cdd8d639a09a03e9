"""How every command line reports bad input: one line on stderr, exit status 2, no traceback.

A user error (a wrong flag value, a missing file, a spec key that does not exist) is a
``ValueError`` (or ``FileNotFoundError``) whose message names what is wrong and how to fix it. The
entry points call :func:`run_main`, which prints ``<prog>: error: <message>`` and returns 2; the
traceback is shown only with ``--debug`` (for bug reports). Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import errno
import sys
from typing import Callable, Sequence

USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, PermissionError, IsADirectoryError)
DEBUG_FLAG = "--debug"


def split_debug(argv: Sequence[str] | None) -> tuple[list[str], bool]:
    """``argv`` without ``--debug``, and whether it was there (argv None means ``sys.argv[1:]``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in args
    return [a for a in args if a != DEBUG_FLAG], debug


_OS_FIXES = {
    errno.EACCES: "change its permissions (chmod) or point the command at a folder you may write (--results, "
                  "$STORAGE_SCALING_RESULTS, $STORAGE_SCALING_CACHE)",
    errno.EPERM: "change its permissions (chmod) or point the command at another folder",
    errno.EROFS: "it is on a read-only file system: point the command at a writable folder (--results, "
                 "$STORAGE_SCALING_RESULTS, $STORAGE_SCALING_CACHE)",
    errno.ENOSPC: "free some disk space, then re-run (finished work is kept)",
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "a part of the path is a file, not a folder: check the path",
}


def describe(exc: BaseException) -> str:
    """The message of a user error; an operating-system error (raw "[Errno 13] ...") names its file
    and says what to do."""
    if isinstance(exc, OSError) and exc.filename and exc.strerror and exc.errno in _OS_FIXES:
        return f"{exc.filename}: {exc.strerror.lower()}; {_OS_FIXES[exc.errno]}"
    return " ".join(str(exc).split()) or type(exc).__name__


def report(prog: str, exc: BaseException) -> int:
    """Print a user error as one line on stderr and return the exit status 2."""
    message = " ".join(describe(exc).split())
    print(f"{prog}: error: {message} (add {DEBUG_FLAG} for the traceback)", file=sys.stderr)
    return 2


def run_main(main: Callable[[list[str]], int], argv: Sequence[str] | None, prog: str,
             extra_errors: tuple[type[BaseException], ...] = (),
             failures: tuple[type[BaseException], ...] = ()) -> int:
    """Run ``main(args)``; user errors become one line and exit 2 unless ``--debug`` was given.

    ``failures`` are errors of the work itself (a notebook that fails, a book that does not build):
    one line too, with exit status 1.
    """
    args, debug = split_debug(argv)
    try:
        return int(main(args) or 0)
    except USER_ERRORS + tuple(extra_errors) as exc:
        if debug:
            raise
        return report(prog, exc)
    except OSError as exc:  # a file the user pointed at (read-only folder, full disk): one line too
        if debug or not (exc.filename and exc.errno in _OS_FIXES):
            raise
        return report(prog, exc)
    except tuple(failures) as exc:
        if debug:
            raise
        report(prog, exc)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; finished rows are kept and a re-run resumes", file=sys.stderr)
        return 130

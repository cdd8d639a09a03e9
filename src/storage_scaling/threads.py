"""How many threads numerical code may use: the one place for the project's thread limits.

On a shared 2-core machine, threaded BLAS and PyTorch pools fight each other: the law fits are
many tiny L-BFGS problems that a threaded OpenBLAS slows badly, and two torch jobs at once halve
each other. Command lines and tests call :func:`single_blas_thread` before numpy loads; training
code asks :func:`torch_threads` for a checked thread count.
"""

from __future__ import annotations

import os

BLAS_ENV = "OPENBLAS_NUM_THREADS"


def single_blas_thread() -> None:
    """One BLAS thread unless the user chose otherwise (effective only before numpy loads)."""
    os.environ.setdefault(BLAS_ENV, "1")


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def torch_threads(n: int) -> int:
    """Set PyTorch's intra-op threads to ``n``; more threads than cores is an error, not a slowdown."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"threads must be a positive integer, got {n!r}")
    if n > cores():
        raise ValueError(f"threads={n} is more than the {cores()} cores of this machine; use at most {cores()}")
    import torch

    torch.set_num_threads(n)
    return n

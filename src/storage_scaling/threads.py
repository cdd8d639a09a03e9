"""How many threads numerical code may use: the one place for the project's thread limits.

On a shared 2-core machine, threaded BLAS and PyTorch pools fight each other: the law fits are
many tiny L-BFGS problems that a threaded OpenBLAS slows badly, and two torch jobs at once halve
each other. Two tools, and no other module sets a thread count:

* :func:`single_blas_thread`: command lines, the book driver, notebooks and the tests call it
  before numpy loads (an environment variable, so kernels and worker processes inherit it);
* :func:`limit`: everything else. A context manager that sets PyTorch's intra-op threads and the
  threads of every loaded BLAS (numpy's and scipy's OpenBLAS, through threadpoolctl) for a block
  and restores the previous counts afterwards, also after an exception. More threads than cores
  is a ValueError before anything changes (:func:`check`). Library code that picks its own count
  (the probe's feature map, the ridge head) runs in :func:`library_cap`: at most
  :data:`LIBRARY_MAX` PyTorch threads, and fewer if the caller chose fewer.
"""

from __future__ import annotations

import contextlib
import os

BLAS_ENV = "OPENBLAS_NUM_THREADS"
LIBRARY_MAX = 2  # library code's own cap: the build machine has 2 cores shared by several jobs


def single_blas_thread() -> None:
    """One BLAS thread unless the user chose otherwise (effective only before numpy loads)."""
    os.environ.setdefault(BLAS_ENV, "1")


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _positive(n, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{what} must be a positive integer, got {n!r}")
    return n


def check(n, what: str = "threads") -> int:
    """``n`` if it is a usable thread count; more threads than cores is an error, not a slowdown."""
    _positive(n, what)
    if n > cores():
        raise ValueError(f"{what}={n} is more than the {cores()} cores of this machine; use at most {cores()}")
    return n


@contextlib.contextmanager
def limit(torch: int | None = None, blas: int | None = None, *, lower_only: bool = False):
    """Inside the block, PyTorch runs on ``torch`` intra-op threads and every BLAS loaded by then
    on ``blas`` threads; afterwards (also after an exception) each pool has its previous count.

    None leaves that pool alone (and does not import its library). Counts are checked before
    anything changes (:func:`check`). With ``lower_only`` the counts are caps: a pool already
    smaller keeps its size, and a cap may exceed the core count (it never adds threads).
    """
    for n in (torch, blas):
        if n is not None:
            _positive(n, "threads") if lower_only else check(n)
    with contextlib.ExitStack() as stack:
        if torch is not None:
            stack.enter_context(_torch_pool(torch, lower_only))
        if blas is not None:
            _blas_pools(stack, blas, lower_only)
        yield


def library_cap():
    """``limit(torch=LIBRARY_MAX, lower_only=True)``: library code's PyTorch threads for a block."""
    return limit(torch=LIBRARY_MAX, lower_only=True)


@contextlib.contextmanager
def _torch_pool(n: int, lower_only: bool):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(min(before, n) if lower_only else n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _blas_pools(stack: contextlib.ExitStack, n: int, lower_only: bool) -> None:
    from threadpoolctl import ThreadpoolController

    blas = ThreadpoolController().select(user_api="blas")
    if not lower_only:
        stack.enter_context(blas.limit(limits=n))
        return
    for lib in blas.info():  # each library its own cap
        stack.enter_context(blas.select(filepath=lib["filepath"]).limit(limits=min(n, lib["num_threads"])))

"""Where the work runs: this process, local worker processes, or a Dask cluster.

One small interface, :class:`Pool`, with one method: :meth:`Pool.imap_unordered` runs a
module-level function over tasks and yields ``(index, result)`` as each finishes, keeping at most
a few tasks per worker in flight (so the caller reads inputs lazily and writes results as they
come). The caller -- the *client* -- is the only writer of outputs and manifests; workers only
compute and return, so results stay consistent whatever the cluster does.

* ``processes=1``: in this process, in order (the reference for every speed-up).
* ``processes=N``: the package's worker processes (:func:`codecs.process_pool`: spawned, glibc
  malloc tuned for libjxl).
* ``workers=N``: a Dask ``LocalCluster`` of N single-threaded worker processes started here.
* ``scheduler="tcp://host:8786"``: an existing Dask cluster (dask-jobqueue on Slurm,
  dask-kubernetes, a cloud deployment): its workers need this package installed; they get the
  input bytes from the client, so they need no access to the client's files.

:func:`add_arguments` declares the three options for a subcommand and :func:`open_pool` checks
them and connects -- an unreachable scheduler is one line before any work. :meth:`Pool.memory_per_worker`
is one worker's share of memory (the memory guard of :class:`.images.Limits`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

CONNECT_TIMEOUT_S = 10.0
IN_FLIGHT_PER_WORKER = 2


def add_arguments(parser: argparse.ArgumentParser, local_processes: bool = True) -> None:
    """``--processes N | --workers N | --scheduler ADDRESS`` (mutually exclusive); without
    ``local_processes`` only the two Dask options (the experiment runner)."""
    group = parser.add_mutually_exclusive_group()
    if local_processes:
        group.add_argument("--processes", type=int, default=None, metavar="N",
                           help="local worker processes (default: every core of this machine; 1 = this process)")
    group.add_argument("--workers", type=int, default=None, metavar="N",
                       help="start a local Dask cluster of N single-threaded workers (needs dask[distributed])")
    group.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="use an existing Dask cluster, e.g. tcp://host:8786 (dask-jobqueue, "
                            "dask-kubernetes...); its workers need storage-scaling installed")


@dataclass
class Pool:
    """Runs tasks somewhere and hands results back to this process (see the module docstring)."""

    kind: str  # "serial", "processes" or "dask"
    workers: int
    description: str
    _client: object = field(default=None, repr=False)
    _cluster: object = field(default=None, repr=False)

    def imap_unordered(self, func: Callable, tasks: Iterable, *, resources: dict | None = None
                       ) -> Iterator[tuple[int, object]]:
        """``(k, func(task_k))`` for every task, in completion order; the first error is raised
        as it is (pending tasks are cancelled). ``tasks`` may be a generator: it is drawn only as
        workers free up. ``resources`` (Dask only) are the worker resources each task needs,
        e.g. ``{"GPU": 1}``."""
        if self.kind == "serial":
            for k, task in enumerate(tasks):
                yield k, func(task)
            return
        if self.kind == "processes":
            yield from self._imap_processes(func, tasks)
        else:
            yield from self._imap_dask(func, tasks, resources)

    def _imap_processes(self, func, tasks):
        from concurrent.futures import FIRST_COMPLETED, wait

        from ..compress import codecs

        pool = codecs.process_pool(self.workers)
        source = enumerate(tasks)
        pending: dict = {}
        limit = self.workers * IN_FLIGHT_PER_WORKER
        try:
            for k, task in source:
                pending[pool.submit(func, task)] = k
                if len(pending) >= limit:
                    break
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    k = pending.pop(future)
                    result = future.result()
                    for k2, task in source:  # refill before handing the result back
                        pending[pool.submit(func, task)] = k2
                        break
                    yield k, result
        finally:
            for future in pending:
                future.cancel()

    def _imap_dask(self, func, tasks, resources):
        from distributed import as_completed

        client = self._client
        source = enumerate(tasks)
        outstanding: dict = {}  # future key -> (task index, future)

        def submit(k, task):
            future = client.submit(func, task, pure=False, resources=resources)
            outstanding[future.key] = (k, future)
            return future

        first = [submit(k, t) for k, t in _take(source, max(1, self.workers) * IN_FLIGHT_PER_WORKER)]
        stream = as_completed(first, loop=client.loop)
        try:
            for future in stream:
                result = future.result()  # re-raises the worker's error
                k, _ = outstanding.pop(future.key)
                for k2, task in _take(source, 1):
                    stream.add(submit(k2, task))
                future.release()
                yield k, result
        finally:
            for _, future in outstanding.values():
                with contextlib.suppress(Exception):
                    future.cancel()

    @property
    def remote(self) -> bool:
        """A cluster this process did not start (its workers may be other machines)."""
        return self.kind == "dask" and self._cluster is None

    def has_resource(self, name: str) -> bool:
        """Whether some Dask worker declares the resource (e.g. ``GPU``)."""
        if self.kind != "dask":
            return False
        workers = self._client.scheduler_info().get("workers", {})
        return any(w.get("resources", {}).get(name) for w in workers.values())

    def memory_per_worker(self) -> float | None:
        """Bytes one worker may use: the smallest ``memory_limit`` of a Dask cluster's workers, or
        the memory available here divided among the local workers (None when unknown)."""
        if self.kind == "dask":
            infos = self._client.scheduler_info().get("workers", {}).values()
            limits = [float(w["memory_limit"]) for w in infos if w.get("memory_limit")]
            return min(limits) if limits else None
        available = available_memory()
        return available / max(self.workers, 1) if available else None

    def run_on_workers(self, func: Callable) -> None:
        """Call ``func()`` once in every worker process (e.g. malloc tuning); a no-op otherwise."""
        if self.kind == "dask":
            self._client.run(func)

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
        if self._cluster is not None:
            with contextlib.suppress(Exception):
                self._cluster.close()
        self._client = self._cluster = None

    def __enter__(self) -> "Pool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def available_memory() -> float | None:
    """Bytes of memory available to new work on this machine (Linux ``MemAvailable``, else the
    free physical pages), or None when the system does not say."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _take(source, n):
    out = []
    for item in source:
        out.append(item)
        if len(out) >= n:
            break
    return out


def check_options(processes: int | None = None, workers: int | None = None, scheduler: str | None = None) -> None:
    """One ValueError for options that cannot work, before anything starts."""
    chosen = [name for name, v in (("--processes", processes), ("--workers", workers), ("--scheduler", scheduler))
              if v is not None]
    if len(chosen) > 1:
        raise ValueError(f"{' and '.join(chosen)} exclude each other: choose where the work runs once")
    for name, value in (("--processes", processes), ("--workers", workers)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    if scheduler is not None and not str(scheduler).strip():
        raise ValueError("--scheduler needs the scheduler's address, e.g. tcp://host:8786")
    if workers is not None or scheduler is not None:
        try:
            import distributed  # noqa: F401
        except ImportError as exc:
            raise ValueError("--workers and --scheduler need Dask: pip install 'dask[distributed]' "
                             "(pinned in requirements.txt)") from exc


def open_pool(processes: int | None = None, workers: int | None = None, scheduler: str | None = None,
              *, worker_resources: dict | None = None, threads: bool = False) -> Pool:
    """Start or connect to where the work runs (see the module docstring); use as a context manager.

    ``worker_resources`` are declared by the workers of a local Dask cluster (e.g. ``{"GPU": 1}``);
    ``threads=True`` runs a local cluster's workers as threads of this process (tests).
    An unreachable scheduler is a ValueError naming it, raised within :data:`CONNECT_TIMEOUT_S`.
    """
    check_options(processes, workers, scheduler)
    if scheduler is not None:
        from distributed import Client

        try:
            client = Client(scheduler, timeout=f"{CONNECT_TIMEOUT_S:g}s", set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ValueError(f"--scheduler {scheduler}: cannot reach a Dask scheduler there within "
                             f"{CONNECT_TIMEOUT_S:g} s ({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); "
                             "check the address and that the scheduler is running") from exc
        n = len(client.scheduler_info().get("workers", {}))
        return Pool("dask", max(n, 1), f"Dask cluster at {scheduler} ({n} workers)", _client=client)
    if workers is not None:
        from distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=not threads,
                               resources=worker_resources, dashboard_address=None)
        client = Client(cluster, set_as_default=False)
        pool = Pool("dask", workers, f"local Dask cluster of {workers} workers", _client=client, _cluster=cluster)
        from ..compress import codecs

        pool.run_on_workers(codecs.tune_malloc)
        return pool
    from ..compress import codecs

    n = codecs.default_workers() if processes is None else processes
    if n == 1:
        return Pool("serial", 1, "this process")
    return Pool("processes", n, f"{n} local processes")

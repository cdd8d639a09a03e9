"""Worker processes die with their parent, even one killed with SIGKILL (Linux).

A child Python process starts the package's process pool, prints its workers' pids (and the
multiprocessing resource tracker's), then sleeps; the test kills it with SIGKILL and checks that
every one of those processes is gone within a few seconds. Without the death signal the workers
wait forever on their task queue and the tracker on its pipe (~100 MB each).
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="parent-death signal (prctl) and /proc are Linux only")

GONE_WITHIN_S = 10.0

# Both start two workers: with ``spawn`` a ProcessPoolExecutor spawns one worker per submit while
# none is idle, so two submits at once give two workers.
CODECS_CHILD = """
    import os
    from storage_scaling.compress import codecs
    pool = codecs.process_pool(2)
    futures = [pool.submit(os.getpid) for _ in range(2)]
    ran = {f.result() for f in futures}
"""
CLUSTER_CHILD = """
    import time
    from storage_scaling.compress import codecs
    from storage_scaling.practice import cluster
    pool = cluster.open_pool(processes=2)
    assert pool.kind == "processes", pool
    list(pool.imap_unordered(time.sleep, [0.2] * 4))
    ran = set()
"""
THREAD_CHILD = """
    import os, threading
    from storage_scaling.compress import codecs
    def start():
        global ran
        pool = codecs.process_pool(2)
        ran = {f.result() for f in [pool.submit(os.getpid) for _ in range(2)]}
    thread = threading.Thread(target=start)
    thread.start()
    thread.join()
"""
REPORT = """
    import json, sys, time
    from multiprocessing import resource_tracker
    workers = sorted(codecs._PROCESS_POOLS[2]._processes)
    assert len(workers) == 2 and ran <= set(workers), (workers, ran)
    print(json.dumps({"workers": workers, "tracker": resource_tracker._resource_tracker._pid}), flush=True)
    time.sleep(600)
"""


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped by init, counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = next((line.split()[1] for line in status.splitlines() if line.startswith("State:")), "")
    return state not in ("Z", "X")


def _start_child(code: str, tmp_path: Path) -> tuple[subprocess.Popen, dict, Path]:
    stderr = tmp_path / "child.stderr"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OPENBLAS_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    script = textwrap.dedent(code) + textwrap.dedent(REPORT)
    with open(stderr, "wb") as err:
        child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=err, env=env)
    ready, _, _ = select.select([child.stdout], [], [], 120)
    line = child.stdout.readline() if ready else b""
    if not line:
        child.kill()
        child.wait()
        pytest.fail(f"the child printed no pids; its stderr:\n{stderr.read_text()[-3000:]}")
    return child, json.loads(line), stderr


def _kill_and_check(child: subprocess.Popen, pids: dict, stderr: Path) -> None:
    workers, tracker = pids["workers"], pids["tracker"]
    watched = [*workers, *([tracker] if tracker else [])]
    try:
        assert all(_alive(pid) for pid in watched), "the pool's processes should run before the kill"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        deadline = time.monotonic() + GONE_WITHIN_S
        while time.monotonic() < deadline and any(_alive(pid) for pid in watched):
            time.sleep(0.1)
        left = {pid: ("worker" if pid in workers else "resource tracker") for pid in watched if _alive(pid)}
        assert not left, (f"still alive {GONE_WITHIN_S:g} s after the parent was killed: {left}; "
                          f"child stderr:\n{stderr.read_text()[-2000:]}")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for pid in watched:  # never leave ~100 MB orphans behind on a shared machine
            if _alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass


def test_process_pool_workers_and_tracker_die_with_killed_parent(tmp_path):
    child, pids, stderr = _start_child(CODECS_CHILD, tmp_path)
    assert pids["tracker"], "a spawn pool's semaphores should have started the resource tracker"
    _kill_and_check(child, pids, stderr)


def test_cluster_process_pool_workers_die_with_killed_parent(tmp_path):
    child, pids, stderr = _start_child(CLUSTER_CHILD, tmp_path)
    _kill_and_check(child, pids, stderr)


def test_workers_spawned_by_another_thread_die_with_killed_parent(tmp_path):
    """Workers spawned by a thread that has ended (no kernel death signal: the watchdog)."""
    child, pids, stderr = _start_child(THREAD_CHILD, tmp_path)
    _kill_and_check(child, pids, stderr)


def test_worker_spawned_by_another_thread_survives_that_thread():
    """The kernel's death signal follows the spawning *thread*: a worker spawned from a thread
    that then ends must keep working (it watches its parent's pid instead)."""
    import threading

    from storage_scaling.compress import codecs

    pool = None
    try:
        holder: dict = {}

        def spawn():
            holder["pool"] = pool_ = codecs.ProcessPoolExecutor(
                max_workers=1, mp_context=codecs.get_context("spawn"),
                initializer=codecs._init_worker, initargs=(codecs._Spawner(),))
            holder["pid"] = pool_.submit(os.getpid).result(timeout=120)

        thread = threading.Thread(target=spawn)
        thread.start()
        thread.join()
        pool = holder["pool"]
        time.sleep(0.5)  # a death signal, if armed for the ended thread, has fired by now
        assert pool.submit(os.getpid).result(timeout=60) == holder["pid"]
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def test_worker_whose_parent_already_died_exits_at_once():
    """The race: a parent that died before the worker armed its death signal (the worker's
    parent pid is then no longer the spawner's) -- the worker exits instead of waiting forever."""
    code = ("from storage_scaling.compress import codecs\n"
            "codecs._die_with_parent(-1, True)\n"  # -1: no process's pid, so never os.getppid()
            "print('still running', flush=True)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "still running" not in done.stdout, (done.returncode, done.stdout, done.stderr)
    alive = subprocess.run([sys.executable, "-c", code.replace("-1", "__import__('os').getppid()")],
                           capture_output=True, text=True, timeout=120)
    assert alive.returncode == 0 and "still running" in alive.stdout, (alive.returncode, alive.stderr)

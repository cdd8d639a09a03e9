"""The one thread policy: ``threads.limit`` sets PyTorch's and the BLAS's threads for a block and
restores them (also after an error), refuses more threads than cores, and is the only setter."""

import ast
import re
from pathlib import Path

import pytest
import scipy.linalg  # noqa: F401 (loads scipy's own OpenBLAS beside numpy's)
import threadpoolctl
import torch

from storage_scaling import threads

ROOT = Path(__file__).resolve().parents[1]


def blas_counts() -> dict[str, int]:
    return {lib["filepath"]: lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"}


@pytest.fixture
def many_cores(monkeypatch):
    """Pretend to have 8 cores, so that counts can change on any machine."""
    monkeypatch.setattr(threads, "cores", lambda: 8)


def test_numpy_and_scipy_blas_are_found():
    """The BLAS checks below are not vacuous: threadpoolctl sees numpy's OpenBLAS and, with pip's
    wheels, scipy's own copy (which the former hand-written ctypes limit missed)."""
    names = " ".join(blas_counts())
    assert names
    if "numpy.libs" in names:
        assert "scipy.libs" in names, names


def test_limit_sets_and_restores_torch_threads_also_after_an_error(many_cores):
    outer = torch.get_num_threads()
    inner = 3 if outer != 3 else 2
    with threads.limit(torch=inner):
        assert torch.get_num_threads() == inner
    assert torch.get_num_threads() == outer
    with pytest.raises(KeyError):
        with threads.limit(torch=inner):
            assert torch.get_num_threads() == inner
            raise KeyError("boom")
    assert torch.get_num_threads() == outer


def test_limit_sets_and_restores_every_blas_also_after_an_error(many_cores):
    outer = blas_counts()
    with threads.limit(blas=3):
        assert set(blas_counts().values()) == {3}  # numpy's and scipy's OpenBLAS alike
        with pytest.raises(KeyError):
            with threads.limit(blas=2):
                assert set(blas_counts().values()) == {2}
                raise KeyError("boom")
        assert set(blas_counts().values()) == {3}
    assert blas_counts() == outer


def test_both_pools_at_once_and_none_leaves_a_pool_alone(many_cores):
    with threads.limit(torch=3):
        blas = blas_counts()
        with threads.limit(torch=2, blas=4):
            assert torch.get_num_threads() == 2 and set(blas_counts().values()) == {4}
        with threads.limit(blas=None, torch=None):
            assert torch.get_num_threads() == 3 and blas_counts() == blas
        assert torch.get_num_threads() == 3 and blas_counts() == blas


def test_too_many_threads_is_refused_before_anything_changes():
    torch_before, blas_before = torch.get_num_threads(), blas_counts()
    n = threads.cores()
    for kwargs in (dict(torch=n + 1), dict(blas=n + 1), dict(torch=1, blas=n + 1)):
        with pytest.raises(ValueError, match=rf"^threads={n + 1} is more than the {n} cores of this machine; "
                                             rf"use at most {n}$"):
            with threads.limit(**kwargs):
                pytest.fail("the block ran")
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="threads must be a positive integer"):
            with threads.limit(torch=bad):
                pytest.fail("the block ran")
    assert torch.get_num_threads() == torch_before and blas_counts() == blas_before
    assert threads.check(n) == n


def test_lower_only_caps_and_never_adds_threads(many_cores):
    with threads.limit(torch=4, blas=4):
        with threads.limit(torch=2, blas=2, lower_only=True):
            assert torch.get_num_threads() == 2 and set(blas_counts().values()) == {2}
        with threads.limit(torch=1):
            with threads.limit(torch=2, lower_only=True):
                assert torch.get_num_threads() == 1  # the caller's lower choice stands
        with threads.limit(torch=100, lower_only=True):  # a cap above the cores is allowed, adds nothing
            assert torch.get_num_threads() == 4
        assert torch.get_num_threads() == 4 and set(blas_counts().values()) == {4}


def test_library_cap_is_at_most_library_max(many_cores):
    with threads.limit(torch=threads.LIBRARY_MAX + 1):
        with threads.library_cap():
            assert torch.get_num_threads() == threads.LIBRARY_MAX
        assert torch.get_num_threads() == threads.LIBRARY_MAX + 1


def test_tests_run_on_one_torch_thread():
    assert torch.get_num_threads() == 1  # conftest's autouse fixture


SETTERS = re.compile(r"set_num_threads|threadpool_limits|ThreadpoolController|openblas_set|torch_threads\(|_NUM_THREADS")


def test_threads_is_the_only_module_that_sets_thread_counts():
    found = [f"{p.relative_to(ROOT)}:{i}" for folder in ("src", "notebooks", "benchmarks")
             for p in sorted((ROOT / folder).rglob("*.py")) if p.name != "threads.py"
             for i, line in enumerate(p.read_text().splitlines(), 1) if SETTERS.search(line)]
    assert found == []


def test_no_test_module_changes_thread_counts_at_import():
    """No module-level call of tests/ sets a thread count (a limit lives in a fixture or a block);
    conftest's ``single_blas_thread`` only sets the environment variable numpy reads when it loads."""
    found = []
    for p in sorted(Path(__file__).parent.glob("*.py")):
        for node in ast.parse(p.read_text()).body:
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
                name = ast.unparse(node.value.func)
                if re.search(r"threads\.|_threads$|threadpool", name) and not name.endswith("single_blas_thread"):
                    found.append(f"{p.name}:{node.lineno}: {name}")
    assert found == []

"""The layout's promises: data flows one way (no import cycles between modules), and a reader
can fit a CSV or teach the theory without PyTorch or the codecs."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import storage_scaling

PACKAGE = Path(storage_scaling.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def top_level_imports(path: Path) -> set[str]:
    """Package modules imported at module level (imports inside functions are lazy on purpose)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")
            base = base[: len(base) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                out.add(candidate if module_path(candidate) else target)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("storage_scaling"):
            out.add(node.module)
    return {m for m in out if m != name}


def module_path(name: str) -> Path | None:
    rel = Path(*name.split(".")[1:])
    for candidate in (PACKAGE / rel.with_suffix(".py"), PACKAGE / rel / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def test_no_import_cycles_between_modules():
    graph = {module_name(p): top_level_imports(p) for p in PACKAGE.rglob("*.py")}
    state: dict[str, int] = {}

    def visit(node, trail):
        if state.get(node) == 1:
            raise AssertionError("import cycle: " + " -> ".join(trail + [node]))
        if state.get(node) == 2:
            return
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt.rsplit(".", 1)[0] == node or node.startswith(nxt + "."):
                continue  # a package and its own submodules
            visit(nxt, trail + [node])
        state[node] = 2

    for node in sorted(graph):
        visit(node, [])
    assert len(graph) > 15  # the scan saw the package


def test_the_law_the_theory_and_fit_need_neither_torch_nor_codecs():
    code = ("import sys; import storage_scaling.law, storage_scaling.theory, storage_scaling.cli as c; "
            "c.build_parser(); bad = [m for m in ('torch', 'imagecodecs') if m in sys.modules]; print(bad)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"

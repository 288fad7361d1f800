"""Static checks of the layout: no import cycle between the project's modules (imports inside functions count)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGE = "sdxl_nb"


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (a package is named by its __init__)."""
    files = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        files[".".join(parts)] = path
    return files


def import_graph(root: Path, package: str = PACKAGE) -> dict[str, set[str]]:
    """Module -> the project modules it imports anywhere in its code (top level, functions, TYPE_CHECKING).

    `from a.b import c` counts as importing a.b.c when that is a module, else a.b. Edges into the package
    root (its `__init__`, the public facade that re-exports everything) are left out.
    """
    files = module_files(root, package)

    def resolve(name: str) -> str | None:
        while name:
            if name in files:
                return name
            name = name.rpartition(".")[0]
        return None

    graph: dict[str, set[str]] = {module: set() for module in files}
    for module, path in files.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: anchored at this module's package
                    anchor = module.split(".") if is_package else module.split(".")[:-1]
                    anchor = anchor[:len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
            else:
                continue
            for target in targets:
                if target.split(".")[0] != package:
                    continue
                hit = resolve(target)
                if hit and hit not in (module, package):
                    graph[module].add(hit)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, without recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        work = [(start, iter(sorted(graph[start])))]
        while work:
            node, successors = work[-1]
            advanced = False
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                    advanced = True
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def describe(graph: dict[str, set[str]], component: list[str]) -> str:
    members = set(component)
    edges = [f"{a} -> {b}" for a in component for b in sorted(graph[a] & members)]
    return "cycle among " + ", ".join(component) + ": " + "; ".join(edges)


def test_no_import_cycle_between_project_modules():
    graph = import_graph(REPO)
    assert len(graph) > 50 and "sdxl_nb.jobs.pipeline" in graph
    assert "sdxl_nb.backends.base" in graph["sdxl_nb.jobs.pipeline"]  # the graph sees real imports
    found = cycles(graph)
    assert not found, "\n".join(describe(graph, component) for component in found)


def write_package(root: Path, modules: dict[str, str]) -> None:
    for name, source in modules.items():
        path = root / (name.replace(".", "/") + ".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")


def test_the_check_finds_cycles_through_function_imports_relative_imports_and_packages(tmp_path):
    write_package(tmp_path, {
        "sdxl_nb.__init__": "from sdxl_nb.a import f\n",  # the facade: edges into it are ignored
        "sdxl_nb.a": "import sdxl_nb\n\ndef f():\n    from sdxl_nb.sub.b import g\n    return g\n",
        "sdxl_nb.sub.__init__": "",
        "sdxl_nb.sub.b": "from ..a import f\n",  # relative, at top level
        "sdxl_nb.c": "from sdxl_nb import sub\n",  # a package imported by name
        "sdxl_nb.sub.d": "from sdxl_nb.c import x\n",
        "sdxl_nb.sub.e": "import os\nfrom sdxl_nb.a import f\n",  # one way only: no cycle
    })
    graph = import_graph(tmp_path)
    assert graph["sdxl_nb.a"] == {"sdxl_nb.sub.b"} and graph["sdxl_nb.sub.b"] == {"sdxl_nb.a"}
    assert graph["sdxl_nb.c"] == {"sdxl_nb.sub"}
    assert sorted(cycles(graph)) == [["sdxl_nb.a", "sdxl_nb.sub.b"]]
    write_package(tmp_path, {"sdxl_nb.sub.__init__": "from sdxl_nb.sub.d import y\n"})
    assert sorted(cycles(import_graph(tmp_path))) == [["sdxl_nb.a", "sdxl_nb.sub.b"],
                                                      ["sdxl_nb.c", "sdxl_nb.sub", "sdxl_nb.sub.d"]]

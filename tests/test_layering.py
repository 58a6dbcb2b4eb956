"""The import layering of the project, checked by parsing every module's imports.

Top level: ``search_spaces`` → ``profilers`` / ``predictors`` → ``nas`` (``profilers`` and
``predictors`` never import each other). Inside ``nas``, one stage per subpackage, in pipeline
order: the shared records (``nas.pareto``, ``nas.objectives``, ``nas.rundir``), then ``data`` →
``train`` → ``export``; ``profiling`` and ``report`` beside them (each needs only the shared
records and the lower packages); then ``search``, ``bench``, ``cli``, and last the entry points
(``nas/__init__.py``, which gives ``nas.load_model``, and ``nas/__main__.py``). A module may import
its own unit and the units below it, never one above or beside it; and no chain of imports —
module-level or inside a function — leads from a module back to itself. Besides, the CLI reads
no private name of another module.

The checker runs on the project (no violation) and on small planted trees (each violation kind
is reported), so it cannot pass by finding nothing.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from support import REPO

# unit -> the units it may import (its own included); anything of the project outside them is a violation.
_NAS_BASE = {"nas.base", "nas.pareto", "nas.objectives", "nas.rundir"}
_LOWER = {"search_spaces", "profilers", "predictors"}
ALLOWED: dict[str, set[str]] = {
    "search_spaces": {"search_spaces"},
    "profilers": {"profilers", "search_spaces"},
    "predictors": {"predictors", "search_spaces"},
    **{unit: _NAS_BASE | _LOWER for unit in _NAS_BASE},
    "nas.data": _NAS_BASE | _LOWER | {"nas.data"},
}
ALLOWED["nas.train"] = ALLOWED["nas.data"] | {"nas.train"}
# profiling measures and fits from the space alone; report renders files alone: neither needs data or training
ALLOWED["nas.profiling"] = _NAS_BASE | _LOWER | {"nas.profiling"}
ALLOWED["nas.export"] = ALLOWED["nas.train"] | {"nas.export"}
ALLOWED["nas.report"] = _NAS_BASE | _LOWER | {"nas.report"}
ALLOWED["nas.search"] = ALLOWED["nas.export"] | ALLOWED["nas.profiling"] | ALLOWED["nas.report"] | {"nas.search"}
ALLOWED["nas.bench"] = ALLOWED["nas.search"] | {"nas.bench"}
ALLOWED["nas.cli"] = ALLOWED["nas.bench"] | {"nas.cli"}
ALLOWED["nas.entry"] = ALLOWED["nas.cli"] | {"nas.entry"}
PACKAGES = ("search_spaces", "profilers", "predictors", "nas")


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _unit(module: str) -> str:
    """The layering unit of a module: a top-level package, a stage subpackage of ``nas``, or the
    entry points of ``nas`` (its ``__init__``: ``nas.load_model``; ``python -m nas``), above them all."""
    parts = module.split(".")
    if module in ("nas", "nas.__main__"):
        return "nas.entry"
    if parts[0] != "nas":
        return parts[0]
    unit = f"nas.{parts[1]}"
    return unit if unit in ALLOWED else "nas.base"


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None) if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(module: str, path: Path, modules: set[str]) -> list[tuple[int, str]]:
    """(line, imported module of the project) for every import in the file, functions included."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    typing_only = {id(n) for block in ast.walk(tree) if _is_type_checking(block) for n in ast.walk(block)}
    out = []
    for node in ast.walk(tree):
        if id(node) in typing_only:  # `if TYPE_CHECKING:` imports never run
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from pkg import name`: the submodule pkg.name if there is one, else pkg (an attribute of it)
            names = [f"{target}.{alias.name}" if f"{target}.{alias.name}" in modules else target
                     for alias in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] not in PACKAGES:
                continue
            while name and name not in modules:  # a name inside a module
                name = name.rpartition(".")[0]
            if name:
                out.append((node.lineno, name))
    return out


def _private_reads(path: Path) -> list[str]:
    """``from X import _name`` and ``imported._name`` in a file, for X of the project (dunders aside)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = set()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PACKAGES:
            for alias in node.names:
                imported.add(alias.asname or alias.name)
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{path.name}:{node.lineno} imports {node.module}.{alias.name}")
        elif isinstance(node, ast.Import):
            imported.update((alias.asname or alias.name).split(".")[0] for alias in node.names
                            if alias.name.split(".")[0] in PACKAGES)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                and isinstance(node.value, ast.Name) and node.value.id in imported):
            found.append(f"{path.name}:{node.lineno} reads {node.value.id}.{node.attr}")
    return found


def layering_violations(root: Path) -> list[str]:
    """Every upward or sideways import, every import cycle and every private read by the CLI under ``root``."""
    files = {_module_name(root, p): p for pkg in PACKAGES for p in sorted((root / pkg).rglob("*.py"))}
    modules = set(files)
    graph: dict[str, set[str]] = {}
    problems = []
    for module, path in files.items():
        graph[module] = set()
        for line, target in _imports(module, path, modules):
            if target == module:
                continue
            graph[module].add(target)
            unit, other = _unit(module), _unit(target)
            if other not in ALLOWED[unit]:
                problems.append(f"{path.relative_to(root)}:{line}: {unit} may not import {target} ({other})")
        if module.startswith("nas.cli"):
            problems += [f"nas/cli/{p}" for p in _private_reads(path)]
    problems += [f"import cycle: {' -> '.join(cycle)}" for cycle in _cycles(graph)]
    return problems


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component) + [sorted(component)[0]])

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_project_has_no_upward_sideways_or_circular_import():
    assert layering_violations(REPO) == []


def _plant(root: Path, files: dict[str, str]) -> Path:
    for pkg in PACKAGES:
        (root / pkg).mkdir(parents=True, exist_ok=True)
        (root / pkg / "__init__.py").touch()
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.parent.name != "nas" and path.parent != root and not (path.parent / "__init__.py").exists():
            (path.parent / "__init__.py").touch()
        path.write_text(text)
    return root


@pytest.mark.parametrize("files, expected", [
    ({"search_spaces/arch.py": "import nas.search\n", "nas/search/__init__.py": ""},
     "search_spaces may not import nas.search"),
    ({"predictors/model.py": "from profilers import backend\n", "profilers/backend.py": ""},
     "predictors may not import profilers.backend"),
    ({"nas/data/source.py": "def f():\n    from nas.search.config import SearchConfig\n",
      "nas/search/config.py": ""}, "nas.data may not import nas.search.config"),
    ({"nas/report/write.py": "from nas.export import model\n", "nas/export/model.py": ""},
     "nas.report may not import nas.export.model"),
    ({"nas/profiling/fit.py": "from nas.train import config\n", "nas/train/config.py": ""},
     "nas.profiling may not import nas.train.config"),
    ({"nas/train/a.py": "from . import b\n", "nas/train/b.py": "from nas.train import a\n"},
     "import cycle: nas.train.a -> nas.train.b -> nas.train.a"),
    ({"nas/train/a.py": "def f():\n    from nas.train import b\n", "nas/train/b.py": "import nas.train.a\n"},
     "import cycle: nas.train.a -> nas.train.b -> nas.train.a"),
    ({"nas/cli/cmd.py": "from nas.search import study\nstudy._storage\n", "nas/search/study.py": ""},
     "reads study._storage"),
    ({"nas/cli/cmd.py": "from nas.search.study import _META_KEY\n", "nas/search/study.py": ""},
     "imports nas.search.study._META_KEY"),
])
def test_a_planted_violation_is_reported(tmp_path, files, expected):
    problems = layering_violations(_plant(tmp_path, files))
    assert any(expected in p for p in problems), problems


def test_imports_down_the_pipeline_are_allowed(tmp_path):
    root = _plant(tmp_path, {"nas/search/pipeline.py": "from nas.report import write\nfrom nas.train import x\n",
                             "nas/report/write.py": "from nas.rundir import write_json\n", "nas/rundir.py": "",
                             "nas/train/x.py": "from profilers import backend\n", "profilers/backend.py": ""})
    assert layering_violations(root) == []

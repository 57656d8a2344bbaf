"""The package's imports flow one way: no module imports one that (through others) imports it.

The graph is read from the source with :mod:`ast`, so it counts every import that runs: at
the top or inside a function (a "lazy" import that hides a circle is still a circle). Imports
under ``if TYPE_CHECKING:`` never run and are left out, as are imports from outside
``adapter``. A package's ``__init__`` is a module like any other: ``from adapter.store import
X`` is an edge to ``adapter.store``, ``from adapter.store import schema`` one to
``adapter.store.schema`` (importing a submodule runs its package's ``__init__`` first, for
every import alike, so that is not an edge). The circle check is the standard library's
topological sort (:mod:`graphlib`), which names a circle it finds.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "adapter"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _named(
    node: ast.Import | ast.ImportFrom, module: str, is_package: bool, modules: set[str]
) -> set[str]:
    """The modules of ``adapter`` an import statement imports."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names} & modules
    if node.level == 0:
        target = node.module or ""
    else:  # relative: ``.`` is the module's own package
        base = module if is_package else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            base = base.rpartition(".")[0]
        target = ".".join(part for part in (base, node.module) if part)
    named = {f"{target}.{alias.name}" for alias in node.names}
    submodules = named & modules
    # a name that is not a submodule comes from the package's (or module's) own code
    return submodules | ({target} & modules if len(submodules) < len(named) else set())


def _runtime_imports(nodes: Iterable[ast.AST]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement in ``nodes``, at any depth, outside ``if TYPE_CHECKING:``."""
    for node in nodes:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _runtime_imports(node.orelse)
        else:
            yield from _runtime_imports(ast.iter_child_nodes(node))


def _is_type_checking(test: ast.expr) -> bool:
    name = test.attr if isinstance(test, ast.Attribute) else getattr(test, "id", "")
    return name == "TYPE_CHECKING"


def import_graph() -> dict[str, set[str]]:
    """Each module of ``adapter`` -> the modules of ``adapter`` it imports."""
    files = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
    modules = set(files)
    graph: dict[str, set[str]] = {module: set() for module in files}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _runtime_imports(tree.body):
            named = _named(node, module, path.name == "__init__.py", modules)
            graph[module].update(named - {module})
    return graph


def test_the_graph_sees_the_imports_it_guards() -> None:
    """A reader that saw no imports would find no circle; this one sees the flow's layers."""
    graph = import_graph()
    assert "adapter.translate" in graph["adapter.service.stages"]
    assert "adapter.service.stages" in graph["adapter.pipeline"]
    assert "adapter.store.schema" in graph["adapter.store"]  # a package's __init__ counts
    assert sum(len(targets) for targets in graph.values()) > len(graph)


def test_no_module_imports_one_that_imports_it() -> None:
    """Translate below, the service's stages above it, the CLI shells on top: one way."""
    try:
        TopologicalSorter(import_graph()).prepare()
    except CycleError as exc:
        circle = " -> ".join(reversed(exc.args[1]))
        raise AssertionError(f"import circle: {circle}") from None

"""No import cycles among the engine's packages (callflow, ivr, queues, recordings).

The graph is grimp's: every ``import`` in every module, including imports inside functions (a lazy import
that dodges a cycle at run time is still a cycle in the design). Imports under ``if TYPE_CHECKING:`` are
left out: they never run, and annotations need them. Importing ``a.b.c`` from outside ``a.b`` also runs
``a/__init__.py`` and ``a/b/__init__.py``, so those count as imported too: a package ``__init__`` that
re-exports a module which imports the caller back is a cycle as well.
"""

from __future__ import annotations

import graphlib
import itertools

import grimp
import pytest

PACKAGES = ("callflow", "ivr", "queues", "recordings")


def ancestors(module: str) -> set[str]:
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def import_edges(graph: grimp.ImportGraph) -> dict[str, set[str]]:
    """Module -> the modules importing it runs (the imported module and the package inits it needs)."""
    edges: dict[str, set[str]] = {}
    for module in graph.modules:
        mine = ancestors(module) | {module}
        runs: set[str] = set()
        for imported in graph.find_modules_directly_imported_by(module):
            runs.add(imported)
            runs |= ancestors(imported) - mine
        edges[module] = runs
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    try:
        graphlib.TopologicalSorter(edges).prepare()
    except graphlib.CycleError as exc:
        cycle: list[str] = exc.args[1]
        return cycle
    return None


def describe(graph: grimp.ImportGraph, cycle: list[str]) -> str:
    """``a -> b (a.py:12: from b import x)`` for each step (the sorter lists a cycle dependent-first)."""
    steps = []
    for imported, importer in itertools.pairwise(cycle):
        where = graph.get_import_details(importer=importer, imported=imported)
        line = f"line {where[0]['line_number']}: {where[0]['line_contents']}" if where else "package __init__"
        steps.append(f"{importer} -> {imported} ({line})")
    return "\n".join(steps)


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True, cache_dir=None)


def test_the_engine_packages_have_no_import_cycle(graph: grimp.ImportGraph) -> None:
    cycle = find_cycle(import_edges(graph))
    assert cycle is None, f"import cycle (move the shared name down a layer):\n{describe(graph, cycle)}"


def test_the_walk_sees_every_package_and_finds_a_planted_cycle(graph: grimp.ImportGraph) -> None:
    """The check can fail: the graph holds modules of all four packages, and an added back-edge (the AMI
    session imported by the connection it builds on) is reported as a cycle."""
    assert {m.split(".")[0] for m in graph.modules} == set(PACKAGES)
    assert graph.direct_import_exists(importer="callflow.ami.session", imported="callflow.ami.client")
    edges = import_edges(graph)
    edges["callflow.ami.client"].add("callflow.ami.session")
    cycle = find_cycle(edges)
    assert cycle is not None
    assert {"callflow.ami.client", "callflow.ami.session"} <= set(cycle)


def test_a_package_init_that_reexports_its_importer_is_a_cycle() -> None:
    """``queues/x.py`` imports ``callflow.a.b``; ``callflow/a/__init__.py`` imports ``queues.x``: running
    ``callflow.a.b`` runs that ``__init__`` first, so the two depend on each other."""
    graph = grimp.ImportGraph()
    for module in ("callflow", "callflow.a", "callflow.a.b", "queues", "queues.x"):
        graph.add_module(module)
    graph.add_import(importer="queues.x", imported="callflow.a.b")
    graph.add_import(importer="callflow.a", imported="queues.x")
    cycle = find_cycle(import_edges(graph))
    assert cycle is not None
    assert {"queues.x", "callflow.a"} <= set(cycle)

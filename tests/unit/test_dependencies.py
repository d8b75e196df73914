"""The runtime dependencies are exactly what the engine imports: a package only benchmarks or tests use
(panoramisk, the parse baseline; pyVoIP, the audio tests) is an extra, never installed with the engine."""

from __future__ import annotations

import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("callflow", "ivr", "queues", "recordings")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match is not None, requirement
    return normalise(match.group(0))


def project() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        table: dict[str, object] = tomllib.load(f)["project"]
    return table


def imported_distributions() -> dict[str, set[str]]:
    """Distribution -> the engine modules importing it (``if TYPE_CHECKING:`` imports left out: they
    never run), found by walking every import of the four packages."""
    graph = grimp.build_graph(*PACKAGES, include_external_packages=True, exclude_type_checking_imports=True,
                              cache_dir=None)
    owners = packages_distributions()
    found: dict[str, set[str]] = {}
    for module in graph.modules:
        top = module.split(".")[0]
        if top in PACKAGES or top in sys.stdlib_module_names or top == "__future__":
            continue
        assert top in owners, f"{top} is imported by the engine but installed by no distribution"
        for dist in owners[top]:
            found.setdefault(normalise(dist), set()).update(graph.find_modules_that_directly_import(module))
    return found


def test_runtime_dependencies_are_what_the_engine_imports() -> None:
    declared = {requirement_name(r) for r in project()["dependencies"]}  # type: ignore[attr-defined]
    imported = imported_distributions()
    assert sorted(set(imported) - declared) == [], "imported by the engine but not a runtime dependency"
    assert sorted(declared - set(imported)) == [], "a runtime dependency the engine never imports"


def test_bench_and_test_only_packages_are_extras_that_make_test_installs() -> None:
    imported = imported_distributions()
    extras: dict[str, list[str]] = project()["optional-dependencies"]  # type: ignore[assignment]
    for name in ("panoramisk", "pyvoip", "asyncpg"):
        assert name not in imported, f"{name}: the engine imports it ({sorted(imported.get(name, []))})"
    dev = {requirement_name(r) for r in extras["dev"]}
    assert "pyvoip" in dev
    assert {requirement_name(r) for r in extras["bench"]} == {"panoramisk", "asyncpg"}
    assert "siaga112" in dev  # siaga112[bench]: make test installs the benchmark baseline too
    setup = (ROOT / "scripts" / "setup.sh").read_text(encoding="utf-8")
    assert "-e '.[dev]'" in setup

"""The engine is assembled in one place (callflow/app.py), each site policy is built in one place
(callflow/policies.py), and the layers keep to their side: no argparse below the commands, no domain
package reading the site file, no module importing another package's private module."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp
import pytest

from callflow.ami import AmiEndpoint
from callflow.app import EnginePaths, build_engine
from callflow.calls.derive import DeriveOptions
from callflow.calls.model import CallClass
from callflow.calls.tracker import CallTracker
from callflow.policies import SitePolicies, derive_options, recording_policy
from callflow.settings import load_settings
from callflow.siteconfig import Calls, Recording, Site, load_site, pbx_config_dir
from queues import OperatorManager
from queues.callbacks import CallbackService
from recordings import Recorder

PACKAGES = ("callflow", "ivr", "queues", "recordings")
ROOT = Path(__file__).resolve().parents[2]
COMMAND_LAYER = ("callflow.cli", "callflow.commands")


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    """Every import, ``if TYPE_CHECKING:`` ones included, and the outside modules they name."""
    return grimp.build_graph(*PACKAGES, include_external_packages=True, cache_dir=None)


@pytest.fixture(scope="module")
def site() -> Site:
    return load_site(pbx_config_dir() / "site.toml").site


def in_layer(module: str, layers: tuple[str, ...]) -> bool:
    return any(module == layer or module.startswith(layer + ".") for layer in layers)


def test_no_argparse_below_the_commands(graph: grimp.ImportGraph) -> None:
    users = graph.find_modules_that_directly_import("argparse")
    assert users, "the walk must see the commands' own argparse imports"
    assert sorted(m for m in users if not in_layer(m, COMMAND_LAYER)) == []


def test_no_module_imports_another_packages_private_module(graph: grimp.ImportGraph) -> None:
    """``a.b._c`` is for ``a.b`` and what is inside it; everyone else uses ``a.b``'s public names."""
    offences = []
    for importer in sorted(graph.modules):
        if not in_layer(importer, PACKAGES):
            continue
        for imported in graph.find_modules_directly_imported_by(importer):
            parts = imported.split(".")
            private = next((i for i, p in enumerate(parts) if p.startswith("_") and not p.startswith("__")),
                           None)
            if private is not None and not in_layer(importer, (".".join(parts[:private]),)):
                offences.append(f"{importer} imports {imported}")
    assert offences == []


@pytest.mark.parametrize("domain", ["recordings", "queues"])
def test_domain_packages_never_read_the_site_file(graph: grimp.ImportGraph, domain: str) -> None:
    """They receive policy objects (callflow/policies.py builds them): no site model, loader or lab."""
    site_readers = ("callflow.siteconfig", "callflow.lab", "tomllib")
    for module in graph.find_descendants(domain) | {domain}:
        imported = graph.find_modules_directly_imported_by(module)
        assert not {m for m in imported if in_layer(m, site_readers)}, module


def test_serve_only_resolves_and_calls_the_composition_root(graph: grimp.ImportGraph) -> None:
    """``serve`` builds no part itself: it imports none of the parts' packages, only callflow.app."""
    imported = graph.find_modules_directly_imported_by("callflow.commands.serve")
    assert "callflow.app" in imported
    parts = ("recordings", "queues", "ivr", "callflow.calls.tracker", "callflow.console.wiring",
             "callflow.policies")
    assert sorted(m for m in imported if in_layer(m, parts)) == []


def test_policies_are_built_only_in_callflow_policies() -> None:
    """No other engine module constructs a site policy (a second place would be a second set of
    defaults)."""
    policies = {"RecordingPolicy", "QueuePolicy", "CallbackPolicy"}
    builders = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                        and node.func.id in policies):
                    builders.append(str(path.relative_to(ROOT)))
    assert sorted(set(builders)) == ["callflow/policies.py"]


def test_one_set_of_defaults_the_site_files(site: Site) -> None:
    """Without a site file the engine runs the site model's defaults; the shipped site file writes the
    same values out (its documentation), and the old built-in 3650/365 days are gone."""
    default = recording_policy()
    assert default == recording_policy(site.recording)
    assert default.retention_days == {CallClass.EMERGENCY: 365, CallClass.NONEMERGENCY: 90,
                                      CallClass.UNKNOWN: 365}
    assert default == recording_policy(Recording())
    # short abandons: one setting, the site file's [calls] short_abandon_s, one default (3 s)
    assert derive_options() == derive_options(site.calls) == DeriveOptions() == DeriveOptions(3.0)


def test_build_engine_assembles_every_part_with_the_sites_policies(tmp_path: Path, site: Site) -> None:
    settings = load_settings(ivr={"enabled": False})
    paths = EnginePaths(database=tmp_path / "siaga112.db", recordings=tmp_path / "rec")
    engine = build_engine(settings, site, paths, endpoint=AmiEndpoint("127.0.0.1", 1, "siaga112", "x"))
    kinds = {type(c): c for c in engine.components}
    assert {CallTracker, Recorder, OperatorManager, CallbackService} <= set(kinds)
    expected = SitePolicies.of(site)
    recorder = kinds[Recorder]
    assert isinstance(recorder, Recorder)
    assert recorder.policy == expected.recording
    assert recorder.root == tmp_path / "rec"
    operators = kinds[OperatorManager]
    assert isinstance(operators, OperatorManager)
    assert operators.policy == expected.queues
    assert set(operators.policy.operators) == {op.name for op in site.operators}
    callbacks = kinds[CallbackService]
    assert isinstance(callbacks, CallbackService)
    assert callbacks.policy == expected.callbacks
    tracker = kinds[CallTracker]
    assert callbacks in getattr(tracker, "listeners", [])
    assert getattr(tracker, "options", None) == expected.derive
    quick = site.model_copy(update={"calls": Calls(short_abandon_s=5.0)})
    built = build_engine(settings, quick, paths, endpoint=AmiEndpoint("127.0.0.1", 1, "siaga112", "x"))
    [other] = [c for c in built.components if isinstance(c, CallTracker)]
    assert other.options == DeriveOptions(short_abandon_s=5.0)  # the site's threshold derives the records
    assert (tmp_path / "siaga112.db").exists()  # checked (created) before anything attaches

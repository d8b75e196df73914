"""The composition root: the engine assembled in one place.

``build_engine(settings, site, paths, endpoint=...)`` builds every part (call tracker, recorder, operators,
callbacks, IVR, console) and wires them together. Its inputs are plain values: the engine's settings, the
loaded site file (or ``None``: the site model's defaults), where the files are (:class:`EnginePaths`) and
the AMI endpoint. The commands (``serve``, ``demo``, ``ivr serve``) parse their arguments, resolve paths
and call in here; nothing here knows about a command line. The site file's sections become policies in
:mod:`callflow.policies`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callflow.agencies import HandoffPolicy
from callflow.agencies.outbox import OutboxError, read_secret
from callflow.ami import AmiEndpoint
from callflow.calls.derive import DeriveOptions
from callflow.calls.recovery import RecoverySources
from callflow.calls.setup import check_database
from callflow.calls.tracker import CallTracker, spill_path_for
from callflow.cluster import LeaseTiming
from callflow.cluster.service import ClusterNode
from callflow.console import ConsoleComponent, ConsoleError, HttpAddress
from callflow.console.wiring import prepare_store, store_providers
from callflow.incidents import load_registry
from callflow.policies import SitePolicies
from callflow.service import CallEventLogger, Component, Engine
from callflow.settings import EngineSettings
from callflow.site_watch import SiteCategories, SiteSource, SiteWatcher
from callflow.siteconfig import LoadedSite, Site
from callflow.store import StoreLocation
from ivr import IvrServer
from ivr.gate import IvrGate
from ivr.keys import MissedKeys
from ivr.process import IvrProcess
from ivr.silence import SpeechMarks
from queues import ManagedOperators, OperatorManager
from queues.abuse.service import AbuseFlags
from queues.callbacks import CallbackService
from queues.mirror import OperatorMirror
from recordings import Recorder


@dataclass(frozen=True)
class EnginePaths:
    """Where the engine's files and ports are on this host, resolved by the command (from ``--lab``,
    ``--database`` and the settings): every part uses these, none looks them up again."""

    database: StoreLocation  # the one store every part shares (a SQLite file or a PostgreSQL URL)
    recordings: Path  # recordings root, host side
    recordings_in_asterisk: str | None = None  # the same folder as Asterisk sees it (a lab's chroot)
    cdr_file: Path | None = None  # Asterisk's CSV CDR and queue_log: what happened while detached
    queue_log_file: Path | None = None
    agencies_file: Path | None = None  # the agency/unit registry dispatch sends to
    fastagi_port: int | None = None  # the IVR's FastAGI port and prompt folder (default: the settings')
    sounds_dir: Path | None = None
    lab: str | None = None  # the lab instance these came from (the IVR child process resolves the same)
    data_dir: Path | None = None  # the engine's own files (the journal's spill file with a PostgreSQL store)


def build_engine(settings: EngineSettings, site: Site | None, paths: EnginePaths, *, endpoint: AmiEndpoint,
                 http: HttpAddress | None = None, follow: SiteSource | None = None) -> Engine:
    """The engine with every part, attached to ``endpoint`` when run. ``http``: the operator console's
    address (None: no console). ``follow``: where the site is applied; the running engine takes each new
    version (operators, policies, the IVR tree, the console's categories) without a restart. Raises
    StoreError, RegistryError or ConsoleError (clear messages) before anything is attached."""
    ami = settings.ami
    return Engine(endpoint, build_components(settings, site, paths, http=http, follow=follow),
                  ping_interval=ami.ping_interval_s, ping_timeout=ami.ping_timeout_s,
                  action_timeout=ami.action_timeout_s)


def build_components(settings: EngineSettings, site: Site | None, paths: EnginePaths, *,
                     http: HttpAddress | None = None, follow: SiteSource | None = None) -> list[Component]:
    """The engine's parts, in the order each event reaches them."""
    policies = SitePolicies.of(site, dial_callbacks=settings.callbacks.dial)
    categories = SiteCategories(site)
    tracker = call_tracker(settings, paths, policies.derive)
    cluster = cluster_node(settings, paths, tracker)
    operators = OperatorManager(database=paths.database, policy=policies.queues)
    callbacks = CallbackService(paths.database, policies.callbacks, leadership=cluster)
    tracker.listeners.append(callbacks)
    recorder = Recorder(database=paths.database, root=paths.recordings,
                        asterisk_root=paths.recordings_in_asterisk, policy=policies.recording)
    components: list[Component] = [CallEventLogger(), tracker, recorder, operators, callbacks,
                                   AbuseFlags(paths.database)]
    if cluster is not None:
        components.append(cluster)
        # both nodes' queues agree on who is logged in, paused, on a call (queues/mirror)
        components.append(OperatorMirror(paths.database, settings.node.name,
                                         lost_after_s=settings.node.lost_after_s))
    if follow is not None:
        def learn(loaded: LoadedSite) -> None:
            new = SitePolicies.of(loaded.site, dial_callbacks=settings.callbacks.dial)
            operators.set_policy(new.queues)
            recorder.policy, callbacks.policy = new.recording, new.callbacks
            categories.learn(loaded.site)
        components.append(SiteWatcher(follow, [learn]))
    if settings.ivr.enabled:
        gate = IvrGate()  # the dial plan reaches the IVR only while it holds the FastAGI port
        if settings.ivr.isolation == "process":
            components.append(IvrProcess(lab=paths.lab, log_format=settings.log_format, gate=gate,
                                         site_file=follow.fixed if follow is not None else None))
        else:
            components.append(gated(ivr_server(settings, paths, site=follow), gate))
        components.append(gate)
        if settings.ivr.missed_keys:
            # first: a menu waiting for a key Asterisk dropped is a caller waiting (ivr/keys.py)
            components.insert(0, MissedKeys())
        components.insert(0, SpeechMarks())  # marks a caller who spoke, for the silent-call probe
    if http is not None:
        components.append(_console(settings, paths, http, tracker=tracker, operators=operators,
                                   callbacks=callbacks, handoffs=policies.handoffs, categories=categories,
                                   cluster=cluster))
    return components


def call_tracker(settings: EngineSettings, paths: EnginePaths, derive: DeriveOptions) -> CallTracker:
    """The tracker, deriving records as the site's ``[calls]`` says (``derive``); raises StoreError (clear
    message, file untouched) for a bad database."""
    check_database(paths.database)
    calls = settings.calls
    return CallTracker(paths.database,
                       spill_path=spill_path_for(paths.database, paths.data_dir, settings.node.name),
                       sources=RecoverySources(paths.cdr_file, paths.queue_log_file),
                       options=derive, node=settings.node.name,
                       max_buffer=calls.buffer_rows)


def cluster_node(settings: EngineSettings, paths: EnginePaths, tracker: CallTracker) -> ClusterNode | None:
    """With ``[node] name`` set: this engine's heartbeat and leader lease on the shared store, the leader
    closing the calls of lost nodes through ``tracker`` (callflow/cluster). None: a single engine."""
    node = settings.node
    if not node.name:
        return None
    return ClusterNode(paths.database, node.name, calls=tracker, lost_after_s=node.lost_after_s,
                       timing=LeaseTiming(ttl_s=node.lease_s, renew_s=node.lease_renew_s,
                                          margin_s=min(1.0, node.lease_s / 4)))


def gated(server: IvrServer, gate: IvrGate) -> IvrServer:
    """Tell ``gate`` what ``server`` reports (the server may serve from a thread of its own)."""
    server.on_state = gate.report_threadsafe
    return server


def ivr_server(settings: EngineSettings, paths: EnginePaths, *, site: SiteSource | None = None) -> IvrServer:
    """The FastAGI IVR, on the resolved port and prompt folder (a lab's) or the settings' own. It runs (and
    follows) the tree of ``site`` unless ``[ivr] tree`` names one."""
    return IvrServer(settings.ivr, port=paths.fastagi_port, sounds_dir=paths.sounds_dir, site=site)


def _console(settings: EngineSettings, paths: EnginePaths, http: HttpAddress, *, tracker: CallTracker,
             operators: OperatorManager, callbacks: CallbackService,
             handoffs: HandoffPolicy, categories: SiteCategories,
             cluster: ClusterNode | None = None) -> ConsoleComponent:
    # The console's data sources, all over the one shared database. Queue status comes from the AMI
    # session (wired by the console itself).
    asyncio.run(prepare_store(paths.database))
    for agency, endpoint in handoffs.endpoints.items():  # a missing signing secret stops serve, named
        try:
            read_secret(agency, endpoint)
        except OutboxError as exc:
            raise ConsoleError(f"site file {exc}") from exc
    registry = load_registry(paths.agencies_file) if paths.agencies_file is not None else None
    wiring = store_providers(paths.database, recordings_root=paths.recordings,
                             timezone_name=settings.incidents.timezone, registry=registry,
                             handoffs=handoffs)
    wiring.providers.operators = ManagedOperators(operators)
    wiring.providers.callbacks = callbacks
    wiring.providers.categories = categories  # the form offers the running site's categories
    if cluster is not None:
        wiring.providers.nodes = cluster  # the wallboard's nodes panel
        wiring.agencies.leadership = cluster  # the outbox and the overdue sweep: the leader's
    console = ConsoleComponent(http, paths.database, providers=wiring.providers, resources=wiring.resources,
                               settings=settings.console, timezone=settings.incidents.timezone)
    hub, agencies = console.hub, wiring.agencies

    def incident_changed(message: dict[str, Any]) -> None:
        hub.publish(message)  # incident changes reach every page live
        agencies.on_incident(message)  # and the agencies' own systems (the outbox)

    wiring.incidents.notify = incident_changed
    callbacks.notify = console.hub.publish  # so do callback tasks opened, answered or closed
    wiring.agencies.publish = console.hub.publish  # agencies' updates and escalations too
    tracker.listeners.append(console)  # finished calls refresh the wallboard and the screen pop
    console.bind()  # a taken port is a start-up error, before the engine attaches
    return console

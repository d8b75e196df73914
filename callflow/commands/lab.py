"""``siaga112 lab up | down | status``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from callflow.commands._locate import Location
from callflow.lab import (
    CONSOLE_PORTS,
    STORES,
    ClusterStatus,
    LabError,
    LabPorts,
    LabStatus,
    SetStatus,
    cluster_status,
    down,
    down_set,
    find_runtime,
    free_ports,
    front_view,
    has_set,
    is_cluster,
    lab_site_file,
    set_status,
    status,
    up,
    up_cluster,
    up_set,
)
from callflow.settings import load_settings
from callflow.store import StoreError, StoreLocation, store_exists


def register(sub: Any) -> None:
    p = sub.add_parser("lab", help="a real Asterisk 22 on loopback for development, tests and the demo")
    # --instance is accepted before or after the action (`lab --instance X up` == `lab up --instance X`)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--instance", default=argparse.SUPPRESS,
                        help="lab name; several labs may run side by side (default: default)")
    p.add_argument("--instance", default="default", help="lab name; several labs may run side by side")
    lab_sub = p.add_subparsers(dest="lab_command", metavar="ACTION", required=True)
    p_up = lab_sub.add_parser("up", parents=[common], help="provision (once) and start the lab's Asterisk")
    defaults = LabPorts()
    p_up.add_argument("--ami-port", type=int, default=defaults.ami)
    p_up.add_argument("--ami-tls-port", type=int, default=defaults.ami_tls,
                      help="AMI over TLS (self-signed certificate made at `lab up`)")
    p_up.add_argument("--sip-port", type=int, default=defaults.sip,
                      help="SIP/UDP port; static operators op1..op4 answer on the next four ports, the "
                           "callback trunk dials citizens at SIP port + 9")
    p_up.add_argument("--agi-port", type=int, default=defaults.agi, help="FastAGI port of the engine")
    p_up.add_argument("--rtp-start", type=int, default=defaults.rtp_start)
    p_up.add_argument("--rtp-end", type=int, default=defaults.rtp_end)
    p_up.add_argument("--free-ports", action="store_true", help="pick free ports automatically")
    p_up.add_argument("--nodes", type=int, choices=[1, 2], default=1,
                      help="2: Kamailio (the SIP front) before two Asterisk nodes, INSTANCE-a and INSTANCE-b "
                           "(README: two-node deployment); node b's ports are node a's + 200")
    p_up.add_argument("--front-port", type=int, metavar="PORT",
                      help="with --nodes 2: the SIP front's port (default 15080; free with --free-ports)")
    p_up.add_argument("--engines", action="store_true",
                      help="with --nodes 2: the whole set: also the store and one engine per node "
                           "(`serve --lab INSTANCE-a` / `-b`, detached, logs in the lab's folder)")
    p_up.add_argument("--store", choices=STORES, default=None,
                      help="with --engines: the engines' shared store: postgresql (default: a private "
                           "PostgreSQL kept with the lab, loopback only) or sqlite (the lab's file)")
    p_up.add_argument("--site", type=Path, metavar="FILE",
                      help="render this site file (it becomes the lab's applied site); default: the site "
                           "last applied to this lab (`config apply --lab`), else pbx-config/site.toml")
    p_up.set_defaults(handler=_up)
    p_prov = lab_sub.add_parser("provision", parents=[common],
                                help="build (once) the Asterisk root, or find an installed one")
    p_prov.set_defaults(handler=_provision)
    p_down = lab_sub.add_parser("down", parents=[common], help="stop the Asterisk that `lab up` started")
    p_down.add_argument("--wipe-store", action="store_true",
                        help="two-node set: also remove its store's data (the private PostgreSQL, or the "
                             "lab's SQLite file): the next `lab up --nodes 2 --engines` starts empty")
    p_down.set_defaults(handler=_down)
    p_status = lab_sub.add_parser("status", parents=[common], help="what runs where")
    p_status.add_argument("--json", action="store_true", help="machine-readable output")
    p_status.set_defaults(handler=_status)


def _up(args: argparse.Namespace) -> int:
    if args.nodes == 2:
        return _up_cluster(args)
    if args.engines or args.store:
        print("siaga112 lab up: --engines and --store are for the two-node set: add --nodes 2",
              file=sys.stderr)
        return 2
    if is_cluster(args.instance) and cluster_status(args.instance).running:
        print(f"siaga112 lab up: lab {args.instance!r} runs two nodes: `siaga112 lab down --instance "
              f"{args.instance}` first, or `lab up --nodes 2`", file=sys.stderr)
        return 2
    already = status(args.instance)
    ports = free_ports() if args.free_ports else LabPorts(
        ami=args.ami_port, ami_tls=args.ami_tls_port, sip=args.sip_port, agi=args.agi_port,
        rtp_start=args.rtp_start, rtp_end=args.rtp_end)
    site_file = lab_site_file(args.instance, args.site)
    try:
        st = up(args.instance, ports, site_file=args.site)
    except LabError as exc:
        print(f"siaga112 lab up: {exc}", file=sys.stderr)
        return 2
    word = "already running" if already.running else "started"
    print(f"lab {st.instance!r} {word}: {st.asterisk_version} ({st.mode}, pid {st.pid})")
    print(f"  AMI      {st.ami['host']}:{st.ami['port']} (user {st.ami['username']}, secret in "
          f"{st.secrets_file})")
    if st.ami.get("tls_port"):
        print(f"  AMI TLS  {st.ami['host']}:{st.ami['tls_port']} (certificate {st.ami['tls_ca_file']})")
    print(f"  SIP      {st.sip['host']}:{st.sip['port']}/udp  (dial 112)")
    print(f"  FastAGI  expected at {st.fastagi['host']}:{st.fastagi['port']}")
    if st.callbacks:
        print(f"  callback trunk dials citizens at 127.0.0.1:{st.callbacks['trunk_port']}/udp")
    print(f"  config   {st.config_dir} (site file {site_file})")
    print(f"  database {Location(lab=st.instance).database} (created by `siaga112 serve --lab "
          f"{st.instance}`)")
    print(f"  logs     {st.log_dir}")
    return 0


def _up_cluster(args: argparse.Namespace) -> int:
    ports = None if args.free_ports else LabPorts(
        ami=args.ami_port, ami_tls=args.ami_tls_port, sip=args.sip_port, agi=args.agi_port,
        rtp_start=args.rtp_start, rtp_end=args.rtp_end)
    if args.store and not args.engines:
        print("siaga112 lab up: --store chooses the engines' store: add --engines", file=sys.stderr)
        return 2
    try:
        if args.engines or set_status(args.instance).with_engines:  # a set up --engines: all of it
            whole = up_set(args.instance, store=args.store, free=args.free_ports, ports=ports,
                           front_port=args.front_port, site_file=args.site, ivr_enabled=_engines_run_ivr())
            _print_cluster(whole.cluster, whole)
            return 0
        st = up_cluster(args.instance, free=args.free_ports, ports=ports, front_port=args.front_port,
                        site_file=args.site)
    except LabError as exc:
        print(f"siaga112 lab up: {exc}", file=sys.stderr)
        return 2
    whole = set_status(args.instance)  # a set started with --engines: its store and engines as they are
    _print_cluster(st, whole if whole.with_engines else None)
    return 0


def _print_cluster(st: ClusterStatus, whole: SetStatus | None = None) -> None:
    front = st.front
    state = "running" if st.front_running else "DOWN"
    print(f"lab {st.instance!r}: two nodes behind a SIP front (since {st.started_at})")
    print(f"  SIP front  Kamailio {state}, pid {front.get('pid')}: {front.get('host')}:"
          f"{front.get('port')}/udp (citizens dial 112 here; operators register here); config "
          f"{front.get('config_dir')}")
    first: LabStatus | None = None
    view = front_view(st)
    for name, node in st.nodes().items():
        first = first or node
        word = f"running, pid {node.pid}" if node.running else "DOWN"
        if name in view:
            word += f"; the front sees it {view[name]}"
        print(f"  node {name:<5} Asterisk {word} (systemname {name}, lab instance {node.instance}): "
              f"SIP {node.sip.get('port')}/udp  AMI {node.ami.get('port')}  "
              f"FastAGI {node.fastagi.get('port')}")
    if first is not None and first.operators:
        static = ", ".join(f"{op} {info['port']}" for op, info in first.operators.items()
                           if "port" in info)
        print(f"  operators  SIPp answerers (static contacts) on 127.0.0.1: {static}")
    if whole is not None and whole.with_engines:
        _print_engines(whole)
        return
    for name, inst in st.node_instances.items():
        http = f" --http 127.0.0.1:{CONSOLE_PORTS[name]}" if name in CONSOLE_PORTS else ""
        print(f"  engine {name}   siaga112 serve --lab {inst}{http}   (database "
              f"{Location(lab=inst).database.path})")


def _print_engines(whole: SetStatus) -> None:
    pg = whole.postgres
    if whole.store == "postgresql":
        word = f"running, pid {pg.get('pid')}" if pg.get("running") else "DOWN"
        print(f"  store      PostgreSQL {word}: {pg.get('url')} (loopback only; data {pg.get('data_dir')}, "
              f"log {pg.get('log_file')})")
    else:
        print(f"  store      SQLite {whole.database}")
    for name, engine in whole.engines.items():
        word = f"running, pid {engine.pid}" if engine.running else "DOWN"
        lead = "" if whole.leader != name else "; leader" if engine.running else \
            "; its leader lease has not run out yet (the other engine takes over when it does)"
        print(f"  engine {name:<3} {word}{lead}: console {engine.url}  (serve --lab {engine.instance}; log "
              f"{engine.log_file})")


def _down(args: argparse.Namespace) -> int:
    if is_cluster(args.instance) or has_set(args.instance):
        engines = set_status(args.instance).with_engines
        try:
            was, whole = down_set(args.instance, wipe_store=args.wipe_store)
        except LabError as exc:
            print(f"siaga112 lab down: {exc}", file=sys.stderr)
            return 2
        parts = "engines, nodes, SIP front and store" if engines else "SIP front and nodes"
        print(f"lab {whole.cluster.instance!r} ({parts}) stopped" if was
              else f"lab {whole.cluster.instance!r} is not running; nothing to stop")
        if args.wipe_store:
            print(f"lab {whole.cluster.instance!r}: its store's data removed")
        return 0
    was_running, st = down(args.instance)
    if was_running:
        print(f"lab {st.instance!r} stopped")
    else:
        print(f"lab {st.instance!r} is not running; nothing to stop")
    return 0


def _exists(database: StoreLocation) -> bool:
    try:
        return store_exists(database)
    except StoreError:  # a PostgreSQL server not reachable: nothing there to use
        return False


def _status(args: argparse.Namespace) -> int:
    if is_cluster(args.instance) or has_set(args.instance):
        whole = set_status(args.instance)
        cst = whole.cluster
        if args.json:
            print(whole.as_json())
        elif cst.running or any(e.running for e in whole.engines.values()):
            _print_cluster(cst, whole)
        else:
            engines = " --engines" if whole.with_engines else ""
            print(f"lab {cst.instance!r} (two nodes) is not running (start it with `siaga112 lab up "
                  f"--nodes 2{engines} --instance {cst.instance}`)")
        return 0 if whole.everything_running else 3
    st = status(args.instance)
    where = Location(lab=args.instance)
    if args.json:
        data = json.loads(st.as_json())
        data.update(database=str(where.database.path), database_exists=_exists(where.database.path),
                    site_file=str(where.site_file.path), site_file_from=where.site_file.how)
        print(json.dumps(data, indent=2, sort_keys=True))
        return 0 if st.running else 3
    if not st.running:
        print(f"lab {st.instance!r} is not running (start it with `siaga112 lab up`)")
        return 3
    print(f"lab {st.instance!r} running: {st.asterisk_version} ({st.mode}, pid {st.pid}, since "
          f"{st.started_at})")
    print(f"  AMI {st.ami['host']}:{st.ami['port']}  SIP {st.sip['host']}:{st.sip['port']}/udp  "
          f"FastAGI {st.fastagi['host']}:{st.fastagi['port']}")
    print(f"  root {st.root}  config {st.config_dir}")
    print(f"  database {where.database.path}  site {where.site_file}")
    return 0


def _provision(args: argparse.Namespace) -> int:
    del args
    try:
        runtime = find_runtime()
    except LabError as exc:
        print(f"siaga112 lab provision: {exc}", file=sys.stderr)
        return 2
    where = "installed" if runtime.mode == "host" else f"Debian sid root at {runtime.root}"
    print(f"lab: {runtime.version} ({where})")
    return 0


def _engines_run_ivr() -> bool:
    """Whether the settings the set's engines read (SIAGA112_* and SIAGA112_CONFIG) run the IVR; a broken
    settings file is the engines' to report (the readiness wait shows their log)."""
    try:
        return load_settings().ivr.enabled
    except (ValueError, OSError):
        return True

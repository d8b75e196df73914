"""``siaga112 config`` for a two-node site: each node's Asterisk files and the SIP front's (Kamailio).

- ``config render FILE --out DIR`` writes ``DIR/<node>/`` for each node and ``DIR/kamailio/``;
- ``config diff|apply FILE --etc DIR --node NAME`` on a node's server: that node's Asterisk files;
- ``config diff|apply FILE --front DIR``: Kamailio's files (checked with ``kamailio -c`` before they are
  written; Kamailio then needs a restart, said so);
- ``config diff|apply FILE --lab INSTANCE`` on a two-node lab: node after node (each applied and verified
  like one node's, a failed one rolled back and the next not touched), then the front (the lab restarts
  its Kamailio).
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from callflow.lab import (
    LabError,
    check_front_config,
    cluster_status,
    front_files,
    is_cluster,
    lab_dir,
    restart_front,
)
from callflow.siteconfig import (
    LoadedSite,
    SiteConfigError,
    changed_files,
    load_site,
    node_site,
    read_live,
    render_front,
    render_node,
    resolve_secrets,
    store_applied,
    unified_diff,
    write_files,
)

EXIT_ENVIRONMENT = 2


def for_node(loaded: LoadedSite, node: str | None, *, front: bool = False) -> LoadedSite:
    """The site as node ``node`` runs it; a two-node site without ``--node`` is refused (which Asterisk
    is this?), a one-node site with ``--node`` too."""
    cluster = loaded.site.cluster
    if cluster is None:
        if node is not None or front:
            raise LabError(f"{loaded.path} has no [cluster] section: it is one node; leave out "
                           f"--node/--front")
        return loaded
    if node is None:
        names = ", ".join(n.name for n in cluster.nodes)
        raise LabError(f"{loaded.path} describes nodes {names} behind a SIP front: say which node this "
                       f"Asterisk is (--node NAME), or give --front DIR for Kamailio's files")
    return dataclasses.replace(loaded, site=node_site(loaded.site, node))


def is_cluster_lab(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "lab", None)) and is_cluster(args.lab)


def render_cluster(loaded: LoadedSite, secrets: dict[str, str], out: Path) -> list[Path]:
    """A two-node site rendered: ``out/<node>/*.conf`` per node, ``out/kamailio/`` for the front."""
    assert loaded.site.cluster is not None  # noqa: S101 - the caller checked
    written: list[Path] = []
    for node in loaded.site.cluster.nodes:
        written += write_files(render_node(loaded, secrets, node.name), out / node.name)
    written += write_files(render_front(loaded, secrets), out / "kamailio")
    return written


def on_each_node(args: argparse.Namespace, action: Callable[[argparse.Namespace], int], verb: str) -> int:
    """``action`` (the one-node diff or apply) on each node of the two-node lab, in order; an apply stops
    at the first node that did not take the site (it was rolled back: the other node keeps serving)."""
    cst = cluster_status(args.lab)
    code = 0
    for name, instance in cst.node_instances.items():
        print(f"== node {name} (lab {instance})")
        node_args = argparse.Namespace(**{**vars(args), "lab": instance})
        code = max(code, action(node_args))
        if code and verb == "apply":
            print(f"siaga112 config apply: node {name} did not take the site; the other nodes and the SIP "
                  "front were not touched", file=sys.stderr)
            return code
    print("== SIP front (Kamailio)")
    code = max(code, front_lab(args, verb))
    if verb == "apply" and code == 0:  # the site the two-node lab runs: a later `lab up --nodes 2` keeps it
        store_applied(lab_dir(args.lab) / "config", load_site(args.file))
    return code


def front_lab(args: argparse.Namespace, verb: str) -> int:
    try:
        files, secrets, front_dir = front_files(args.lab, args.file)
    except LabError as exc:
        print(f"siaga112 config {verb}: {exc}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    return _front(files, secrets, front_dir, verb, lab=args.lab)


def front_production(args: argparse.Namespace, loaded: LoadedSite, verb: str) -> int:
    if loaded.site.cluster is None:
        print(f"siaga112 config {verb}: {args.file} has no [cluster] section: there is no SIP front to "
              "configure", file=sys.stderr)
        return EXIT_ENVIRONMENT
    secrets = resolve_secrets(loaded)
    try:
        files = render_front(loaded, secrets)
    except SiteConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    return _front(files, secrets, args.front, verb, lab=None)


def _front(files: dict[str, str], secrets: dict[str, str], front_dir: Path, verb: str, *,
           lab: str | None) -> int:
    live = read_live(front_dir, sorted(files))
    if verb == "diff":
        diff = unified_diff(live, files, secrets)
        print(diff if diff else f"no changes: the SIP front's files in {front_dir} are up to date",
              end="" if diff else "\n")
        return 0
    changed = changed_files(live, files)
    if not changed:
        print(f"nothing to apply: {front_dir} already has the SIP front's files")
        return 0
    kamailio = shutil.which("kamailio")
    if kamailio is not None:  # Kamailio's own check first: a file it refuses is never written
        with tempfile.TemporaryDirectory(prefix="siaga112-front-") as tmp:
            staged = write_files({"kamailio.cfg": files["kamailio.cfg"]}, Path(tmp))[0]
            try:
                check_front_config(kamailio, staged)
            except LabError as exc:
                print(f"siaga112 config apply: {exc}\nnothing was changed in {front_dir}", file=sys.stderr)
                return 1
    write_files(files, front_dir)
    print(f"SIP front: wrote {', '.join(changed)} in {front_dir}")
    if lab is not None:
        try:
            st = restart_front(lab)
        except LabError as exc:
            print(f"siaga112 config apply: the lab's Kamailio did not restart: {exc}", file=sys.stderr)
            return 2
        print(f"SIP front restarted (pid {st.front.get('pid')}); operators' phones register again within "
              "their expiry")
    else:
        print("NOTE: only dispatcher.list changed: `kamcmd dispatcher.reload` takes it without a restart"
              if changed == ["dispatcher.list"]
              else "NOTE: restart Kamailio to take kamailio.cfg (`systemctl restart kamailio`)")
    return 0


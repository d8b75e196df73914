"""Render the default site file (``pbx-config/site.toml``) into a lab instance's configuration directory,
with the lab's ports, directories and per-lab secrets in place of the site file's (see
:mod:`callflow.siteconfig`: templates, placeholders, headers).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from callflow.lab._tls import TLS_CERT, TLS_KEY
from callflow.lab.errors import LabError
from callflow.siteconfig import (
    Cluster,
    ClusterNode,
    LoadedSite,
    Paths,
    SipFront,
    Site,
    SiteConfigError,
    load_site,
    node_site,
    pbx_config_dir,
    render_site,
    resolve_secrets,
    write_files,
)

STATIC_OPERATORS = 4  # op1..op4: static contacts (lab SIPp answerers)
REGISTERING_OPERATORS = 2  # op5, op6: register (pyVoIP softphones)
CALLBACK_TRUNK_OFFSET = 9  # the site file's callback trunk (5069) keeps its offset from the SIP port (5060)


@dataclass(frozen=True)
class LabPorts:
    ami: int = 15038
    ami_tls: int = 15039
    sip: int = 15060
    agi: int = 15073
    rtp_start: int = 31000
    rtp_end: int = 31999

    def operator_port(self, index: int) -> int:
        """SIP port where the lab expects static operator ``op<index>`` to answer."""
        return self.sip + index

    @property
    def callback_trunk(self) -> int:
        """SIP port where the lab's callback trunk (citizens' numbers) points: a test's SIPp "citizen"."""
        return self.sip + CALLBACK_TRUNK_OFFSET

    def all_checked(self) -> list[tuple[str, str, int]]:
        ports = [("AMI", "tcp", self.ami), ("AMI TLS", "tcp", self.ami_tls), ("SIP", "udp", self.sip),
                 ("FastAGI", "tcp", self.agi),
                 ("callback trunk SIP", "udp", self.callback_trunk)]
        ports += [(f"operator op{i} SIP", "udp", self.operator_port(i))
                  for i in range(1, STATIC_OPERATORS + 1)]
        return ports


@dataclass(frozen=True)
class LabCluster:
    """A two-node lab: the SIP front's port, the nodes (name, SIP port, priority) and the SIP port the
    operators' static contacts are counted from (node ``a``'s: its SIPp operators answer there)."""

    front_port: int
    nodes: tuple[tuple[str, int, int], ...]
    operators_sip: int
    front_etc: str

    def as_dict(self) -> dict[str, object]:
        return {"front_port": self.front_port, "nodes": [list(n) for n in self.nodes],
                "operators_sip": self.operators_sip, "front_etc": self.front_etc}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> LabCluster:
        nodes = data["nodes"]
        assert isinstance(nodes, list)  # noqa: S101 - written by as_dict
        return cls(front_port=int(str(data["front_port"])),
                   nodes=tuple((str(n[0]), int(n[1]), int(n[2])) for n in nodes),
                   operators_sip=int(str(data["operators_sip"])), front_etc=str(data["front_etc"]))

    def section(self, site: Site) -> Cluster:
        """The site's [cluster] with the lab's addresses (its probe and timeout values kept)."""
        loopback = ipaddress.IPv4Address("127.0.0.1")
        front = site.cluster.front if site.cluster else SipFront()
        return Cluster(front=front.model_copy(update={"bind": loopback, "port": self.front_port,
                                                      "etc_dir": self.front_etc}),
                       nodes=[ClusterNode(name=name, sip_address=loopback, sip_port=port, priority=priority)
                              for name, port, priority in self.nodes])


_LOOPBACK_CONTACT = re.compile(r"^(sip:[^@]+@(?:127\.\d+\.\d+\.\d+|localhost)):(\d+)(.*)$")
_LOOPBACK_TRUNK = re.compile(r"^sip:(?:[^@]+@)?(?:127\.\d+\.\d+\.\d+|localhost)(?::\d+)?$")


APPLY_USER = "siaga112-apply"  # `config apply`'s AMI user in every lab


def lab_site(site: Site, *, ports: LabPorts, inner: str, ami_user: str,
             cluster: LabCluster | None = None) -> Site:
    """The site with the lab's ports, directories and AMI user. Static loopback contacts keep their offset
    from the SIP port (``op1`` at SIP port + 1), so the lab's SIPp answerers are found. Citizens' calls
    come from 127.0.0.1 only (the lab's SIPp callers): another loopback address (127.0.0.2) stands for a
    stranger outside the telco's trunk. With ``cluster`` (a two-node lab) the site's [cluster] is the
    lab's and static contacts count from the operators' SIP port of the cluster."""
    operators = []
    base = cluster.operators_sip if cluster else ports.sip
    for op in site.operators:
        match = _LOOPBACK_CONTACT.match(op.contact or "")
        if match:
            port = base + int(match.group(2)) - site.sip.port
            operators.append(op.model_copy(update={"contact": f"{match.group(1)}:{port}{match.group(3)}"}))
        else:
            operators.append(op)
    loopback = ipaddress.IPv4Address("127.0.0.1")
    callbacks = site.callbacks
    if _LOOPBACK_TRUNK.match(callbacks.trunk_contact):
        callbacks = callbacks.model_copy(update={"trunk_contact": f"sip:127.0.0.1:{ports.callback_trunk}"})
    return site.model_copy(update={
        "operators": operators,
        "callbacks": callbacks,
        # AMI over TLS beside plain AMI: the lab's self-signed certificate (made by `lab up`, see
        # callflow/lab/_tls.py) under the instance's keys/ directory
        "ami": site.ami.model_copy(update={"bind": loopback, "port": ports.ami, "username": ami_user,
                                           "apply": site.ami.apply.model_copy(
                                               update={"username": APPLY_USER}),
                                           "permit": [ipaddress.IPv4Network("127.0.0.1/32")], "tls": True,
                                           "tls_port": ports.ami_tls,
                                           "tls_cert_file": Path(f"{inner}/keys/{TLS_CERT}"),
                                           "tls_key_file": Path(f"{inner}/keys/{TLS_KEY}")}),
        "sip": site.sip.model_copy(update={"bind": loopback, "port": ports.sip, "rtp_start": ports.rtp_start,
                                           "rtp_end": ports.rtp_end,
                                           "ingress_networks": [ipaddress.IPv4Network("127.0.0.1/32")]}),
        "fastagi": site.fastagi.model_copy(update={"host": loopback, "port": ports.agi}),
        "paths": Paths(recordings=f"{inner}/recordings", sounds=f"{inner}/sounds", moh=f"{inner}/moh"),
        **({"cluster": cluster.section(site)} if cluster else {}),
    })


def load_lab_site(site_file: Path | None, *, ports: LabPorts, inner: str, ami_user: str,
                  secrets: dict[str, str], cluster: LabCluster | None = None,
                  node: str | None = None) -> tuple[LoadedSite, dict[str, str]]:
    """Load a site file (default: ``pbx-config/site.toml``) as the lab runs it, with its secrets resolved
    (the lab's own per-instance secrets first, then the site file's references). In a two-node lab
    (``cluster``), ``node`` gives that node's Asterisk's view (:func:`callflow.siteconfig.node_site`);
    without ``node``: the whole cluster (the SIP front's view)."""
    path = site_file or pbx_config_dir() / "site.toml"
    try:
        loaded = load_site(path)
        site = lab_site(loaded.site, ports=ports, inner=inner, ami_user=ami_user, cluster=cluster)
        loaded = dataclasses.replace(loaded, site=node_site(site, node) if node else site)
        resolved = resolve_secrets(loaded, secrets)
    except SiteConfigError as exc:
        raise LabError(f"the site file cannot be rendered for the lab:\n{exc}") from None
    except ValidationError:  # the lab's own paths (from the instance name) break the site file's rules
        raise LabError(f"the lab's directory {inner} cannot be written into Asterisk's files (paths are "
                       f"letters, digits and . _ - + / only): choose an instance name of those "
                       f"characters") from None
    return loaded, resolved


def asterisk_conf(inner: str, module_dir: str, systemname: str | None = None) -> str:
    # a node of a two-node lab: its name prefixes every uniqueid/linkedid (unique across the nodes)
    system = f"systemname = {systemname}\n" if systemname else ""
    return (
        "; siaga112 lab: generated by `siaga112 lab up`; do not edit by hand.\n"
        "[directories]\n"
        f"astetcdir => {inner}/etc\n"
        f"astmoddir => {module_dir}\n"
        f"astvarlibdir => {inner}/lib\n"
        f"astdbdir => {inner}/db\n"
        f"astkeydir => {inner}/lib\n"
        "astdatadir => /usr/share/asterisk\n"
        f"astagidir => {inner}/agi-bin\n"
        f"astspooldir => {inner}/spool\n"
        f"astrundir => {inner}/run\n"
        f"astlogdir => {inner}/log\n"
        "astsbindir => /usr/sbin\n"
        "\n[options]\n"
        "verbose = 0\n"
        "debug = 0\n"
        "maxfiles = 8192\n"
        "hideconnect = yes\n"
        "defaultlanguage = id\n"
        "documentation_language = en_US\n"
        + system
    )


def render_config(*, host_inner: Path, inner: str, module_dir: str, ports: LabPorts,
                  ami_user: str, secrets: dict[str, str], site_file: Path | None = None,
                  cluster: LabCluster | None = None, node: str | None = None) -> list[Path]:
    """Write asterisk.conf and the rendering of the site file (default ``pbx-config/site.toml``) into
    ``host_inner/etc``. Returns the files."""
    etc = host_inner / "etc"
    for sub in ("etc", "log", "run", "spool", "db", "lib", "agi-bin", "recordings", "moh", "sounds", "keys"):
        (host_inner / sub).mkdir(parents=True, exist_ok=True)
    (host_inner / "log" / "cdr-custom").mkdir(parents=True, exist_ok=True)  # cdr_custom does not create it
    os.chmod(etc, 0o700)  # holds secrets
    loaded, resolved = load_lab_site(site_file, ports=ports, inner=inner, ami_user=ami_user,
                                     secrets=secrets, cluster=cluster, node=node)
    try:
        files = render_site(loaded, resolved)
    except SiteConfigError as exc:
        raise LabError(str(exc)) from None
    target = etc / "asterisk.conf"
    target.write_text(asterisk_conf(inner, module_dir, node))
    os.chmod(target, 0o600)
    return [target, *write_files(files, etc)]

"""Two nodes behind one SIP front: what each node's Asterisk runs and what Kamailio runs, from one site file.

A node's Asterisk files are the one-node rendering of the site *as that node runs it*
(:func:`node_site`): its own SIP address, citizens arriving only from the SIP front, and every operator
reached through the SIP front (``contact = sip:<operator>@<front>``), which knows where the phone is (its
registration, or the site file's static contact). Kamailio's files come from ``pbx-config/kamailio/``
templates: ``kamailio.cfg`` (routing, the operators' passwords and static contacts) and
``dispatcher.list`` (the nodes, by priority).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from pathlib import Path

from callflow.siteconfig._checks import CheckContext, register_check
from callflow.siteconfig._load import LoadedSite
from callflow.siteconfig._model import Cluster, Site
from callflow.siteconfig._problems import Problem, SiteConfigError
from callflow.siteconfig._render import pbx_config_dir, render_site, substitute

FRONT_FILES = ("kamailio.cfg", "dispatcher.list")
FRONT_HEADER_END = "# (end of the siaga112 header)\n"
DISPATCHER_SET = 1


@register_check
def check_cluster(loaded: LoadedSite, ctx: CheckContext) -> Iterable[Problem]:
    """An operator's static contact on the front itself would send the front's INVITE back to the front."""
    del ctx
    cluster = loaded.site.cluster
    if cluster is None:
        return
    front = f"@{cluster.front.bind}:{cluster.front.port}"
    for i, op in enumerate(loaded.site.operators):
        if op.contact and (op.contact.endswith(front) or front + ";" in op.contact):
            yield loaded.problem(("operators", i, "contact"),
                                 f"{op.name}'s contact is the SIP front itself ({op.contact})",
                                 "give the phone's own address, or leave contact out for a phone that "
                                 "registers (at the front)")


def cluster_of(loaded: LoadedSite) -> Cluster:
    """The site's cluster section; a :class:`SiteConfigError` if it has none."""
    if loaded.site.cluster is None:
        raise SiteConfigError([Problem(str(loaded.path), 1, "the site file has no [cluster] section",
                                       "a SIP front and nodes exist only for a two-node site: add "
                                       "[cluster] (README: two-node deployment)")])
    return loaded.site.cluster


def node_site(site: Site, node: str) -> Site:
    """``site`` as node ``node``'s Asterisk runs it (see the module's notes)."""
    cluster = site.cluster
    if cluster is None or (member := cluster.node(node)) is None:
        known = ", ".join(n.name for n in cluster.nodes) if cluster else "none: no [cluster] section"
        raise SiteConfigError([Problem("<site>", 1, f"no node {node!r} in the site file's [cluster]",
                                       f"nodes: {known}")])
    front = cluster.front
    operators = [op.model_copy(update={"contact": f"sip:{op.name}@{front.bind}:{front.port}"})
                 for op in site.operators]
    return site.model_copy(update={
        "operators": operators,
        "sip": site.sip.model_copy(update={
            "bind": member.sip_address, "port": member.sip_port,
            # citizens reach a node only through the SIP front, which checks the trunk's networks
            "ingress_networks": [ipaddress.IPv4Network(f"{front.bind}/32")]}),
    })


def render_node(loaded: LoadedSite, secrets: Mapping[str, str], node: str,
                template_dir: Path | None = None) -> dict[str, str]:
    """Node ``node``'s Asterisk files."""
    site = node_site(loaded.site, node)
    return render_site(LoadedSite(site, loaded.path, loaded.text, loaded.positions), secrets, template_dir)


def _kamailio_string(value: str) -> str:
    """``value`` inside a Kamailio configuration string (control characters are refused before this)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def front_values(site: Site, secrets: Mapping[str, str]) -> dict[str, str]:
    cluster = site.cluster
    assert cluster is not None  # noqa: S101 - callers go through cluster_of
    front = cluster.front
    operators = []
    for op in site.operators:
        operators.append(f"\t$sht(operators=>{op.name}) = {_kamailio_string(secrets[op.name])};")
        if op.contact:
            operators.append(f"\t$sht(contacts=>{op.name}) = {_kamailio_string(op.contact)};")
    ingress = " || ".join(f'is_in_subnet("$si", "{net}")' for net in site.sip.ingress_networks)
    return {
        "FRONT_BIND": str(front.bind),
        "FRONT_PORT": str(front.port),
        "FRONT_ETC": front.etc_dir,
        "PROBE_INTERVAL_S": str(front.probe_interval_s),
        "NODE_TIMEOUT_MS": str(front.node_timeout_ms),
        "FRONT_OPERATORS": "\n".join(operators) or "\t# (no operators)",
        "FRONT_INGRESS": ingress or "false",
        "RENDER_NOTE": "generated; do not edit the rendered copy by hand",
    }


def dispatcher_list(cluster: Cluster) -> str:
    """Kamailio's dispatcher.list: ``set destination flags priority attributes``, highest priority first."""
    lines = [f"{DISPATCHER_SET} sip:{node.sip_address}:{node.sip_port} 0 {node.priority} duid={node.name}"
             for node in sorted(cluster.nodes, key=lambda n: (-n.priority, n.name))]
    return "\n".join(lines) + "\n"


def front_header(source_name: str, template: str) -> str:
    return (
        "# -------------------------------------------------------------------------------------------\n"
        f"# Rendered by siaga112 from site file {source_name} and template {template}.\n"
        "# DO NOT EDIT BY HAND: change the site file, then `siaga112 config check` and `config apply`.\n"
        + FRONT_HEADER_END
    )


def render_front(loaded: LoadedSite, secrets: Mapping[str, str], template_dir: Path | None = None
                 ) -> dict[str, str]:
    """The SIP front's files (``kamailio.cfg``, ``dispatcher.list``), deterministic like the nodes'."""
    cluster = cluster_of(loaded)
    source_dir = (template_dir or pbx_config_dir()) / "kamailio"
    template = source_dir / "kamailio.cfg"
    try:
        text = template.read_text(encoding="utf-8")
    except OSError as exc:
        raise SiteConfigError([Problem(str(template), 1, f"cannot read the SIP front's template: "
                                                         f"{exc.strerror}", "is SIAGA112_PBX_CONFIG right?")
                               ]) from None
    cfg = substitute(text, front_values(loaded.site, secrets), str(template))
    # Kamailio wants `#!KAMAILIO` first: the header follows it
    first, _, rest = cfg.partition("\n")
    header = front_header(loaded.path.name, f"{source_dir.parent.name}/kamailio/kamailio.cfg")
    return {"kamailio.cfg": f"{first}\n{header}{rest}",
            "dispatcher.list": front_header(loaded.path.name, "[cluster.nodes]") + dispatcher_list(cluster)}

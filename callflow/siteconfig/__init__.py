"""The site file: one TOML file an admin edits, checked, rendered into Asterisk's configuration, diffed
and applied with verification and automatic rollback."""

from callflow.siteconfig._applied import (
    APPLIED_DIR,
    DEFAULT_STATE_DIR,
    TREE_NAME,
    applied_site_path,
    applied_texts,
    store_applied,
    tree_path,
    tree_text,
)
from callflow.siteconfig._apply import ApplyOutcome, ApplyReport, ApplyTarget, apply_files
from callflow.siteconfig._asterisk_log import MESSAGES_LOG, LogWatch, default_asterisk_log
from callflow.siteconfig._checks import CheckContext, check_site, register_check, registered_checks
from callflow.siteconfig._cluster import (
    FRONT_FILES,
    cluster_of,
    node_site,
    render_front,
    render_node,
)
from callflow.siteconfig._diff import changed_files, read_live, unified_diff
from callflow.siteconfig._history import DEFAULT_KEEP, ApplyHistory
from callflow.siteconfig._load import LoadedSite, load_site, parse_site
from callflow.siteconfig._model import (
    EMERGENCY_CATEGORIES,
    NONEMERGENCY_CATEGORIES,
    Agencies,
    AgencyEndpoint,
    Callbacks,
    Calls,
    Cluster,
    ClusterNode,
    HandoffDeadline,
    Operator,
    Paths,
    Recording,
    Retention,
    ServiceClass,
    SipFront,
    Site,
)
from callflow.siteconfig._problems import Problem, SiteConfigError
from callflow.siteconfig._render import (
    HEADER_END,
    body,
    pbx_config_dir,
    render_site,
    substitute,
    template_values,
    write_files,
)
from callflow.siteconfig._schema import site_schema
from callflow.siteconfig._secrets import APPLY_KEY, MASK, mask, resolve_secrets, secret_problems
from recordings.policy import RecordFrom

__all__ = [
    "APPLIED_DIR",
    "APPLY_KEY",
    "DEFAULT_KEEP",
    "DEFAULT_STATE_DIR",
    "EMERGENCY_CATEGORIES",
    "FRONT_FILES",
    "HEADER_END",
    "MASK",
    "MESSAGES_LOG",
    "NONEMERGENCY_CATEGORIES",
    "TREE_NAME",
    "Agencies",
    "AgencyEndpoint",
    "ApplyHistory",
    "ApplyOutcome",
    "ApplyReport",
    "ApplyTarget",
    "Callbacks",
    "Calls",
    "CheckContext",
    "Cluster",
    "ClusterNode",
    "HandoffDeadline",
    "LoadedSite",
    "LogWatch",
    "Operator",
    "Paths",
    "Problem",
    "RecordFrom",
    "Recording",
    "Retention",
    "ServiceClass",
    "SipFront",
    "Site",
    "SiteConfigError",
    "applied_site_path",
    "applied_texts",
    "apply_files",
    "body",
    "changed_files",
    "check_site",
    "cluster_of",
    "default_asterisk_log",
    "load_site",
    "mask",
    "node_site",
    "parse_site",
    "pbx_config_dir",
    "read_live",
    "register_check",
    "registered_checks",
    "render_front",
    "render_node",
    "render_site",
    "resolve_secrets",
    "secret_problems",
    "site_schema",
    "store_applied",
    "substitute",
    "template_values",
    "tree_path",
    "tree_text",
    "unified_diff",
    "write_files",
]

"""Reports as NENA EIDO JSON for ``siaga112 incidents export --format eido`` (registered in
callflow/commands/incidents.py): the same documents the outbox sends to agencies' systems
(callflow/agencies/eido.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from callflow.agencies import SCHEMA as AGENCIES_SCHEMA
from callflow.agencies import AgencyDesk, HandoffPolicy
from callflow.agencies.eido import eido_document
from callflow.incidents import SCHEMA as INCIDENTS_SCHEMA
from callflow.incidents import IncidentService
from callflow.incidents.service import utc_now
from callflow.policies import handoff_policy
from callflow.settings import EngineSettings
from callflow.siteconfig import load_site, pbx_config_dir
from callflow.store import StoreLocation, open_database


def site_handoff_policy(settings: EngineSettings) -> HandoffPolicy:
    """The site file's ``[agencies]`` (settings ``site_file``, else pbx-config/site.toml; none: the
    defaults). Raises SiteConfigError for a site file that cannot be used."""
    site_file = settings.site_file or pbx_config_dir() / "site.toml"
    site = load_site(site_file).site if site_file.exists() else None
    return handoff_policy(site.agencies if site is not None else None)


async def eido_documents(database: StoreLocation, policy: HandoffPolicy, *, incident_id: int | None = None,
                         since: datetime | None = None,
                         until: datetime | None = None) -> list[dict[str, Any]]:
    """One report's document (``incident_id``), or those of the reports created in ``[since, until)``."""
    conn = await open_database(database, [INCIDENTS_SCHEMA, AGENCIES_SCHEMA])
    try:
        service = IncidentService(conn)
        desk = AgencyDesk(conn, service, policy, clock=utc_now)
        chosen = ([await service.get(incident_id)] if incident_id is not None
                  else await service.list(since=since, until=until))
        at = utc_now()
        return [eido_document(i, await desk.handoffs_of_incident(i.id), centre_id=policy.centre_id, at=at,
                              reason="export", caller_number_visible=policy.caller_number_visible)
                for i in chosen]
    finally:
        await conn.close()

"""The site file's JSON Schema, for editors (exported to ``pbx-config/site.schema.json``)."""

from __future__ import annotations

import json

from callflow.siteconfig._model import Site


def site_schema() -> str:
    """The schema as stable JSON text (sorted keys, trailing newline), so the exported file can be
    compared byte for byte."""
    schema = Site.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "siaga112 site file"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"

"""NENA's EIDO schema (STA-021.1a) for tests, read from SIAGA112_EIDO_SCHEMA and checked by hash.

NENA publishes it (github.com/NENA911/EIDO-JSON) without a licence grant, so it is not copied into this
repository. Get the pinned file with:

    git clone https://github.com/NENA911/EIDO-JSON && git -C EIDO-JSON show \\
        c3b8d2063be63d27ff7e2d3c353c597c71817a1b:Schema/openapi.yaml > eido-openapi.yaml
    export SIAGA112_EIDO_SCHEMA=$PWD/eido-openapi.yaml

That commit is tag NENA-STA-021.1b: the STA-021.1a schema with one description quoted (at tag
NENA-STA-021.1a the file is not valid YAML: an unquoted ": " on line 99); no definition differs.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SHA256 = "a13a338597e8eeab89e61aac5ef3a78c64dfe200fde158f7d06b5fe6cc67a61f"
ENV = "SIAGA112_EIDO_SCHEMA"


def eido_validator() -> jsonschema.Draft7Validator | None:
    """A validator for EmergencyIncidentDataObjectType, or None when the schema file is not given."""
    path = os.environ.get(ENV)
    if not path:
        return None
    data = Path(path).read_bytes()
    found = hashlib.sha256(data).hexdigest()
    assert found == SHA256, f"{path} is not the pinned EIDO schema (sha256 {found}); see {__name__}"
    spec: dict[str, Any] = yaml.safe_load(data)
    # OpenAPI 3.0 schema objects are JSON Schema (draft 4-7 subset); refs point into components
    return jsonschema.Draft7Validator({"$ref": "#/components/schemas/EmergencyIncidentDataObjectType",
                                       "components": spec["components"]})

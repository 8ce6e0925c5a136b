"""Each app's settings schema (config_service/schemas/<app>.json, from `make schemas`), and
the check of a pushed document against it.

The schemas are generated from the services' settings classes rather than published by the
services at start: config_service then never imports a service, can check an app's
configuration before the app has ever run, and a schema change shows in review next to the
settings change (tests/config_service/test_schemas.py fails when one is stale).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from shared.errors import Reason, ServiceError

log = logging.getLogger(__name__)

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"


class Schemas:
    def __init__(self, validators: dict[str, Draft202012Validator]) -> None:
        self._validators = validators

    @classmethod
    def load(cls, directory: Path = SCHEMA_DIR) -> Schemas:
        validators = {}
        for path in sorted(directory.glob("*.json")):
            schema = json.loads(path.read_text())
            Draft202012Validator.check_schema(schema)
            validators[path.stem] = Draft202012Validator(schema)
        return cls(validators)

    def check(self, app: str, document: dict[str, Any]) -> None:
        """Raises INVALID_ARGUMENT naming the first bad field, and why."""
        validator = self._validators.get(app)
        if validator is None:
            # An app made since the last `make schemas`: only its shape can be checked.
            log.warning("no settings schema for %s; storing its configuration unchecked", app)
            return
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
        if errors:
            first = errors[0]
            field = ".".join(str(part) for part in first.absolute_path) or "(document)"
            raise ServiceError(Reason.INVALID_ARGUMENT, f"{field}: {first.message}")

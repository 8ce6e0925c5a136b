"""The JSON schema of what config_service may hold for an app: its settings, plus breakers.

config_service validates a pushed document against it (it never imports a service), so a
bad value is refused where it is written, with the field and the reason. Schemas are
generated from the settings classes (`make schemas`) and a test keeps them current.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from pydantic import TypeAdapter

from shared.breaker.settings import BreakerSettings
from shared.config.settings import ServiceSettings

# "default" and "<service>.<Method>" → the settings each overrides (partial, validated whole).
BreakerOverrides = dict[str, BreakerSettings]


def settings_schema(cls: type[ServiceSettings]) -> dict[str, Any]:
    schema = cls.model_json_schema()
    for name, field in cls.model_fields.items():
        if isinstance(field.default, PurePath):  # where this checkout is: no schema's business
            schema["properties"][name].pop("default", None)
    breakers = TypeAdapter(BreakerOverrides).json_schema(ref_template="#/$defs/{model}")
    schema.setdefault("$defs", {}).update(breakers.pop("$defs", {}))
    # Overrides are partial: a command may change one setting and keep the others.
    for definition in schema["$defs"].values():
        if definition.get("title") == "BreakerSettings":
            definition.pop("required", None)
    schema["properties"]["breakers"] = {**breakers, "title": "Breakers"}
    # Unknown keys are typos: the service would ignore them silently.
    schema["additionalProperties"] = False
    return schema

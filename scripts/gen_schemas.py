"""Write each app's settings schema to config_service/schemas/<app>.json (`make schemas`).

An app is a top-level package with a settings.py defining a ServiceSettings subclass; its
`service_name` default names the file. Pass an output folder to write elsewhere (the test
that checks the committed schemas are current does that).
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared.config import ServiceSettings  # noqa: E402
from shared.config.schema import settings_schema  # noqa: E402


def app_settings(root: Path) -> dict[str, type[ServiceSettings]]:
    found: dict[str, type[ServiceSettings]] = {}
    for path in sorted(root.glob("*/settings.py")):
        module = importlib.import_module(f"{path.parent.name}.settings")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, ServiceSettings) and cls.__module__ == module.__name__:
                found[cls.model_fields["service_name"].default] = cls
    return found


def generate(root: Path, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for app, cls in app_settings(root).items():
        path = out / f"{app}.json"
        path.write_text(json.dumps(settings_schema(cls), indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "config_service" / "schemas"
    for written in generate(ROOT, target):
        print(f"wrote {written.relative_to(target.parent)}")

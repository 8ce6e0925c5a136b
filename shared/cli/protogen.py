"""Generating a new service's gRPC code with the project's own `scripts/gen_proto.py`.

The generator writes every .proto's code into a scratch folder; only the new service's
files are copied into the project, so the other services' committed code is untouched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["ProtoError", "generate_service_code"]


class ProtoError(RuntimeError):
    pass


def generate_service_code(root: Path, name: str) -> list[Path]:
    """Run scripts/gen_proto.py; copy shared/proto/<name>/**_pb2* into place; return them."""
    script = root / "scripts" / "gen_proto.py"
    if not script.is_file():
        raise ProtoError(f"{script} is missing: cannot generate the gRPC code")
    # protoc finds its plugins (protoc-gen-mypy) on PATH: the venv's bin may not be on it.
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), _path()])}
    with tempfile.TemporaryDirectory(prefix="micro-proto-") as scratch:
        result = subprocess.run(
            [sys.executable, str(script), scratch],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise ProtoError(
                f"scripts/gen_proto.py failed (is grpcio-tools installed? "
                f"pip install -e '.[dev]'):\n{result.stderr.strip() or result.stdout.strip()}"
            )
        generated = Path(scratch) / "shared" / "proto" / name
        copied = []
        for source in sorted(generated.rglob("*_pb2*")):
            target = root / source.relative_to(scratch)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            copied.append(target)
    if not copied:
        raise ProtoError(f"no code was generated for shared/proto/{name}")
    return copied


def _path() -> str:
    return os.environ.get("PATH", os.defpath)

"""Generate Python, typing stubs and gRPC code for every .proto under shared/proto.

The proto path equals the import path (`-I .`), so generated modules import each other
as `shared.proto.<service>.v1.<name>_pb2`. Pass an output folder to generate elsewhere
(the test that checks the committed code is current does that).
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

from grpc_tools import protoc


def generate(root: Path, out: Path) -> None:
    protos = sorted(str(p.relative_to(root)) for p in (root / "shared" / "proto").rglob("*.proto"))
    # mypy-protobuf's plugins sit beside this Python, which need not be on PATH.
    plugins = Path(sys.executable).parent
    # google/protobuf/descriptor.proto, for custom options, ships inside grpc_tools.
    well_known = resources.files("grpc_tools") / "_proto"
    args = [
        "protoc",
        f"--plugin=protoc-gen-mypy={plugins / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={plugins / 'protoc-gen-mypy_grpc'}",
        f"-I{root}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--mypy_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_grpc_out={out}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


if __name__ == "__main__":
    project_root = Path(__file__).resolve().parent.parent
    generate(project_root, Path(sys.argv[1]) if len(sys.argv) > 1 else project_root)

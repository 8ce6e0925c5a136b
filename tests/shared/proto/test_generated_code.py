"""The committed generated code is what `make proto` produces from the committed .proto files."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _load_generator() -> object:
    spec = importlib.util.spec_from_file_location("gen_proto", ROOT / "scripts" / "gen_proto.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_code_is_current(tmp_path: Path) -> None:
    _load_generator().generate(ROOT, tmp_path)  # type: ignore[attr-defined]

    generated = {
        p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()
    }
    committed = {
        p.relative_to(ROOT): p.read_bytes()
        for p in (ROOT / "shared" / "proto").rglob("*")
        if p.is_file() and p.name.endswith(("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi"))
    }

    assert sorted(map(str, generated)) == sorted(map(str, committed)), "run `make proto`"
    stale = [str(path) for path, content in generated.items() if committed[path] != content]
    assert not stale, f"stale generated code, run `make proto`: {stale}"


def test_every_method_says_whether_it_is_safe_to_retry() -> None:
    from google.protobuf.descriptor_pb2 import MethodOptions

    from shared.proto.auth.v1 import auth_pb2
    from shared.proto.user.v1 import user_pb2

    level = {
        m.full_name: m.GetOptions().idempotency_level
        for file in (user_pb2.DESCRIPTOR, auth_pb2.DESCRIPTOR)
        for service in file.services_by_name.values()
        for m in service.methods
    }

    assert level["user.v1.UserService.VerifyCredentials"] == MethodOptions.NO_SIDE_EFFECTS
    assert level["user.v1.UserService.CreateUser"] == MethodOptions.IDEMPOTENCY_UNKNOWN
    assert level["auth.v1.AuthService.RevokeToken"] == MethodOptions.IDEMPOTENT

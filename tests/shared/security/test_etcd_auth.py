"""etcd auth from the bootstrap, against a real etcd: each service within its prefixes."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import aetcd
import aetcd.exceptions
import pytest

from shared.security.etcd_auth import ensure_password
from tests.support.etcd import EtcdServer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("etcd_auth", ROOT / "scripts" / "etcd_auth.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def client(etcd: EtcdServer, run_dir: Path, name: str | None) -> aetcd.Client:
    host, port = etcd.endpoint.split(":")
    if name is None:
        return aetcd.Client(host, int(port))
    password = ensure_password(run_dir / "etcd-users", name)
    return aetcd.Client(host, int(port), username=name, password=password)


@pytest.fixture
async def secured(etcd: EtcdServer, tmp_path: Path) -> Path:
    script = _script()
    await script.run(tmp_path, etcd.endpoint)
    await script.run(tmp_path, etcd.endpoint)  # again, as root: idempotent
    return tmp_path


async def test_a_service_writes_only_its_own_registry_keys(etcd: EtcdServer, secured: Path) -> None:
    async with client(etcd, secured, "user_service") as user_service:
        lease = await user_service.lease(10)  # as the registry registers a node
        await user_service.put(b"/micro/registry/user_service/node-1", b"{}", lease=lease)
        assert await user_service.get(b"/micro/registry/user_service/node-1") is not None
        with pytest.raises(aetcd.exceptions.ClientError, match="permission denied"):
            await user_service.put(b"/micro/registry/auth_service/node-x", b"{}")
        with pytest.raises(aetcd.exceptions.ClientError, match="permission denied"):
            await user_service.put(b"/micro/auth/revoked/token-1", b"1")
        with pytest.raises(aetcd.exceptions.ClientError, match="permission denied"):
            await user_service.put(b"/micro/config/user_service", b"{}")
        with pytest.raises(aetcd.exceptions.ClientError, match="permission denied"):
            await user_service.get(b"/micro/config/auth_service")


async def test_owners_write_their_prefixes_and_others_read_the_registry(
    etcd: EtcdServer, secured: Path
) -> None:
    async with client(etcd, secured, "auth_service") as auth_service:
        await auth_service.put(b"/micro/registry/auth_service/node-1", b"{}")
        await auth_service.put(b"/micro/auth/revoked/token-1", b"1")
    async with client(etcd, secured, "config_service") as config_service:
        await config_service.put(b"/micro/config/user_service", b"{}")
    async with client(etcd, secured, "user_service") as user_service:
        listing = await user_service.get_prefix(b"/micro/registry/")
        assert [item.key for item in listing] == [b"/micro/registry/auth_service/node-1"]
        assert await user_service.get(b"/micro/config/user_service") is not None


async def test_without_credentials_nothing_is_readable(etcd: EtcdServer, secured: Path) -> None:
    async with client(etcd, secured, None) as anonymous:
        with pytest.raises(aetcd.exceptions.ClientError):
            await anonymous.put(b"/micro/registry/user_api/x", b"{}")
        with pytest.raises(aetcd.exceptions.ClientError):
            await anonymous.get(b"/micro/registry/")

"""Production mode: a service missing any piece refuses to start, with one line naming it.

Each case runs the real `python -m <service>` with ENVIRONMENT=production and everything
in place but one piece; the process exits (status 2) before it connects to anything.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from auth_service.settings import AuthServiceSettings
from shared.security.identity import SERVICE, Identity
from shared.security.layout import identity_directory
from shared.security.pki import ensure_identity
from shared.security.production import refuse_unless_ready
from tests.support.services import ROOT, TEST_SECRET
from user_service.settings import UserServiceSettings

pytestmark = pytest.mark.integration  # real service processes

GOOD_DB = "mysql+pymysql://micro:s3cret-not-default@127.0.0.1:1/micro"
# What this shell may hold that would change the outcome.
SETTINGS_PREFIXES = ("JWT_", "ETCD_", "NATS_", "TLS_", "MTLS", "DATABASE_URL", "ENVIRONMENT")


def ready_env(tmp_path: Path, service: str) -> dict[str, str]:
    """Everything production asks of `service`, as files under `tmp_path`."""
    identity = Identity("micro.local", SERVICE, service)
    ensure_identity(tmp_path / "tls", identity)
    seed = tmp_path / f"{service}.nk"
    seed.write_text("SUAEXAMPLESEEDNOTREADBYTHISTEST\n")
    password = tmp_path / f"{service}.password"
    password.write_text("a-long-random-etcd-password\n")
    key = tmp_path / "jwt_secret"
    key.write_text(TEST_SECRET)
    return {
        "ENVIRONMENT": "production",
        "MTLS": "true",
        "TLS_DIR": str(identity_directory(tmp_path / "tls", identity)),
        "NATS_NKEY_SEED_FILE": str(seed),
        "ETCD_USERNAME": service,
        "ETCD_PASSWORD_FILE": str(password),
        "JWT_SECRET_FILE": str(key),
        "DATABASE_URL": GOOD_DB,
    }


def start(service: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(SETTINGS_PREFIXES)}
    return subprocess.run(
        [sys.executable, "-m", service],
        cwd=ROOT,
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("settings", [AuthServiceSettings, UserServiceSettings])
def test_everything_in_place_is_no_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: type[AuthServiceSettings]
) -> None:
    for name, value in ready_env(tmp_path, "auth_service").items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("JWT_SECRET", raising=False)

    assert settings().production_problems() == []


@pytest.mark.parametrize(
    ("service", "change", "message"),
    [
        ("auth_service", {"MTLS": "false"}, "MTLS is off"),
        ("auth_service", {"TLS_DIR": "/nonexistent/tls"}, "TLS_DIR /nonexistent/tls lacks tls.crt"),
        ("auth_service", {"NATS_NKEY_SEED_FILE": ""}, "NATS_NKEY_SEED_FILE names no file"),
        ("auth_service", {"ETCD_USERNAME": ""}, "ETCD_USERNAME is not set"),
        ("auth_service", {"ETCD_PASSWORD_FILE": "micro"}, "ETCD_PASSWORD_FILE holds a default"),
        ("auth_service", {"JWT_SECRET_FILE": "short"}, "signing key is shorter than 32 bytes"),
        ("auth_service", {"JWT_SECRET_FILE": "/nonexistent/key"}, "JWT_SECRET or an existing"),
        (
            "user_service",
            {"DATABASE_URL": "mysql+pymysql://micro:micro@127.0.0.1:1/micro"},
            "DATABASE_URL has an empty or default password",
        ),
        (
            "user_service",
            {"DATABASE_URL": "mysql+pymysql://micro@127.0.0.1:1/micro"},
            "DATABASE_URL has an empty or default password",
        ),
    ],
)
def test_a_missing_piece_stops_the_start_with_one_line(
    tmp_path: Path, service: str, change: dict[str, str], message: str
) -> None:
    env = ready_env(tmp_path, service)
    for name, value in change.items():
        if value in ("micro", "short"):  # a file holding this value
            path = tmp_path / f"changed-{name}"
            path.write_text(value)
            value = str(path)
        env[name] = value

    started = start(service, env)

    assert started.returncode == 2, started.stderr
    (line,) = started.stderr.splitlines()
    assert line.startswith(f"{service} refuses to start in production: ")
    assert message in line


def test_nothing_set_names_every_missing_piece_on_one_line() -> None:
    started = start("config_service", {"ENVIRONMENT": "production"})

    assert started.returncode == 2
    (line,) = started.stderr.splitlines()
    for piece in ("MTLS is off", "NATS_NKEY_SEED_FILE", "ETCD_USERNAME"):
        assert piece in line


def test_development_asks_for_none_of_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "development")

    refuse_unless_ready(AuthServiceSettings(jwt_secret=None))  # returns: nothing refused

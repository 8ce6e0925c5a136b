"""The guard that keeps the `integration` marker true: a test that uses a real server
without it fails, before the server starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.services import ROOT

pytestmark = pytest.mark.integration  # its marked example starts a real etcd

UNMARKED = """
import pytest

from tests.support.etcd import EtcdServer


def test_uses_the_etcd_fixture(etcd):
    pass


def test_starts_etcd_itself(tmp_path):
    EtcdServer(tmp_path / "etcd").start()


@pytest.mark.integration
def test_marked(registry):
    pass
"""


def test_a_real_server_without_the_marker_fails_the_test(tmp_path: Path) -> None:
    (tmp_path / "test_unmarked.py").write_text(UNMARKED)
    done = subprocess.run(
        # The suite's conftest as a plugin, for a test file outside tests/.
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest",
         "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT),
         str(tmp_path / "test_unmarked.py")],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip

    assert done.returncode == 1, done.stdout + done.stderr
    # Failed before the fixture's etcd starts, or when the test starts one itself.
    assert "1 failed, 1 passed, 1 error" in done.stdout, done.stdout
    assert "test_uses_the_etcd_fixture uses etcd (a real server): mark it `integration`" in (
        done.stdout
    )
    assert "test_starts_etcd_itself starts etcd (a real server): mark it `integration`" in (
        done.stdout
    )

"""A service's own certificate, from the development CA or the platform's files."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from shared.security.identity import service_identity
from shared.security.pki import ensure_identity
from shared.security.workload import service_certificate

ROOT = Path(__file__).resolve().parents[3]
DOMAIN = "micro.local"

_READ_ONLY = """
    import sys
    from pathlib import Path
    from shared.security.workload import service_certificate
    certificate = service_certificate(
        "user_service", trust_domain="{domain}", tls_dir=None, dev_root=Path({root!r})
    )
    assert certificate.current().cert.startswith(b"-----BEGIN CERTIFICATE-----")
    print(sorted(name for name in sys.modules if name.startswith("cryptography.")))
"""


def test_the_first_start_issues_the_certificate_and_later_ones_reuse_it(tmp_path: Path) -> None:
    first = service_certificate(
        "user_service", trust_domain=DOMAIN, tls_dir=None, dev_root=tmp_path
    )
    again = service_certificate(
        "user_service", trust_domain=DOMAIN, tls_dir=None, dev_root=tmp_path
    )
    assert again.files == first.files
    assert again.current() == first.current()


def test_a_service_whose_certificate_exists_does_not_load_cryptography(tmp_path: Path) -> None:
    # Issued earlier (a previous start, `provision certs`, compose's secrets step): reading and
    # reloading it needs only the ssl module, not cryptography's 10 MB of x509 bindings.
    ensure_identity(tmp_path, service_identity(DOMAIN, "user_service"))
    code = textwrap.dedent(_READ_ONLY.format(domain=DOMAIN, root=str(tmp_path)))
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_platform_files_that_are_missing_stop_the_start(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="certificate files are missing"):
        service_certificate("user_service", trust_domain=DOMAIN, tls_dir=tmp_path, dev_root=None)

"""`micro new` on a small project, with a stand-in for protoc: what it renders and edits,
and that a failure half-way leaves the project as it was."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from shared.cli.protogen import ProtoError
from shared.cli.scaffold import naming, new_service
from tests.support.services import ROOT

# Writes what protoc would, where scripts/gen_proto.py is told to.
FAKE_GENERATOR = """\
import sys
from pathlib import Path
for proto in Path("shared/proto").glob("*/v1/*.proto"):
    out = Path(sys.argv[1]) / proto.parent
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{proto.stem}_pb2.py").write_text("# generated\\n")
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "template", tmp_path / "template")
    (tmp_path / "shared" / "proto").mkdir(parents=True)
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "gen_proto.py").write_text(FAKE_GENERATOR)
    (tmp_path / "Procfile").write_text("user_api: python -m user_api\n")
    (tmp_path / "README.md").write_text("# The kit\n")
    return tmp_path


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_the_service_is_rendered_with_the_names_copier_computes(project: Path) -> None:
    made = new_service(project, "sales_order_service", http=True)

    assert naming("sales_order_service") == {
        "Name": "SalesOrderService",
        "entity": "sales_order",
        "Entity": "SalesOrder",
    }
    package = project / "sales_order_service"
    assert (
        "class SalesOrderServiceSettings(ServiceSettings):" in (package / "settings.py").read_text()
    )
    assert "http_port: int = 8081" in (package / "settings.py").read_text()
    proto = (project / "shared/proto/sales_order_service/v1/sales_order_service.proto").read_text()
    assert "service SalesOrderService {" in proto
    assert "rpc GetSalesOrder(GetSalesOrderRequest)" in proto
    assert "option idempotency_level = NO_SIDE_EFFECTS;" in proto
    assert (package / "web.py").is_file()
    assert (project / "tests/sales_order_service/test_web.py").is_file()
    assert (project / "shared/proto/sales_order_service/v1/sales_order_service_pb2.py").is_file()
    assert made.edited == ["Procfile", "README.md"]
    assert made.notes == ["no docker-compose.yml here: the service was not added to one"]
    assert (project / "Procfile").read_text().splitlines()[-1] == (
        "sales_order_service: env BROKER_SPOOL_PATH=${RUN_DIR:-.run}/sales_order_service/"
        "spool.sqlite3 python -m sales_order_service"
    )


def test_without_http_there_is_no_web_front(project: Path) -> None:
    new_service(project, "order")

    assert not (project / "order" / "web.py").exists()
    assert not (project / "tests" / "order" / "test_web.py").exists()
    assert "http_port" not in (project / "order" / "settings.py").read_text()


def test_a_failure_after_rendering_leaves_the_project_as_it_was(project: Path) -> None:
    (project / "scripts" / "gen_proto.py").write_text("raise SystemExit('protoc failed')\n")
    before = files(project)

    with pytest.raises(ProtoError, match="protoc failed"):
        new_service(project, "order")

    assert files(project) == before
    assert not (project / "order").exists()

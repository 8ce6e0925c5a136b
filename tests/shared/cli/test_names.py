"""`micro new service NAME` refuses names that cannot be a service, before writing anything."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shared.cli.main import app
from shared.cli.names import InvalidNameError, check_name
from tests.support.services import ROOT


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The least a project needs to be found: template/ and shared/, plus a service."""
    shutil.copytree(ROOT / "template", tmp_path / "template")
    for folder in ("shared/proto/user", "user_service", "tests/billing"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "Procfile").write_text("user_service: python -m user_service\n")
    return tmp_path


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("Order", "lower_snake_case"),
        ("1x", "lower_snake_case"),
        ("my-svc", "lower_snake_case"),
        ("class", "Python keyword"),
        ("shared", "folder of the kit"),
        ("dlq_service", "dead letters"),
    ],
)
def test_the_command_refuses_a_bad_name_clearly_and_writes_nothing(
    project: Path, name: str, says: str
) -> None:
    before = files(project)

    result = CliRunner().invoke(app, ["new", "service", name, "--project", str(project)])

    assert result.exit_code == 1
    assert f"cannot create service {name!r}" in result.output
    assert says in result.output
    assert "Traceback" not in result.output
    assert files(project) == before


@pytest.mark.parametrize(
    "name",
    ["_order", "order_", "or__der", "ORDER", "ordér", "a" * 31, "from", "class_service", "tests"],
)
def test_names_that_are_not_a_plain_package_name_are_refused(project: Path, name: str) -> None:
    with pytest.raises(InvalidNameError):
        check_name(name, project)


@pytest.mark.parametrize(
    ("name", "where"),
    [
        ("user_service", "user_service/"),
        ("user", "shared/proto/user/"),
        ("billing", "tests/billing/"),
    ],
)
def test_a_name_whose_folders_exist_is_refused(project: Path, name: str, where: str) -> None:
    with pytest.raises(InvalidNameError, match=f"{where} already exists"):
        check_name(name, project)


@pytest.mark.parametrize("name", ["json", "email", "grpc", "typer", "google"])
def test_a_name_that_would_shadow_a_module_is_refused(project: Path, name: str) -> None:
    with pytest.raises(InvalidNameError, match="importable module"):
        check_name(name, project)


@pytest.mark.parametrize("name", ["order", "order_service", "inventory2", "a" * 30])
def test_plain_new_names_are_taken(project: Path, name: str) -> None:
    assert check_name(name, project) == name


def test_outside_a_project_it_says_where_to_run(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["new", "service", "order", "--project", str(tmp_path)])

    assert result.exit_code == 1
    assert "template/copier.yml" in result.output

"""The edits `micro new` makes to the project's files: in their own style, valid, or none."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest
import yaml

from shared.cli.compose import ComposeError, ComposeService, add_service, next_port
from shared.cli.packaging import add_to_dockerfile, add_to_dockerignore, add_to_pyproject
from shared.cli.project import add_procfile_line, procfile_has
from tests.support.services import ROOT

SNIPPET = (ROOT / "template" / "snippets" / "compose.yml.jinja").read_text()
ORDER = ComposeService("order", grpc_port=50054)

SAMPLE = """\
# The sample's own comment, which must stay.
x-service: &service
  build: .
x-service-env: &service-env
  ETCD_ENDPOINT: etcd:2379
x-healthcheck: &healthcheck
  interval: 10s

services:
  etcd:
    image: etcd:v3.5
    healthcheck:
      test: ["CMD", "etcdctl", "endpoint", "health"]
  nats:
    image: nats:2.10
  config_service:
    <<: *service
    command: ["python", "-m", "config_service"]
    environment:
      <<: *service-env
      GRPC_PORT: "50051"
    depends_on:
      etcd: { condition: service_healthy }
      nats: { condition: service_started }
  # a comment at the end of services

# The volumes' comment, which must stay theirs.
volumes:
  etcd-data:
"""


def service(text: str, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(text)["services"][name]
    return spec


def test_a_service_joins_the_end_of_services_in_the_files_style() -> None:
    updated = add_service(SAMPLE, ORDER, SNIPPET)

    order = service(updated, "order")
    assert order["build"] == "."  # from the x-service anchor
    assert order["command"] == ["python", "-m", "order"]
    assert order["environment"] == {
        "ETCD_ENDPOINT": "etcd:2379",
        "GRPC_PORT": "50054",
        "METRICS_PORT": "9464",
    }
    assert order["expose"] == ["50054", "9464"]
    # The conditions the file's services already use for the same dependencies.
    assert order["depends_on"] == {
        "etcd": {"condition": "service_healthy"},
        "nats": {"condition": "service_started"},
        "config_service": {"condition": "service_started"},
    }
    assert order["healthcheck"]["test"][-2:] == ["shared.healthcheck", "grpc"]
    assert updated.startswith(SAMPLE.split("# The volumes'")[0].rstrip("\n"))
    assert updated.endswith(
        "# The volumes' comment, which must stay theirs.\nvolumes:\n  etcd-data:\n"
    )
    assert list(yaml.safe_load(updated)) == [
        "x-service",
        "x-service-env",
        "x-healthcheck",
        "services",
        "volumes",
    ]


def test_an_http_service_exposes_its_port_and_is_checked_over_http() -> None:
    updated = add_service(SAMPLE, ComposeService("shop", 50054, http_port=8081), SNIPPET)

    shop = service(updated, "shop")
    assert shop["expose"] == ["50054", "9464", "8081"]
    assert shop["environment"]["HTTP_PORT"] == "8081"
    assert "ports" not in shop  # replicas would clash on a published port
    assert shop["healthcheck"]["test"][-1] == "http"


def test_a_file_indented_by_four_and_without_anchors_gets_the_same_service() -> None:
    text = "services:\n    etcd:\n        image: etcd:v3.5\n"

    order = service(add_service(text, ORDER, SNIPPET), "order")

    assert order["build"] == "."
    assert order["environment"]["ETCD_ENDPOINT"] == "etcd:2379"
    assert order["depends_on"] == {"etcd": {"condition": "service_started"}}


def test_a_file_without_services_gets_the_mapping() -> None:
    updated = add_service("name: x\n", ORDER, SNIPPET)

    assert service(updated, "order")["command"] == ["python", "-m", "order"]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (SAMPLE.replace("config_service:", "order:", 1), "already has a service 'order'"),
        ("services: {etcd: {image: etcd}}\n", "not in block style"),
        ("services: [\n", "not valid YAML"),
        ("- a list\n", "not a YAML mapping"),
    ],
)
def test_what_cannot_take_the_service_is_left_alone_with_a_reason(text: str, says: str) -> None:
    with pytest.raises(ComposeError, match=says):
        add_service(text, ORDER, SNIPPET)


def test_ports_follow_the_highest_one_in_use() -> None:
    assert next_port(SAMPLE, "GRPC_PORT", 50051) == 50052
    assert next_port(SAMPLE, "HTTP_PORT", 8081) == 8081


def test_the_projects_own_compose_file_takes_a_service() -> None:
    text = (ROOT / "docker-compose.yml").read_text()

    updated = add_service(
        text, ComposeService("order", next_port(text, "GRPC_PORT", 50051)), SNIPPET
    )

    before, after = yaml.safe_load(text), yaml.safe_load(updated)
    assert {k: v for k, v in after["services"].items() if k != "order"} == before["services"]
    assert {k: v for k, v in after.items() if k != "services"} == {
        k: v for k, v in before.items() if k != "services"
    }
    order = after["services"]["order"]
    assert order["image"] == before["services"]["config_service"]["image"]
    assert order["depends_on"]["etcd"] == {"condition": "service_healthy"}
    assert int(order["environment"]["GRPC_PORT"]) > max(
        int(spec["environment"]["GRPC_PORT"])
        for spec in before["services"].values()
        if "GRPC_PORT" in (spec.get("environment") or {})
    )
    # Its events wait for NATS on the project's spool volume, a file per replica.
    assert order["environment"]["BROKER_SPOOL_PATH"] == "/var/lib/spool/order-{hostname}.sqlite3"
    assert order["volumes"] == ["secrets:/secrets:ro", "spool:/var/lib/spool"]


def test_pyproject_ships_the_new_package_once() -> None:
    text = (ROOT / "pyproject.toml").read_text()

    updated = add_to_pyproject(text, "order")

    assert updated is not None
    include = tomllib.loads(updated)["tool"]["setuptools"]["packages"]["find"]["include"]
    assert include[-1] == "order*"
    assert tomllib.loads(updated)["project"] == tomllib.loads(text)["project"]
    assert add_to_pyproject(updated, "order") is None


def test_an_allow_list_dockerignore_lets_the_new_package_in() -> None:
    text = "*\n!pyproject.toml\n!shared/\n!user_api/\n!sql/\n**/__pycache__\n"

    updated = add_to_dockerignore(text, "order", {"shared", "user_api"})

    assert updated == "*\n!pyproject.toml\n!shared/\n!user_api/\n!order/\n!sql/\n**/__pycache__\n"
    assert add_to_dockerignore(updated, "order", {"shared", "user_api"}) is None
    assert add_to_dockerignore(".git\n.venv\n", "order", {"shared"}) is None  # a deny-list


def test_a_dockerfile_that_copies_package_by_package_copies_the_new_one() -> None:
    text = (
        "COPY pyproject.toml ./\nCOPY shared ./shared\nCOPY user_api ./user_api\n"
        "COPY sql ./sql\nRUN python -m compileall -q shared user_api\n"
    )

    updated = add_to_dockerfile(text, "order", {"shared", "user_api"})

    assert updated == (
        "COPY pyproject.toml ./\nCOPY shared ./shared\nCOPY user_api ./user_api\n"
        "COPY order ./order\nCOPY sql ./sql\nRUN python -m compileall -q shared user_api order\n"
    )
    assert add_to_dockerfile("COPY . .\n", "order", {"shared"}) is None


def test_the_projects_own_image_takes_the_new_package() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    dockerfile = (ROOT / "Dockerfile").read_text()
    dockerignore = (ROOT / ".dockerignore").read_text()

    after_file = add_to_dockerfile(dockerfile, "order", packages) or dockerfile
    after_ignore = add_to_dockerignore(dockerignore, "order", packages) or dockerignore

    assert "COPY order ./order" in after_file or "COPY . ." in after_file
    assert "!order/" in after_ignore or "*" not in after_ignore.splitlines()


SPOOLED = "env BROKER_SPOOL_PATH=${RUN_DIR:-.run}/order/spool.sqlite3 python -m order"


def test_the_procfile_starts_the_new_service_with_its_events_spooled() -> None:
    text = add_procfile_line("api: python -m api", "order")

    assert text == f"api: python -m api\norder: {SPOOLED}\n"
    assert procfile_has(text, "order")
    assert not procfile_has(text, "orders")


def test_the_new_service_starts_as_its_own_user_where_the_others_do() -> None:
    text = add_procfile_line("api: exec scripts/credentials api python -m api\n", "order")

    assert text.splitlines()[-1] == f"order: exec scripts/credentials order {SPOOLED}"

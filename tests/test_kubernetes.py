"""deploy/k8s, checked without a cluster: each overlay renders (`kubectl kustomize`), every
document validates against the Kubernetes schemas, and what runs agrees with the code
(entry points, settings, ports, probe endpoints, the drain) as tests/test_compose.py
checks docker-compose.yml.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import re
import secrets
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate
import opentelemetry.environment_variables
import opentelemetry.sdk.environment_variables
import pytest
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from auth_service.keys import MIN_SECRET
from shared.config import ServiceSettings
from shared.registry.etcd import parse_endpoint
from shared.security.production import TLS_FILES
from shared.security.provision import NATS_OPERATORS, nats_config
from shared.server.server import GrpcServer
from tests.support.compose import (
    ROOT,
    WILDCARD_HOSTS,
    host_ports,
    load_compose,
    module_path,
    python_module,
    services,
)
from tests.support.kubernetes import (
    OVERLAYS,
    RUNTIME,
    dockerfile_uid,
    environment,
    generated_name,
    main_container,
    of_kind,
    pod_spec,
    port_number,
    prestop_sleep_s,
    probes,
    project_deployments,
    render,
    secret_data,
    selects,
    workloads,
)
from tests.support.nats import server_binary
from tests.support.services import settings_class, spooling_services
from user_api.handlers import router
from user_api.settings import UserApiSettings

# One version for the schemas: the oldest the manifests are meant for (native gRPC probes
# are GA from 1.27, PodDisruptionBudget policy/v1 from 1.21, HPA autoscaling/v2 from 1.23).
KUBERNETES_VERSION = "1.32.0"
SERVICES = {"config_service", "auth_service", "user_service", "user_api"}
PROJECT_NAMES = sorted(package.replace("_", "-") for package in SERVICES)
# What SIGTERM sets off after preStop: the gRPC drain (GrpcServer's drain_s)...
DRAIN_S = inspect.signature(GrpcServer).parameters["drain_s"].default
# ...then closing NATS and flushing spans, which take a few seconds at most.
FLUSH_S = 5
# Every OTEL_* variable the OpenTelemetry API and SDK (with its OTLP exporter) read.
OTEL_VARIABLES = {
    name
    for module in (opentelemetry.environment_variables, opentelemetry.sdk.environment_variables)
    for name in dir(module)
    if name.startswith("OTEL_")
}
# Infrastructure images are the ones docker-compose.yml runs (one version to bump, checked).
INFRA = {"etcd": "etcd", "nats": "nats", "mariadb": "mysql", "jaeger": "jaeger"}
# Variables whose values are secrets (JWT_SECRET_FILE is a path, the key is in a Secret).
SECRET_VARIABLES = {"JWT_SECRET", "DATABASE_URL", "MARIADB_PASSWORD", "MARIADB_ROOT_PASSWORD"}

# The exec probe of a gRPC service behind mTLS (a module the image holds).
HEALTHCHECK_GRPC = ["python", "-m", "shared.healthcheck", "grpc"]
# Secrets only production needs (development runs without mTLS and NATS or etcd users).
PRODUCTION_SECRETS = {
    *(f"{name}-{kind}" for name in PROJECT_NAMES for kind in ("nats", "etcd")),
    "etcd-root",
    "nats-config",
}

overlays = pytest.mark.parametrize("overlay", OVERLAYS)


def settings_in_pod(
    package: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> ServiceSettings:
    """The settings `python -m <package>` builds in the pod (cluster-filled values left out)."""
    cls = settings_class(package)
    for name in cls.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in env.items():
        if value != RUNTIME:
            monkeypatch.setenv(name, value)
    return cls()


def volume_at(workload: dict[str, Any], path: str) -> str | None:
    """The volume that holds `path` in the workload's container (the deepest mount)."""
    mounts = sorted(main_container(workload)["volumeMounts"], key=lambda m: -len(m["mountPath"]))
    for mount in mounts:
        if path == mount["mountPath"] or path.startswith(mount["mountPath"].rstrip("/") + "/"):
            return str(mount["name"])
    return None


# ------------------------------------------------------------------ the files themselves


@overlays
def test_every_rendered_document_validates_against_the_kubernetes_schemas(overlay: str) -> None:
    docs = render(overlay)
    assert docs
    errors = []
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {error.message}")
    assert not errors, "\n".join(errors)


# ------------------------------------------------------------------ wiring to the code


@overlays
def test_every_service_runs_its_own_entry_point_from_one_image(overlay: str) -> None:
    deployments = project_deployments(render(overlay))
    assert set(deployments) == SERVICES
    images = set()
    for package, deployment in deployments.items():
        container = main_container(deployment)
        assert python_module(container["command"]) == package
        assert module_path(package).is_file()
        assert "args" not in container
        images.add(container["image"])
    assert len(images) == 1, images


@overlays
def test_every_variable_is_a_setting_the_service_reads(
    overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = render(overlay)
    for package, deployment in project_deployments(docs).items():
        env = environment(main_container(deployment), docs)
        fields = {field.upper() for field in settings_class(package).model_fields}
        unread = set(env) - fields - OTEL_VARIABLES
        assert not unread, f"{package} is given variables no code reads: {sorted(unread)}"

        settings = settings_in_pod(package, env, monkeypatch)  # validates every value
        assert settings.environment == overlay
        for key, value in env.items():
            if key in fields and value != RUNTIME:
                actual = getattr(settings, key.lower())
                if isinstance(actual, SecretStr):
                    actual = actual.get_secret_value()
                assert str(actual).lower() == value.lower(), (package, key)


@overlays
def test_endpoints_name_services_on_ports_they_serve(overlay: str) -> None:
    docs = render(overlay)
    kube_services = of_kind(docs, "Service")
    every = list(workloads(docs))
    for package, deployment in project_deployments(docs).items():
        for key, value in environment(main_container(deployment), docs).items():
            for host, port in host_ports(value):
                assert host in kube_services, f"{package} {key}: no Service {host}"
                service = kube_services[host]
                (target,) = [p for p in service["spec"]["ports"] if p["port"] == port]
                backends = [
                    w for w in every if selects({"matchLabels": service["spec"]["selector"]}, w)
                ]
                assert backends, f"{host} selects no pods"
                for backend in backends:
                    served = port_number(main_container(backend), target["targetPort"])
                    assert served == port, f"{package} {key}: {host}:{port} → {served}"

    env = environment(main_container(project_deployments(docs)["user_api"]), docs)
    assert parse_endpoint(env["ETCD_ENDPOINT"]) == ("etcd", 2379)


@overlays
def test_ports_and_probes_are_what_the_services_serve(overlay: str) -> None:
    docs = render(overlay)
    routes = {getattr(route, "path", None) for route in router.routes}
    for package, deployment in project_deployments(docs).items():
        container = main_container(deployment)
        env = environment(container, docs)
        settings_cls = settings_class(package)
        checks = probes(container)
        assert set(checks) == {"startupProbe", "readinessProbe", "livenessProbe"}, package
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        if package == "user_api":
            assert env["HTTP_HOST"] in WILDCARD_HOSTS
            assert (
                ports["http"]
                == int(env["HTTP_PORT"])
                == settings_cls.model_fields["http_port"].default
            )
            for kind, probe in checks.items():
                path = probe["httpGet"]["path"]
                assert path in routes, f"user_api {kind}: no route {path}"
                assert port_number(container, probe["httpGet"]["port"]) == ports["http"]
            # Ready is what `python -m shared.healthcheck http` checks; alive is the process.
            assert checks["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert checks["livenessProbe"]["httpGet"]["path"] == "/healthz"
            # Metrics on their own port: production never serves them on the HTTP one.
            assert ports["metrics"] == int(env["METRICS_PORT"]) != ports["http"]
        else:
            assert env["GRPC_HOST"] in WILDCARD_HOSTS
            grpc_port = int(env["GRPC_PORT"])
            assert grpc_port == settings_cls.model_fields["grpc_port"].default, package
            assert ports["grpc"] == grpc_port
            assert ports["metrics"] == int(env["METRICS_PORT"])
            for kind, probe in checks.items():
                if env.get("MTLS", "false").lower() == "true":
                    # The kubelet's gRPC probe shows no client certificate: the check runs
                    # in the container, with the service's own (TLS_DIR).
                    assert "grpc" not in probe, (package, kind)
                    assert probe["exec"]["command"] == HEALTHCHECK_GRPC, (package, kind)
                    assert probe["timeoutSeconds"] >= 2, (package, kind)  # Python starting
                    continue
                # Native gRPC probes ask the kit's health service for the whole server ("").
                assert probe["grpc"]["port"] == grpc_port, (package, kind)
                assert probe["grpc"].get("service", "") == "", (package, kind)
            # Other services dial the address it registers: the pod's own.
            (advertise,) = [v for v in container["env"] if v["name"] == "ADVERTISE_HOST"]
            assert advertise["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"


@overlays
def test_stopping_waits_out_prestop_and_the_drain(overlay: str) -> None:
    budget_s = settings_class("user_api").model_fields["request_budget_s"].default
    for package, deployment in project_deployments(render(overlay)).items():
        container = main_container(deployment)
        prestop = prestop_sleep_s(container)
        assert prestop > 0, f"{package}: no preStop"
        # In flight after SIGTERM: gRPC calls for the drain, HTTP requests for their budget.
        in_flight = budget_s if package == "user_api" else DRAIN_S
        grace = pod_spec(deployment)["terminationGracePeriodSeconds"]
        assert grace >= prestop + in_flight + FLUSH_S, (package, grace)
        strategy = deployment["spec"]["strategy"]["rollingUpdate"]
        assert strategy["maxUnavailable"] == 0, package
    # The edge leaves the Service's endpoints during preStop: long enough for kube-proxy.
    user_api = main_container(project_deployments(render(overlay))["user_api"])
    assert prestop_sleep_s(user_api) >= 5


@overlays
def test_every_pod_meets_the_restricted_pod_security_standard(overlay: str) -> None:
    uid = dockerfile_uid()
    for workload in workloads(render(overlay)):
        name = workload["metadata"]["name"]
        pod = pod_spec(workload)
        pod_security = pod.get("securityContext") or {}
        assert pod.get("automountServiceAccountToken") is False, name
        assert pod_security.get("seccompProfile") == {"type": "RuntimeDefault"}, name
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            security = {**pod_security, **(container.get("securityContext") or {})}
            assert security.get("runAsNonRoot") is True, name
            assert security.get("runAsUser", 1) != 0, name
            assert security.get("allowPrivilegeEscalation") is False, name
            assert security.get("capabilities", {}).get("drop") == ["ALL"], name
    for package, deployment in project_deployments(render(overlay)).items():
        pod = pod_spec(deployment)
        assert pod["securityContext"]["runAsUser"] == uid, package  # the Dockerfile's USER
        container = main_container(deployment)
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, package
        volumes = {v["name"]: v for v in pod["volumes"]}
        for mount in container["volumeMounts"]:
            # What is writable is an emptyDir; Secrets are mounted read-only.
            if not mount.get("readOnly"):
                assert "emptyDir" in volumes[mount["name"]], (package, mount)


@overlays
def test_events_without_a_database_wait_in_a_spool_that_outlives_a_crash(overlay: str) -> None:
    docs = render(overlay)
    deployments = project_deployments(docs)
    for package in spooling_services():
        container = main_container(deployments[package])
        path = PurePosixPath(environment(container, docs)["BROKER_SPOOL_PATH"])
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod_spec(deployments[package])["volumes"]}
        # An emptyDir: a restarted container (a crash, an OOM kill) finds what it spooled.
        assert "emptyDir" in volumes[mounts[str(path.parent)]], package


# ------------------------------------------------------------------- availability


@overlays
def test_disruption_budgets_and_the_autoscaler_target_what_exists(overlay: str) -> None:
    docs = render(overlay)
    every = list(workloads(docs))
    covered = set()
    for name, budget in of_kind(docs, "PodDisruptionBudget").items():
        selected = [w["metadata"]["name"] for w in every if selects(budget["spec"]["selector"], w)]
        assert len(selected) == 1, f"PDB {name} selects {selected}"
        covered.add(selected[0])
        assert budget["spec"].get("maxUnavailable") == 1, name
    deployments = project_deployments(docs)
    assert {d["metadata"]["name"] for d in deployments.values()} | {"etcd", "nats"} <= covered

    (hpa,) = of_kind(docs, "HorizontalPodAutoscaler").values()
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "user-api")
    assert deployments["user_api"]["metadata"]["name"] == "user-api"
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    # Utilization is a share of the request: without one the autoscaler cannot act.
    assert main_container(deployments["user_api"])["resources"]["requests"]["cpu"]


def test_production_sizes_every_container_and_turns_debug_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    docs = render("production")
    for workload in workloads(docs):
        for container in pod_spec(workload)["containers"]:
            resources = container.get("resources") or {}
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(bound, {})), (
                    workload["metadata"]["name"],
                    bound,
                )
    deployments = project_deployments(docs)
    for deployment in deployments.values():
        assert deployment["spec"]["replicas"] >= 3
    (hpa,) = of_kind(docs, "HorizontalPodAutoscaler").values()
    assert hpa["spec"]["minReplicas"] >= 3
    env = environment(main_container(deployments["user_api"]), docs)
    settings = settings_in_pod("user_api", env, monkeypatch)
    assert isinstance(settings, UserApiSettings)
    assert settings.environment == "production"
    assert settings.debug_endpoints is False  # no GET /debug/breakers


# ------------------------------------------------------------ etcd, NATS, the database


@overlays
def test_etcd_and_nats_are_three_member_clusters_on_stable_names(overlay: str) -> None:
    docs = render(overlay)
    sets = of_kind(docs, "StatefulSet")
    kube_services = of_kind(docs, "Service")
    for name in ("etcd", "nats"):
        statefulset = sets[name]
        assert statefulset["spec"]["replicas"] == 3
        headless = kube_services[statefulset["spec"]["serviceName"]]
        assert headless["spec"]["clusterIP"] == "None"
        assert headless["spec"]["publishNotReadyAddresses"] is True
        assert statefulset["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"

    etcd = sets["etcd"]
    args = main_container(etcd)["args"]
    peers = ",".join(
        f"etcd-{i}=http://etcd-{i}.{etcd['spec']['serviceName']}:2380" for i in range(3)
    )
    assert f"--initial-cluster={peers}" in args
    assert "--name=$(POD_NAME)" in args
    (data_dir,) = [a.split("=", 1)[1] for a in args if a.startswith("--data-dir=")]
    assert volume_at(etcd, data_dir) == "data"

    nats = sets["nats"]
    (config_path,) = [a for a in main_container(nats)["command"] if a.endswith(".conf")]
    config_volume = {v["name"]: v for v in pod_spec(nats)["volumes"]}[volume_at(nats, config_path)]
    if overlay == "production":
        # The configuration with the services' users comes from a Secret, built from the
        # base's (checked below) and `provision nats`'s authorization block.
        assert config_volume["secret"]["secretName"] == "nats-config"
        assert "nats-config" not in of_kind(docs, "ConfigMap")
        docs = render("development")
    else:
        assert generated_name(config_volume["configMap"]["name"]) == "nats-config"
    config = of_kind(docs, "ConfigMap")["nats-config"]["data"]["nats.conf"]
    routes = re.findall(r"nats://(nats-\d+)\.([\w-]+):(\d+)", config)
    assert routes == [(f"nats-{i}", nats["spec"]["serviceName"], "6222") for i in range(3)]
    (store_dir,) = re.findall(r"store_dir:\s*(\S+)", config)
    assert volume_at(nats, store_dir) == "data"
    assert "server_name: $SERVER_NAME" in config  # JetStream clustering needs unique names


def test_production_mounts_everything_production_mode_requires(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the Secrets the production overlay names in place, no service refuses to start
    (shared/security/production.py decides), and each file is one only the service reads."""
    docs = render("production")
    assert importlib.util.find_spec(HEALTHCHECK_GRPC[2]) is not None  # the exec probes' module
    for package, deployment in project_deployments(docs).items():
        pod = pod_spec(deployment)
        container = main_container(deployment)
        volumes = {v["name"]: v for v in pod["volumes"]}
        readonly = {m["name"] for m in container["volumeMounts"] if m.get("readOnly")}
        # Secret files are root:fsGroup, group-readable: the service's group must be it.
        assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsGroup"]
        env = environment(container, docs)
        assert env["MTLS"] == "true"
        assert env["ETCD_USERNAME"] == package  # the user `provision etcd` creates
        root = tmp_path / package
        in_pod: dict[str, str] = {}
        for key, value in env.items():
            volume = volume_at(deployment, value) if value.startswith("/") else None
            secret = volumes[volume].get("secret") if volume else None
            if secret is None:
                in_pod[key] = value
                continue
            assert volume in readonly, (package, key)
            assert secret.get("optional") is not True, (package, key)
            assert secret["defaultMode"] in (0o400, 0o440), (package, key)
            # The file as the kubelet writes it, with a value no one guesses.
            path = root / value.lstrip("/")
            files = [path / name for name in TLS_FILES] if key == "TLS_DIR" else [path]
            for file in files:
                if "items" in secret:
                    assert file.name in {item["path"] for item in secret["items"]}, (package, key)
                file.parent.mkdir(parents=True, exist_ok=True)
                file.write_text(secrets.token_urlsafe(32))
            in_pod[key] = str(path)
        if package == "user_service":
            # user-service-db's url, written without the password (the file supplies it).
            in_pod["DATABASE_URL"] = "mysql+aiomysql://micro@mysql:3306/micro"
        settings = settings_in_pod(package, in_pod, monkeypatch)
        assert settings.environment == "production"
        assert settings.production_problems() == [], package

    # The etcd-auth Job creates the users the services log in as, with their passwords.
    job = of_kind(docs, "Job")["etcd-auth"]
    assert "shared.security.provision etcd" in " ".join(main_container(job)["command"])
    (passwords,) = [v for v in pod_spec(job)["volumes"] if "projected" in v]
    password_files = {
        item["path"]: source["secret"]["name"]
        for source in passwords["projected"]["sources"]
        for item in source["secret"]["items"]
    }
    assert password_files == {
        "root.password": "etcd-root",
        **{f"{package}.password": f"{package.replace('_', '-')}-etcd" for package in SERVICES},
    }


def test_nats_accepts_the_base_configuration_with_the_services_users(tmp_path: Path) -> None:
    """What the README builds for production's `nats-config` Secret: the base's nats.conf
    plus the users `provision nats` writes; `nats-server -t` parses it as the pod would."""
    base = of_kind(render("development"), "ConfigMap")["nats-config"]["data"]["nats.conf"]
    users = json.loads(nats_config(tmp_path, root=ROOT).read_text())["authorization"]
    config = tmp_path / "production-nats.conf"
    config.write_text(f"{base}authorization: {json.dumps(users, indent=2)}\n")
    checked = subprocess.run(
        [server_binary(), "-c", str(config), "-t"],
        env={"SERVER_NAME": "nats-0"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    assert {user["nkey"][0] for user in users["users"]} == {"U"}  # one nkey user each
    # The services' users and the read-only operator's (micro streams, micro events).
    assert len(users["users"]) == len(SERVICES) + len(NATS_OPERATORS)


def test_the_development_database_url_reaches_mariadb_with_its_user_and_password() -> None:
    docs = render("development")
    user_service = main_container(project_deployments(docs)["user_service"])
    url = make_url(environment(user_service, docs)["DATABASE_URL"])
    mariadb = main_container(of_kind(docs, "StatefulSet")["mariadb"])
    mariadb_env = environment(mariadb, docs)
    assert (url.host, url.port) == ("mysql", 3306)
    assert url.database == mariadb_env["MARIADB_DATABASE"]
    assert url.username == mariadb_env["MARIADB_USER"]
    assert url.password == mariadb_env["MARIADB_PASSWORD"]

    # sql/ initialises a new volume: copied from the image, which has it under /app.
    (init,) = pod_spec(of_kind(docs, "StatefulSet")["mariadb"])["initContainers"]
    assert init["command"][:3] == ["cp", "-r", "/app/sql/."]
    assert "!sql/" in (ROOT / ".dockerignore").read_text().split()
    assert "WORKDIR /app" in (ROOT / "Dockerfile").read_text()
    assert sorted((ROOT / "sql").glob("*.sql"))


@overlays
def test_secrets_are_mounted_from_secrets_and_never_written_in_the_manifests(
    overlay: str,
) -> None:
    docs = render(overlay)
    referenced: dict[str, set[str]] = {}
    for workload in workloads(docs):
        pod = pod_spec(workload)
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            for variable in container.get("env") or []:
                if variable["name"] in SECRET_VARIABLES:
                    assert "valueFrom" in variable, f"{variable['name']} is written in a file"
                ref = (variable.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    referenced.setdefault(ref["name"], set()).add(ref["key"])
        for volume in pod.get("volumes") or []:
            if "secret" in volume:
                referenced.setdefault(volume["secret"]["secretName"], set())
            for source in (volume.get("projected") or {}).get("sources", []):
                if "secret" in source:
                    referenced.setdefault(source["secret"]["name"], set())

    secrets = of_kind(docs, "Secret")
    if overlay == "production":
        assert not secrets, "production Secrets come from the cluster, not the repository"
        development = render("development")
        expected = {generated_name(n) for n in of_kind(development, "Secret")}
        assert set(referenced) == expected | PRODUCTION_SECRETS
        return
    for name, keys in referenced.items():
        assert name in secrets, f"no Secret {name}"
        assert keys <= set(secrets[name].get("data") or {}), name

    auth = project_deployments(docs)["auth_service"]
    key_file = environment(main_container(auth), docs)["JWT_SECRET_FILE"]
    mounts = {m["mountPath"]: m["name"] for m in main_container(auth)["volumeMounts"]}
    directory, _, filename = key_file.rpartition("/")
    volumes = {v["name"]: v for v in pod_spec(auth)["volumes"]}
    secret_name = volumes[mounts[directory]]["secret"]["secretName"]
    assert len(secret_data(docs, secret_name)[filename]) >= MIN_SECRET


@overlays
def test_infrastructure_runs_the_images_compose_runs(overlay: str) -> None:
    compose = services(load_compose({}))
    sets = {**of_kind(render(overlay), "StatefulSet"), **of_kind(render(overlay), "Deployment")}
    for workload, compose_service in INFRA.items():
        assert main_container(sets[workload])["image"] == compose[compose_service]["image"]

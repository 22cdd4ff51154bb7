"""The serving chart lints, renders with default and GPU values into manifests valid for Kubernetes 1.29 and 1.33,
and its schema rejects bad values. Offline: Helm's engine from helm-python-sdk, kubernetes-validate --strict."""
from __future__ import annotations

import helm_python
import pytest

from qwenflow.deploy.helm_values import CHART_DIR
from qwenflow.deploy.manifests import documents, validate

GPU_REGISTRY = {
    "gpu": {"count": 2, "product": "NVIDIA-H100-80GB-HBM3"},
    "model": {"source": "registry", "uri": "models:/qwen-7b@champion",
              "mlflow": {"trackingUri": "http://mlflow.qwenflow-platform.svc:5000", "credentialsSecret": "mlflow-creds"}},
    "serving": {"yarn": True, "maxTokensLimit": 8192},
    "resources": {"requests": {"cpu": "8", "memory": "64Gi"}, "limits": {"cpu": "16", "memory": "96Gi"}},
    "ingress": {"enabled": True, "className": "nginx", "host": "llm.example.com", "tlsSecret": "llm-tls"},
    "tolerations": [{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}],
}
PVC = {"model": {"source": "pvc", "pvc": {"claimName": "models", "path": "qwen/7b"}}, "autoscaling": {"enabled": False}}


@pytest.fixture(scope="module")
def chart():
    c = helm_python.Chart.load(CHART_DIR)
    yield c
    c.close()


def render(chart, values):
    return chart.render(values, name="llm", namespace="serving", is_install=True)


def by_kind(docs):
    return {d["kind"]: d for d in docs}


def test_lint_is_clean():
    result = helm_python.lint(CHART_DIR, strict=True)
    assert result["errors"] == [], result
    assert all(m["severity"] <= 1 for m in result["messages"]), result["messages"]  # info only (icon)


@pytest.mark.parametrize("values", [{}, GPU_REGISTRY, PVC], ids=["default", "gpu-registry", "pvc"])
def test_renders_valid_manifests(chart, values):
    docs = documents(render(chart, values))
    problems = [p for d in docs for p in validate(d)]
    assert problems == []
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "PodDisruptionBudget", "ServiceMonitor", "ServiceAccount"} <= kinds


def test_pod_is_hardened_and_probed(chart):
    pod = by_kind(documents(render(chart, {})))["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["automountServiceAccountToken"] is False
    (c,) = pod["containers"]
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"] and sc["capabilities"]["drop"] == ["ALL"]
    assert c["startupProbe"]["httpGet"]["path"] == "/readyz" and c["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert c["resources"]["limits"]["memory"] == "16Gi" and "nvidia.com/gpu" not in c["resources"]["limits"]
    assert {m["mountPath"] for m in c["volumeMounts"]} >= {"/tmp", "/var/cache/qwenflow"}  # writable under ro rootfs


def test_gpu_registry_values_reach_the_pod(chart):
    docs = by_kind(documents(render(chart, GPU_REGISTRY)))
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert {t["key"] for t in pod["tolerations"]} == {"nvidia.com/gpu", "spot"}
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["QWENFLOW_MODEL"] == "models:/qwen-7b@champion" and env["QWENFLOW_YARN"] == "true"
    assert env["MLFLOW_TRACKING_URI"].startswith("http://mlflow.")
    assert c["envFrom"] == [{"secretRef": {"name": "mlflow-creds"}}]
    hpa = docs["HorizontalPodAutoscaler"]["spec"]["metrics"][0]
    assert hpa["type"] == "Pods" and hpa["pods"]["metric"]["name"] == "bentoml_service_request_in_progress"
    assert docs["Ingress"]["spec"]["tls"][0]["hosts"] == ["llm.example.com"]


def test_pvc_source_mounts_the_claim(chart):
    docs = by_kind(documents(render(chart, PVC)))
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    assert {"name": "model", "persistentVolumeClaim": {"claimName": "models", "readOnly": True}} in pod["volumes"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["QWENFLOW_MODEL"] == "/models/qwen/7b"
    assert "HorizontalPodAutoscaler" not in docs and docs["Deployment"]["spec"]["replicas"] == 1


@pytest.mark.parametrize("bad,needle", [
    ({"gpu": {"count": -1}}, "count"),
    ({"model": {"source": "s3"}}, "source"),
    ({"model": {"source": "registry", "uri": "runs:/abc/model"}}, "uri"),
    ({"serving": {"attention": "flash9"}}, "attention"),
    ({"securityContext": {"allowPrivilegeEscalation": True, "readOnlyRootFilesystem": True,
                          "capabilities": {"drop": ["ALL"]}}}, "allowPrivilegeEscalation"),
    ({"resources": {"requests": {"cpu": "lots"}, "limits": {}}}, "cpu"),
    ({"replicas": 3}, "replicas"),
])
def test_schema_rejects_bad_values(chart, bad, needle):
    with pytest.raises(helm_python.HelmValuesError, match=needle):
        chart.validate_schema(chart.merge_values(bad))
    with pytest.raises(helm_python.HelmError):
        render(chart, bad)


def test_template_guards_catch_incomplete_sources(chart):
    with pytest.raises(helm_python.HelmError, match="trackingUri is required"):
        render(chart, {"model": {"source": "registry", "uri": "models:/m@champion"}})
    with pytest.raises(helm_python.HelmError, match="claimName"):
        render(chart, {"model": {"source": "pvc"}})

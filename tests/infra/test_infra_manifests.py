"""infra/: the kustomize trees render into manifests valid for Kubernetes 1.29 and 1.33; RBAC is least privilege;
every pod is hardened; the Dockerfiles copy what exists and pin the stack's torch."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from tests.infra.kustomize import render, render_python
from tests.infra.manifests import validate

INFRA = Path(__file__).resolve().parents[2] / "infra"
ROOT = INFRA.parent
TREES = ["k8s/base", "k8s/overlays/production"]


@pytest.fixture(scope="module", params=TREES)
def docs(request):
    return render(INFRA / request.param)


def find(docs, kind, name):
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def test_every_manifest_validates_strictly(docs):
    assert [p for d in docs for p in validate(d)] == []
    kinds = {d["kind"] for d in docs}
    assert {
        "Namespace",
        "StatefulSet",
        "Deployment",
        "Service",
        "Role",
        "RoleBinding",
        "ServiceAccount",
        "PriorityClass",
        "ResourceQuota",
        "Job",
    } <= kinds


def test_mlflow_uses_postgres_and_s3(docs):
    args = " ".join(find(docs, "Deployment", "mlflow")["spec"]["template"]["spec"]["containers"][0]["args"])
    assert "--backend-store-uri=postgresql://" in args and "--artifacts-destination=s3://mlflow" in args
    assert find(docs, "StatefulSet", "mlflow-postgres") and find(docs, "StatefulSet", "minio")


def test_steps_may_only_launch_follow_and_delete_their_jobs(docs):
    """The run's service account can do exactly what trainjob.py and rayjob.py call, and nothing wider; the job pods'
    account has no token at all."""
    role = find(docs, "Role", "qwenflow-job-launcher")
    allowed = {"trainjobs", "pytorchjobs", "rayjobs"}
    for rule in role["rules"]:
        assert "*" not in rule["apiGroups"] + rule["resources"] + rule["verbs"]
        if rule["resources"] == ["pods"]:
            assert rule["verbs"] == ["get"] and rule["apiGroups"] == [""]
        else:
            assert set(rule["resources"]) <= allowed and set(rule["verbs"]) == {"create", "get", "patch", "delete"}
    assert {r for rule in role["rules"] for r in rule["resources"]} == allowed | {"pods"}
    binding = find(docs, "RoleBinding", "qwenflow-job-launcher")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "qwenflow-pipeline", "namespace": "kubeflow"}]
    bound = {s["name"] for d in docs if d["kind"] in {"RoleBinding", "ClusterRoleBinding"} for s in d["subjects"]}
    assert "qwenflow-step" not in bound and not [d for d in docs if d["kind"] in {"ClusterRole", "ClusterRoleBinding"}]
    assert find(docs, "ServiceAccount", "qwenflow-step")["automountServiceAccountToken"] is False


def test_launcher_rbac_covers_every_api_call_the_launchers_make():
    """Each Kubernetes call in the launchers maps to a verb the role grants (a new call needs a new rule)."""

    calls = set()
    for f in ("trainjob.py", "rayjob.py"):
        src = (ROOT / "platform/qwenflow/orchestration" / f).read_text()
        calls |= set(re.findall(r"api\.(\w+)_namespaced_(custom_object|pod)\(", src))
    verbs = {"create": "create", "get": "get", "read": "get", "patch": "patch", "delete": "delete"}
    assert calls and {verbs[c] for c, _ in calls} <= {"create", "get", "patch", "delete"}, calls
    assert ("read", "pod") in calls  # the ownerReference lookup the pods rule is for


def test_every_pod_is_hardened(docs):
    for d in docs:
        pod = d.get("spec", {}).get("template", {}).get("spec")
        if not pod:
            continue
        assert pod["securityContext"]["runAsNonRoot"] is True, d["metadata"]["name"]
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"], c["name"]
            assert sc["readOnlyRootFilesystem"] is True and c["resources"]["limits"], c["name"]


def test_overlay_retargets_images():
    docs = render(INFRA / "k8s/overlays/production")
    mlflow = find(docs, "Deployment", "mlflow")
    assert mlflow["spec"]["replicas"] == 3
    assert mlflow["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example.com/qwenflow/mlflow:3.17.2"


@pytest.mark.parametrize("tree", TREES)
def test_python_renderer_matches_kubectl(tree):
    if not shutil.which("kubectl"):
        # kubectl ships with this project's machine image, so CI always cross-checks; a laptop without it skips
        # (reported by -ra) and the other tests still render with the Python renderer.
        message = "kubectl not installed: cannot cross-check the Python kustomize renderer against kubectl"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)

    def key(d):
        return d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]

    assert sorted(render_python(INFRA / tree), key=key) == sorted(render(INFRA / tree), key=key)


@pytest.mark.parametrize("dockerfile", ["training.Dockerfile", "serving.Dockerfile", "mlflow.Dockerfile"])
def test_dockerfiles_copy_what_exists_and_run_unprivileged(dockerfile):
    text = (INFRA / "docker" / dockerfile).read_text()
    for line in re.findall(r"^COPY (.+)$", text, flags=re.M):
        for src in line.split()[:-1]:
            if src != ".":
                assert (ROOT / src).exists(), f"{dockerfile}: COPY {src} does not exist"
    assert re.search(r"^USER \d+$", text, flags=re.M), f"{dockerfile} must drop root"
    if "torch==" in text:
        pin = re.search(r"^torch==(\S+)$", (ROOT / "requirements.txt").read_text(), flags=re.M).group(1)
        assert f"torch=={pin}" in text, f"{dockerfile} installs a torch other than requirements.txt's {pin}"

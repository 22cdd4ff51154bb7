"""The data step of a compiled real-size pipeline runs the corpus on a RayCluster: it creates a KubeRay RayJob,
follows it, and deletes it when the job ends or the step is stopped. The manifest is checked against the RayJob
CRD's own schema (KubeRay v1.7.0, ray.io/v1, vendored in fixtures/); the cluster is a fake API (none runs here)."""

from __future__ import annotations

import gzip
import json
import os
import shlex
import signal
import threading
from pathlib import Path

import jsonschema
import pytest
from kubernetes import client as k8s

from qwenflow.orchestration import rayjob
from qwenflow.orchestration.trainjob import JobPod
from qwenflow.recipe import load_recipe, recipe_to_yaml

CRD = json.loads(
    gzip.decompress((Path(__file__).parent / "fixtures" / "ray.io_rayjobs.v1.schema.json.gz").read_bytes())
)
POD = JobPod(
    image="ghcr.io/qwenflow/train:0.1.0",
    pvc="qwenflow-work",
    mount_path="/mnt/qwenflow",
    env={"KFP_RUN_ID": "abc", rayjob.MARKER: "1"},
    service_account="qwenflow-step",
    owner={"apiVersion": "v1", "kind": "Pod", "name": "step-pod", "uid": "uid-1", "blockOwnerDeletion": False},
)


def unknown_fields(obj, schema, path="") -> list[str]:
    """Fields the CRD's structural schema does not declare (the API server would prune them: a silent no-op)."""
    if schema.get("x-kubernetes-preserve-unknown-fields") or not isinstance(obj, (dict, list)):
        return []
    if isinstance(obj, list):
        return [u for i, x in enumerate(obj) for u in unknown_fields(x, schema.get("items", {}), f"{path}[{i}]")]
    props, extra = schema.get("properties"), schema.get("additionalProperties")
    out = []
    for k, v in obj.items():
        if props is not None and k in props:
            out += unknown_fields(v, props[k], f"{path}.{k}")
        elif isinstance(extra, dict):
            out += unknown_fields(v, extra, f"{path}.{k}")
        elif props is not None or extra is False:
            out.append(f"{path}.{k}")
    return out


def test_rayjob_manifest_matches_the_crd_schema():
    spec = load_recipe("qwen2.5-7b").data
    assert spec.engine == "ray" and spec.resources.nodes == 4
    args = [
        "prepare-data",
        "--recipe",
        "/mnt/qwenflow/work/abc/prepare-data-inputs/recipe.yaml",
        "--out",
        "/mnt/qwenflow/work/abc/prepare-data",
    ]
    m = rayjob.rayjob("qwenflow-prepare-data-abc", "team-a", spec, args, POD)
    assert (CRD["group"], CRD["version"], CRD["kind"]) == ("ray.io", "v1", "RayJob")
    assert m["apiVersion"] == "ray.io/v1" and m["kind"] == "RayJob"
    schema = CRD["openAPIV3Schema"]
    jsonschema.Draft7Validator(schema).validate(m)  # types, enums, required fields
    assert unknown_fields(m, schema) == []
    s = m["spec"]
    assert shlex.split(s["entrypoint"]) == ["python", "-m", "qwenflow.orchestration.entry", *args]
    assert s["shutdownAfterJobFinishes"] is True and s["submissionMode"] == "K8sJobMode"
    head, workers = s["rayClusterSpec"]["headGroupSpec"], s["rayClusterSpec"]["workerGroupSpecs"]
    assert s["rayClusterSpec"]["rayVersion"] == "2.60.0"
    assert len(workers) == 1 and workers[0]["replicas"] == workers[0]["maxReplicas"] == 3  # head + 3 = nodes
    for group in (head, workers[0]):
        c = group["template"]["spec"]["containers"][0]
        assert c["resources"]["limits"] == {"cpu": "16", "memory": "64Gi"} and c["image"] == POD.image
        assert {v["mountPath"] for v in c["volumeMounts"]} == {"/mnt/qwenflow", "/dev/shm"}
        assert {e["name"] for e in c["env"]} >= {"KFP_RUN_ID", rayjob.MARKER, "MLFLOW_TRACKING_URI"}
        assert group["template"]["spec"]["serviceAccountName"] == "qwenflow-step"
    assert m["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    # a field the CRD does not have is caught (the check can fail)
    bad = json.loads(json.dumps(m))
    bad["spec"]["rayClusterSpec"]["headGroupSpec"]["replicas"] = 1
    assert unknown_fields(bad, schema) == [".spec.rayClusterSpec.headGroupSpec.replicas"]


class FakeAPI:
    """CustomObjectsApi over a dict. Each created job walks through `script` (status per poll); when it reaches
    Complete/SUCCEEDED it writes the entry's result where the job's --out points, as the job's driver would."""

    def __init__(self, script):
        self.script, self.jobs, self.created, self.deleted, self.polls = script, {}, [], [], {}

    def create_namespaced_custom_object(self, group, version, ns, plural, body):
        assert (group, version, plural) == ("ray.io", "v1", "rayjobs")
        name = body["metadata"]["name"]
        if name in self.jobs:
            raise k8s.ApiException(status=409)
        self.jobs[name] = dict(body, status={})
        self.created.append(body)
        self.polls[name] = 0

    def get_namespaced_custom_object(self, group, version, ns, plural, name):
        if name not in self.jobs:
            raise k8s.ApiException(status=404)
        job = self.jobs[name]
        i = min(self.polls[name], len(self.script) - 1)
        self.polls[name] += 1
        job["status"] = dict(self.script[i])
        if job["status"].get("jobStatus") == "SUCCEEDED":
            argv = shlex.split(job["spec"]["entrypoint"])
            out = Path(argv[argv.index("--out") + 1])
            out.mkdir(parents=True, exist_ok=True)
            (out / ".qwenflow_entry_result.json").write_text(json.dumps({"corpus_rows": {"train": 7}, "engine": "ray"}))
        return job

    def delete_namespaced_custom_object(self, group, version, ns, plural, name, body=None):
        if name not in self.jobs:
            raise k8s.ApiException(status=404)
        del self.jobs[name]
        self.deleted.append(name)

    def patch_namespaced_custom_object(self, *a, **kw):
        pass


RUNNING = [{"jobDeploymentStatus": "Initializing"}, {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"}]
DONE = RUNNING + [{"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}]
FAILED = RUNNING + [
    {
        "jobDeploymentStatus": "Complete",
        "jobStatus": "FAILED",
        "reason": "AppFailed",
        "message": "Job entrypoint command failed with exit code 1",
    }
]


@pytest.fixture
def cluster_step(tmp_path, monkeypatch):
    """The environment compiled pipelines give every step (pipelines/kubernetes.py), and the fake cluster."""
    mount = tmp_path / "mnt"
    for k, v in {
        "QWENFLOW_PVC_MOUNT": str(mount),
        "QWENFLOW_WORK_DIR": str(mount / "work"),
        "KFP_RUN_ID": "abc",
        "QWENFLOW_IMAGE": POD.image,
        "QWENFLOW_PVC": "qwenflow-work",
        "QWENFLOW_NAMESPACE": "team-a",
        "HOSTNAME": "step-pod",
    }.items():
        monkeypatch.setenv(k, v)
    for k in ("QWENFLOW_CACHE", rayjob.MARKER, "RAY_ADDRESS", "QWENFLOW_EVENTS"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setattr(rayjob, "POLL_S", 0.01)

    class Core:
        def read_namespaced_pod(self, name, ns):
            return k8s.V1Pod(metadata=k8s.V1ObjectMeta(name=name, uid="uid-step"))

    monkeypatch.setattr(k8s, "CoreV1Api", Core)
    import kubernetes.config

    monkeypatch.setattr(kubernetes.config, "load_incluster_config", lambda: None)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(recipe_to_yaml(load_recipe("qwen2.5-7b")))

    def use(script):
        api = FakeAPI(script)
        monkeypatch.setattr(k8s, "CustomObjectsApi", lambda: api)
        return api

    return recipe, tmp_path, use


def test_compiled_7b_data_step_creates_follows_and_deletes_its_rayjob(cluster_step):
    from qwenflow.orchestration.stage import run_stage

    recipe, tmp, use = cluster_step
    api = use(DONE)
    result = run_stage("prepare_data", recipe_path=str(recipe), inputs={}, output=str(tmp / "out"), kfp_run_id="abc")
    assert [j["metadata"]["name"] for j in api.created] == ["qwenflow-prepare-data-abc"]
    assert api.deleted == ["qwenflow-prepare-data-abc"] and not api.jobs  # gone once it ended
    assert result["rayjob"] == "team-a/qwenflow-prepare-data-abc" and result["corpus_rows"] == {"train": 7}
    job = api.created[0]
    assert job["metadata"]["ownerReferences"][0]["uid"] == "uid-step"
    argv = shlex.split(job["spec"]["entrypoint"])
    assert argv[argv.index("--out") + 1] == str(tmp / "mnt" / "work" / "abc" / "prepare_data")
    staged = Path(argv[argv.index("--recipe") + 1])
    from qwenflow.orchestration.stage import read_recipe

    assert read_recipe(staged) == load_recipe("qwen2.5-7b")  # the job's entry reads the resolved recipe back


def test_failed_rayjob_is_deleted_and_its_reason_raised(cluster_step):
    from qwenflow.orchestration.stage import StageFailed, run_stage

    recipe, tmp, use = cluster_step
    api = use(FAILED)
    with pytest.raises(StageFailed, match="AppFailed: Job entrypoint command failed"):
        run_stage("prepare_data", recipe_path=str(recipe), inputs={}, output=str(tmp / "out"), kfp_run_id="abc")
    assert api.deleted == ["qwenflow-prepare-data-abc"] and not api.jobs


def test_terminating_the_step_deletes_its_rayjob(cluster_step):
    """KFP terminating the run sends SIGTERM to the step's process: the RayCluster must not outlive it."""
    recipe, tmp, use = cluster_step
    api = use(RUNNING)  # never finishes
    before = signal.getsignal(signal.SIGTERM)
    threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()
    with pytest.raises(SystemExit):
        rayjob.run_as_rayjob("prepare_data", load_recipe("qwen2.5-7b"), tmp / "mnt" / "work" / "abc" / "prepare_data")
    assert api.deleted == ["qwenflow-prepare-data-abc"] and not api.jobs
    assert signal.getsignal(signal.SIGTERM) == before  # the step's own handler is back


def test_local_runs_keep_ray_in_process():
    """Outside a compiled pipeline (no shared volume), or inside the RayJob itself, the stage runs Ray Data here."""
    env = dict(os.environ)
    try:
        os.environ.pop("QWENFLOW_PVC_MOUNT", None)
        assert not rayjob.on_cluster()
        os.environ["QWENFLOW_PVC_MOUNT"] = "/mnt/qwenflow"
        os.environ[rayjob.MARKER] = "1"
        assert not rayjob.on_cluster()
    finally:
        os.environ.clear()
        os.environ.update(env)

"""Multi-node stages as Kubeflow Trainer v2 TrainJobs (PyTorchJob opt-in): manifests checked against the SDKs'
models, and the job's life tied to its KFP step, against a fake Kubernetes API (none can run here)."""

import copy
import os
import signal
import threading

import pytest
from kubernetes import client as k8s

from qwenflow.orchestration import trainjob
from qwenflow.recipe import load_recipe

POD = trainjob.JobPod(
    image="ghcr.io/qwenflow/train:0.1.0",
    pvc="qwenflow-work",
    mount_path="/mnt/qwenflow",
    env={"KFP_RUN_ID": "abc"},
    service_account="qwenflow-step",
    owner={"apiVersion": "v1", "kind": "Pod", "name": "step-pod", "uid": "uid-1", "blockOwnerDeletion": False},
)
ARGS = ["pretrain", "--out", "/mnt/qwenflow/work/abc/pretrain", "--resume"]


def test_trainjob_manifest_round_trips_through_the_trainer_sdk_models():
    from kubeflow_trainer_api.models import TrainerV1alpha1TrainJob

    res = load_recipe("qwen2.5-7b").pretrain.resources
    assert res.nodes == 4 and res.launcher == "trainjob"
    manifest = trainjob.to_manifest(
        trainjob.train_job("qwenflow-pretrain-abc", "team-a", res, ARGS, POD, stage="pretrain")
    )
    assert manifest["apiVersion"] == "trainer.kubeflow.org/v1alpha1" and manifest["kind"] == "TrainJob"
    parsed = TrainerV1alpha1TrainJob.from_dict(manifest)  # the SDK's model accepts every field
    assert trainjob.to_manifest(parsed) == manifest  # and drops none
    spec = manifest["spec"]
    assert spec["runtimeRef"]["name"] == "torch-distributed"
    t = spec["trainer"]
    assert t["numNodes"] == 4 and t["numProcPerNode"] == 8
    assert t["command"] == ["torchrun", "-m", "qwenflow.orchestration.entry"] and t["args"] == ARGS
    assert t["resourcesPerNode"]["limits"]["nvidia.com/gpu"] == "8"
    env = {e["name"]: e for e in t["env"]}
    assert env["KFP_RUN_ID"]["value"] == "abc"
    assert env["MLFLOW_TRACKING_URI"]["valueFrom"]["secretKeyRef"]["name"] == "mlflow-credentials"
    pod = spec["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0]
    assert pod["name"] == "node"
    podspec = pod["template"]["spec"]["template"]["spec"]
    assert podspec["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert podspec["tolerations"][0]["key"] == "nvidia.com/gpu" and podspec["serviceAccountName"] == "qwenflow-step"
    assert {v["name"] for v in podspec["volumes"]} == {"work", "dshm"}
    assert podspec["containers"][0]["name"] == "node"
    assert manifest["metadata"]["ownerReferences"][0]["uid"] == "uid-1"


def test_pytorchjob_is_the_opt_in_for_v1_operators():
    from kubeflow.training import ApiClient
    from kubeflow.training import models as m

    class Response:  # ApiClient.deserialize reads JSON from a response's .data
        def __init__(self, data):
            import json

            self.data = json.dumps(data)

    res = load_recipe("qwen2.5-7b", ["pretrain.resources.launcher=pytorchjob"]).pretrain.resources
    manifest = trainjob.to_manifest(trainjob.pytorchjob("qwenflow-pretrain-abc", "team-a", res, ARGS, POD))
    parsed = ApiClient().deserialize(Response(manifest), "KubeflowOrgV1PyTorchJob")
    assert isinstance(parsed, m.KubeflowOrgV1PyTorchJob)
    assert k8s.ApiClient().sanitize_for_serialization(parsed) == manifest
    specs = parsed.spec.pytorch_replica_specs
    assert specs["Master"].replicas == 1 and specs["Worker"].replicas == 3 and parsed.spec.nproc_per_node == "8"
    assert specs["Worker"].template.spec.containers[0].command == ["torchrun", "-m", "qwenflow.orchestration.entry"]


class FakeAPI:
    """The parts of CustomObjectsApi the launcher uses, over a dict; `script[name]` gives the conditions, poll by
    poll, of the job created under that name from then on."""

    def __init__(self, script=None):
        self.jobs: dict[str, dict] = {}
        self.script = script or {}
        self.created, self.deleted, self.patched = [], [], []
        self.polls: dict[str, int] = {}
        self.running: dict[str, list | None] = {}

    def create_namespaced_custom_object(self, group, version, ns, plural, body):
        name = body["metadata"]["name"]
        if name in self.jobs:
            raise k8s.ApiException(status=409, reason="AlreadyExists")
        self.jobs[name] = copy.deepcopy(body)
        self.created.append(name)
        self.polls[name] = 0
        self.running[name] = self.script.get(name)

    def get_namespaced_custom_object(self, group, version, ns, plural, name):
        if name not in self.jobs:
            raise k8s.ApiException(status=404, reason="NotFound")
        job = self.jobs[name]
        steps = self.running.get(name)
        if steps:
            job["status"] = {"conditions": steps[min(self.polls[name], len(steps) - 1)]}
            self.polls[name] += 1
        return job

    def delete_namespaced_custom_object(self, group, version, ns, plural, name, body=None):
        if name not in self.jobs:
            raise k8s.ApiException(status=404, reason="NotFound")
        del self.jobs[name]
        self.deleted.append(name)

    def patch_namespaced_custom_object(self, group, version, ns, plural, name, body):
        self.patched.append((name, body))


def cond(kind, status="True", reason="", t="t"):
    return {"type": kind, "status": status, "reason": reason, "message": "", "lastTransitionTime": t}


def _manifest(name="qwenflow-sft-abc"):
    res = load_recipe("qwen2.5-72b").sft.resources
    return trainjob.to_manifest(trainjob.train_job(name, "team-a", res, ARGS, POD))


def test_job_runs_to_completion():
    api = FakeAPI({"qwenflow-sft-abc": [[cond("Created")], [cond("Created"), cond("Complete", t="t2")]]})
    trainjob.run_job(api, trainjob.TRAINJOB, _manifest(), poll_s=0, log=lambda s: None)
    assert api.created == ["qwenflow-sft-abc"] and api.deleted == []


def test_failed_job_is_deleted_and_its_reason_raised():
    api = FakeAPI({"qwenflow-sft-abc": [[cond("Failed", reason="BackoffLimitExceeded")]]})
    with pytest.raises(RuntimeError, match="BackoffLimitExceeded"):
        trainjob.run_job(api, trainjob.TRAINJOB, _manifest(), poll_s=0, log=lambda s: None)
    assert api.deleted == ["qwenflow-sft-abc"] and "qwenflow-sft-abc" not in api.jobs


def test_retry_after_failure_replaces_the_old_job_instead_of_reraising_it():
    api = FakeAPI()
    api.create_namespaced_custom_object("", "", "team-a", "", _manifest())  # the first attempt's job ...
    api.jobs["qwenflow-sft-abc"]["status"] = {"conditions": [cond("Failed", reason="NodePreempted")]}  # ... failed
    api.script["qwenflow-sft-abc"] = [[cond("Created")], [cond("Complete", t="t3")]]
    lines = []
    trainjob.run_job(api, trainjob.TRAINJOB, _manifest(), poll_s=0, log=lines.append)
    assert api.deleted == ["qwenflow-sft-abc"] and api.created == ["qwenflow-sft-abc", "qwenflow-sft-abc"]
    assert any("replacing it" in s for s in lines)


def test_retry_adopts_a_running_job_and_reuses_a_finished_one():
    api = FakeAPI({"qwenflow-sft-abc": [[cond("Running")], [cond("Complete", t="t4")]]})
    api.create_namespaced_custom_object("", "", "team-a", "", _manifest())
    api.jobs["qwenflow-sft-abc"]["status"] = {"conditions": [cond("Running")]}
    trainjob.run_job(api, trainjob.TRAINJOB, _manifest(), poll_s=0, log=lambda s: None)
    assert api.created == ["qwenflow-sft-abc"] and api.patched[0][1]["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert trainjob.submit(api, trainjob.TRAINJOB, _manifest(), log=lambda s: None) == "reused"


def test_terminating_the_step_deletes_its_job():
    """KFP terminating a run sends SIGTERM to the step's process: the job it launched must go with it."""
    api = FakeAPI({"qwenflow-sft-abc": [[cond("Running")]]})  # runs forever
    threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()
    with pytest.raises(SystemExit):
        trainjob.run_job(api, trainjob.TRAINJOB, _manifest(), poll_s=0.05, log=lambda s: None)
    assert api.deleted == ["qwenflow-sft-abc"] and api.jobs == {}
    assert signal.getsignal(signal.SIGTERM) is not None  # the step's own handler is restored

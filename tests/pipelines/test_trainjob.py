"""The multi-node launcher's PyTorchJob, checked against the Kubeflow training SDK's models."""
import pytest
from kubeflow.training import models as m
from kubernetes import client as k8s

from qwenflow.orchestration import trainjob
from qwenflow.recipe import load_recipe


def _roundtrip(manifest: dict) -> m.KubeflowOrgV1PyTorchJob:
    class Response:  # ApiClient.deserialize reads JSON from a response's .data
        def __init__(self, data):
            import json

            self.data = json.dumps(data)

    # The training SDK's own client resolves its models (and the Kubernetes ones they embed) by name.
    from kubeflow.training import ApiClient

    return ApiClient().deserialize(Response(manifest), "KubeflowOrgV1PyTorchJob")


def test_multinode_pretrain_manifest_matches_the_sdk_models():
    res = load_recipe("qwen2.5-7b").pretrain.resources
    assert res.nodes == 4
    job = trainjob.pytorchjob("qwenflow-pretrain-abc", "team-a", "ghcr.io/qwenflow/train:0.1.0", res,
                              ["pretrain", "--out", "/mnt/qwenflow/work/abc/pretrain"], pvc="qwenflow-work",
                              mount_path="/mnt/qwenflow", env={"KFP_RUN_ID": "abc"})
    manifest = trainjob.to_manifest(job)
    assert manifest["apiVersion"] == "kubeflow.org/v1" and manifest["kind"] == "PyTorchJob"
    parsed = _roundtrip(manifest)
    assert isinstance(parsed, m.KubeflowOrgV1PyTorchJob)
    assert k8s.ApiClient().sanitize_for_serialization(parsed) == manifest  # nothing the SDK's schema does not know
    specs = parsed.spec.pytorch_replica_specs
    assert specs["Master"].replicas == 1 and specs["Worker"].replicas == 3
    assert parsed.spec.nproc_per_node == "8"
    pod = specs["Worker"].template.spec
    c = pod.containers[0]
    assert c.name == "pytorch" and c.command[:3] == ["torchrun", "-m", "qwenflow.orchestration.entry"]
    assert c.resources.limits["nvidia.com/gpu"] == "8" and c.resources.requests["memory"] == "1000Gi"
    assert pod.node_selector == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert pod.tolerations[0].key == "nvidia.com/gpu"
    assert pod.volumes[0].persistent_volume_claim.claim_name == "qwenflow-work"
    assert c.env_from[0].secret_ref.name == "mlflow-credentials"
    assert parsed.spec.run_policy.backoff_limit == 3


class FakeJobs:
    """Stands in for the Kubernetes API server (none can run here): returns the given job statuses in order."""

    def __init__(self, conditions):
        self.conditions = conditions
        self.calls = 0

    def get_namespaced_custom_object(self, group, version, ns, plural, name):
        conds = self.conditions[min(self.calls, len(self.conditions) - 1)]
        self.calls += 1
        return {"status": {"conditions": conds}}


def test_wait_streams_conditions_and_returns_on_success():
    created = {"type": "Created", "status": "True", "reason": "PyTorchJobCreated", "lastTransitionTime": "t0"}
    running = {"type": "Running", "status": "True", "reason": "PyTorchJobRunning", "lastTransitionTime": "t1"}
    done = {"type": "Succeeded", "status": "True", "reason": "PyTorchJobSucceeded", "lastTransitionTime": "t2"}
    lines = []
    trainjob.wait("j", "ns", FakeJobs([[created], [created, running], [created, running, done]]), poll_s=0,
                  log=lines.append)
    assert [l.split("]")[1].split("=")[0].strip() for l in lines] == ["Created", "Running", "Succeeded"]


def test_wait_fails_with_the_jobs_reason():
    failed = {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "worker-1 OOMKilled",
              "lastTransitionTime": "t9"}
    with pytest.raises(RuntimeError, match="BackoffLimitExceeded: worker-1 OOMKilled"):
        trainjob.wait("j", "ns", FakeJobs([[failed]]), poll_s=0, log=lambda s: None)

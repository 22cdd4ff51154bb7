"""Cluster settings for a task from the recipe's per-stage `resources`, via kfp-kubernetes: GPUs, CPU/memory,
node selectors, tolerations, the shared PVC, MLflow credentials from a Secret, timeout and retries; every GPU step
also tolerates the GPU taint, gets a RAM-backed /dev/shm (NCCL and DataLoader workers), and every step a scratch
volume whose size is requested from the cluster (a generic ephemeral volume: KFP v2 has no ephemeral-storage
resource field). The stage cache lives on the shared PVC, so a rerun on the cluster skips unchanged stages."""

from __future__ import annotations

from dataclasses import dataclass, field

from kfp import kubernetes

from qwenflow.orchestration.policy import step_policy
from qwenflow.recipe.base import Resources


@dataclass(frozen=True)
class ClusterSettings:
    pvc: str = "qwenflow-work"  # ReadWriteMany volume shared by every stage (datasets, checkpoints)
    mount_path: str = "/mnt/qwenflow"
    mlflow_secret: str = "mlflow-credentials"  # keys below become env vars in every step
    secret_keys: dict[str, str] = field(
        default_factory=lambda: {
            "MLFLOW_TRACKING_URI": "MLFLOW_TRACKING_URI",
            "MLFLOW_TRACKING_USERNAME": "MLFLOW_TRACKING_USERNAME",
            "MLFLOW_TRACKING_PASSWORD": "MLFLOW_TRACKING_PASSWORD",
        }
    )
    image: str = ""
    stage_cache: bool = True  # content-keyed stage cache on the PVC (qwenflow.orchestration.cache)
    scratch_gpu: str = "200Gi"  # scratch space requested per GPU step (HF/Triton caches, shards)
    scratch: str = "20Gi"  # ... per CPU step
    scratch_storage_class: str | None = None  # None: the cluster's default StorageClass
    shm_size: str = "64Gi"  # /dev/shm per GPU step (NCCL buffers, DataLoader workers)


# Service accounts (infra/k8s/base/rbac/pipeline-steps.yaml). KFP v2 sets the steps' one per run, not per task:
# `qwenflow submit` passes it, the UI's run form has a "Service account" field; it may launch and delete the jobs.
# The pods of those jobs (TrainJob workers, Ray pods) run as JOB_SERVICE_ACCOUNT, which has no API access.
RUN_SERVICE_ACCOUNT = "qwenflow-pipeline"
JOB_SERVICE_ACCOUNT = "qwenflow-step"
GPU_TAINT = "nvidia.com/gpu"


def apply(task, res: Resources, cluster: ClusterSettings):
    """Set one task's Kubernetes settings; returns the task."""
    task.set_cpu_request(res.cpu).set_cpu_limit(res.cpu)
    task.set_memory_request(res.memory).set_memory_limit(res.memory)
    if res.gpus:
        task.set_accelerator_type(res.gpu_type or "nvidia.com/gpu").set_accelerator_limit(res.gpus)
    if res.gpu_product:
        kubernetes.add_node_selector(task, "nvidia.com/gpu.product", res.gpu_product)
    for key, value in res.node_selector.items():
        kubernetes.add_node_selector(task, key, value)
    tolerated = {t.key for t in res.tolerations}
    for t in res.tolerations:
        kubernetes.add_toleration(task, key=t.key, operator=t.operator, value=t.value, effect=t.effect)
    if res.gpus:
        if GPU_TAINT not in tolerated:  # GPU pools are tainted; without this the step stays Pending
            kubernetes.add_toleration(task, key=GPU_TAINT, operator="Exists", effect="NoSchedule")
        if not res.gpu_product and not res.node_selector:  # the GPU Feature Discovery label every GPU node has
            kubernetes.add_node_selector(task, "nvidia.com/gpu.present", "true")
        kubernetes.empty_dir_mount(
            task, volume_name="dshm", mount_path="/dev/shm", medium="Memory", size_limit=cluster.shm_size
        )
    kubernetes.add_ephemeral_volume(
        task,
        volume_name="scratch",
        mount_path="/scratch",
        access_modes=["ReadWriteOnce"],
        size=cluster.scratch_gpu if res.gpus else cluster.scratch,
        storage_class_name=cluster.scratch_storage_class,
    )
    task.set_env_variable("TMPDIR", "/scratch")
    task.set_env_variable("HF_HOME", "/scratch/hf")
    kubernetes.mount_pvc(task, pvc_name=cluster.pvc, mount_path=cluster.mount_path)
    kubernetes.use_secret_as_env(task, secret_name=cluster.mlflow_secret, secret_key_to_env=cluster.secret_keys)
    timeout_s, retries = step_policy(task, res)  # defaults by kind; retries only where a retry can succeed
    kubernetes.set_timeout(task, timeout_s)
    if retries:
        # Preemptible nodes: training resumes from the checkpoints it keeps on the shared volume.
        task.set_retry(num_retries=retries, backoff_duration="60s", backoff_factor=2.0)
    task.set_env_variable("QWENFLOW_WORK_DIR", f"{cluster.mount_path}/work")
    task.set_env_variable("QWENFLOW_HOME", f"{cluster.mount_path}/home")
    # What a multi-node stage needs to launch its PyTorchJob on the same image and volume.
    task.set_env_variable("QWENFLOW_IMAGE", cluster.image)
    task.set_env_variable("QWENFLOW_PVC", cluster.pvc)
    task.set_env_variable("QWENFLOW_PVC_MOUNT", cluster.mount_path)
    task.set_env_variable("QWENFLOW_SERVICE_ACCOUNT", JOB_SERVICE_ACCOUNT)  # the launched job's pods
    task.set_env_variable("HF_HUB_OFFLINE", "1")
    if cluster.stage_cache:  # same content key as local runs: a rerun skips stages whose inputs did not change
        task.set_env_variable("QWENFLOW_STAGE_CACHE", f"{cluster.mount_path}/cache")
    return task

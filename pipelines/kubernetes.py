"""Cluster settings for a task from the recipe's per-stage `resources`, via kfp-kubernetes: GPUs, CPU/memory,
node selectors, tolerations, the shared PVC, MLflow credentials from a Secret, timeout and retries."""
from __future__ import annotations

from dataclasses import dataclass, field

from kfp import kubernetes

from qwenflow.recipe.base import Resources


@dataclass(frozen=True)
class ClusterSettings:
    pvc: str = "qwenflow-work"                 # ReadWriteMany volume shared by every stage (datasets, checkpoints)
    mount_path: str = "/mnt/qwenflow"
    mlflow_secret: str = "mlflow-credentials"  # keys below become env vars in every step
    secret_keys: dict[str, str] = field(default_factory=lambda: {
        "MLFLOW_TRACKING_URI": "MLFLOW_TRACKING_URI",
        "MLFLOW_TRACKING_USERNAME": "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD": "MLFLOW_TRACKING_PASSWORD",
    })
    image: str = ""


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
    for t in res.tolerations:
        kubernetes.add_toleration(task, key=t.key, operator=t.operator, value=t.value, effect=t.effect)
    kubernetes.mount_pvc(task, pvc_name=cluster.pvc, mount_path=cluster.mount_path)
    kubernetes.use_secret_as_env(task, secret_name=cluster.mlflow_secret, secret_key_to_env=cluster.secret_keys)
    kubernetes.set_timeout(task, res.timeout_s)
    if res.retries:
        # Preemptible nodes: training resumes from the checkpoints it keeps on the shared volume.
        task.set_retry(num_retries=res.retries, backoff_duration="60s", backoff_factor=2.0)
    task.set_env_variable("QWENFLOW_WORK_DIR", f"{cluster.mount_path}/work")
    task.set_env_variable("QWENFLOW_HOME", f"{cluster.mount_path}/home")
    # What a multi-node stage needs to launch its PyTorchJob on the same image and volume.
    task.set_env_variable("QWENFLOW_IMAGE", cluster.image)
    task.set_env_variable("QWENFLOW_PVC", cluster.pvc)
    task.set_env_variable("QWENFLOW_PVC_MOUNT", cluster.mount_path)
    task.set_env_variable("HF_HUB_OFFLINE", "1")
    return task

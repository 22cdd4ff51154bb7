"""Multi-node training through an existing engine: a Kubeflow PyTorchJob (training-operator) running torchrun +
DeepSpeed on the pipeline's image. The KFP step builds the job with the Kubeflow training SDK's models, submits it,
streams its status until it ends, and fails with the job's reason when it fails."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from kubeflow.training import models as m
from kubeflow.training.constants import constants as c
from kubernetes import client as k8s

POLL_S = 15


def _resources(res) -> k8s.V1ResourceRequirements:
    amounts = {"cpu": res.cpu, "memory": res.memory}
    if res.gpus:
        amounts[res.gpu_type or "nvidia.com/gpu"] = str(res.gpus)
    return k8s.V1ResourceRequirements(requests=dict(amounts), limits=dict(amounts))


def pytorchjob(name: str, namespace: str, image: str, res, args: list[str], *, pvc: str, mount_path: str,
               env: dict[str, str] | None = None, mlflow_secret: str = "mlflow-credentials") -> m.KubeflowOrgV1PyTorchJob:
    """A PyTorchJob: 1 master + (nodes-1) workers, `res.gpus` processes per node, the shared volume mounted."""
    container = k8s.V1Container(
        name=c.PYTORCHJOB_CONTAINER,  # the operator finds the training container by this name
        image=image,
        command=["torchrun", "-m", "qwenflow.orchestration.entry"],  # torchrun reads PET_* set by the operator
        args=args,
        resources=_resources(res),
        env=[k8s.V1EnvVar(name=k, value=v) for k, v in (env or {}).items()],
        env_from=[k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=mlflow_secret))],
        volume_mounts=[k8s.V1VolumeMount(name="work", mount_path=mount_path),
                       k8s.V1VolumeMount(name="dshm", mount_path="/dev/shm")],
    )
    selector = {**({"nvidia.com/gpu.product": res.gpu_product} if res.gpu_product else {}), **res.node_selector}
    pod = k8s.V1PodTemplateSpec(
        metadata=k8s.V1ObjectMeta(annotations={"sidecar.istio.io/inject": "false"}),
        spec=k8s.V1PodSpec(
            containers=[container],
            node_selector=selector or None,
            tolerations=[k8s.V1Toleration(key=t.key, operator=t.operator, value=t.value, effect=t.effect)
                         for t in res.tolerations] or None,
            volumes=[k8s.V1Volume(name="work", persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(claim_name=pvc)),
                     k8s.V1Volume(name="dshm", empty_dir=k8s.V1EmptyDirVolumeSource(medium="Memory"))],
        ),
    )
    replicas = {"Master": m.KubeflowOrgV1ReplicaSpec(replicas=1, restart_policy="OnFailure", template=pod)}
    if res.nodes > 1:
        replicas["Worker"] = m.KubeflowOrgV1ReplicaSpec(replicas=res.nodes - 1, restart_policy="OnFailure", template=pod)
    return m.KubeflowOrgV1PyTorchJob(
        api_version=c.API_VERSION, kind=c.PYTORCHJOB_KIND,
        metadata=k8s.V1ObjectMeta(name=name, namespace=namespace, labels={"app.kubernetes.io/part-of": "qwenflow"}),
        spec=m.KubeflowOrgV1PyTorchJobSpec(
            nproc_per_node=str(max(res.gpus, 1)),
            pytorch_replica_specs=replicas,
            run_policy=m.KubeflowOrgV1RunPolicy(backoff_limit=res.retries, active_deadline_seconds=res.timeout_s,
                                                clean_pod_policy="None"),
        ),
    )


def to_manifest(job: m.KubeflowOrgV1PyTorchJob) -> dict:
    return k8s.ApiClient().sanitize_for_serialization(job)


def _namespace() -> str:
    path = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
    return path.read_text().strip() if path.is_file() else os.environ.get("QWENFLOW_NAMESPACE", "kubeflow")


def wait(name: str, namespace: str, api=None, poll_s: float = POLL_S, log=print) -> dict:
    """Follow the job's conditions until Succeeded (returns the status) or Failed (raises with the reason)."""
    api = api or k8s.CustomObjectsApi()
    seen: set[tuple] = set()
    while True:
        job = api.get_namespaced_custom_object(c.GROUP, c.VERSION, namespace, c.PYTORCHJOB_PLURAL, name)
        status = job.get("status") or {}
        for cond in status.get("conditions") or []:
            key = (cond.get("type"), cond.get("status"), cond.get("lastTransitionTime"))
            if key not in seen:
                seen.add(key)
                log(f"[{name}] {cond.get('type')}={cond.get('status')}: {cond.get('reason', '')} {cond.get('message', '')}")
            if cond.get("status") == "True" and cond.get("type") == "Succeeded":
                return status
            if cond.get("status") == "True" and cond.get("type") == "Failed":
                raise RuntimeError(f"PyTorchJob {namespace}/{name} failed: {cond.get('reason')}: {cond.get('message')}")
        time.sleep(poll_s)


def run_as_trainjob(stage: str, recipe, recipe_path: str, inputs: dict[str, str | None], work: Path, res) -> dict:
    """Stage inputs on the shared volume, run the stage as a PyTorchJob writing into `work`, wait for it."""
    from kubernetes import config

    mount = os.environ.get("QWENFLOW_PVC_MOUNT")
    if not mount or not str(work).startswith(mount):
        raise RuntimeError(f"{stage} asks for {res.nodes} nodes: that needs the shared volume (QWENFLOW_PVC_MOUNT) "
                           "that compiled pipelines mount; local runs use one node (set resources.nodes=1)")
    run_id = os.environ.get("KFP_RUN_ID", "manual")
    staged = Path(mount) / "work" / run_id / f"{stage}-inputs"
    args = [stage, "--out", str(work)]
    for key, path in {"recipe": recipe_path, **inputs}.items():
        if path:
            dest = staged / key
            if not dest.exists():  # pod-local artifact paths are invisible to the job's pods: copy them over once
                (shutil.copytree if Path(path).is_dir() else shutil.copy2)(path, dest)
            args += ["--recipe", str(dest)] if key == "recipe" else ["--input", f"{key}={dest}"]
    config.load_incluster_config()
    ns = _namespace()
    name = f"qwenflow-{stage}-{run_id}"[:63].rstrip("-").lower()
    job = pytorchjob(name, ns, os.environ["QWENFLOW_IMAGE"], res, args, pvc=os.environ["QWENFLOW_PVC"],
                     mount_path=mount, env={"QWENFLOW_PARENT_RUN_ID": os.environ.get("QWENFLOW_PARENT_RUN_ID", ""),
                                            "KFP_RUN_ID": run_id, "HF_HUB_OFFLINE": "1"})
    api = k8s.CustomObjectsApi()
    try:
        api.create_namespaced_custom_object(c.GROUP, c.VERSION, ns, c.PYTORCHJOB_PLURAL, to_manifest(job))
    except k8s.ApiException as e:
        if e.status != 409:  # 409: a retried step finds its job already running; follow it
            raise
    wait(name, ns, api)
    return {"model_dir": str(work), "pytorchjob": f"{ns}/{name}", "nodes": res.nodes}

"""Multi-node training through Kubeflow's engines: a Kubeflow Trainer v2 `TrainJob` on the `torch-distributed`
runtime (the default), or, opt-in with `resources.launcher: pytorchjob`, a Training Operator v1 `PyTorchJob` for
clusters still on it. Both run `torchrun -m qwenflow.orchestration.entry STAGE ...` on every node (torchrun reads the
PET_* rendezvous variables the operators set) on the pipeline's image, with the shared volume mounted.

The job belongs to the KFP step that launched it:
- it carries an ownerReference to the step's pod, so when a terminated or failed run's pods are deleted, Kubernetes'
  garbage collector deletes the job (and its pods) too; the step also deletes it itself when it is stopped
  (SIGTERM/SIGINT) or fails;
- a retried step finds the job of its earlier attempt by name: a finished one is reused, a failed one is deleted and
  replaced (instead of re-raising its old failure), a running one is adopted (owner moved to the new pod).
Manifests are built with the SDK models (`kubeflow_trainer_api` for TrainJob, `kubeflow.training` for PyTorchJob).
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client as k8s
from kubernetes import config

from .launch import read_entry_result

POLL_S = 15
RUNTIME = "torch-distributed"  # ClusterTrainingRuntime installed with Kubeflow Trainer v2
NODE = "node"  # the torch runtime's replicated job and trainer container
MANAGER = "qwenflow.dev/launcher"
ENTRY = ["torchrun", "-m", "qwenflow.orchestration.entry"]
SECRET_KEYS = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


@dataclass(frozen=True)
class Kind:
    """A job CRD: where it lives in the API and which condition types end it."""

    group: str
    version: str
    plural: str
    kind: str
    succeeded: str
    failed: str = "Failed"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


TRAINJOB = Kind("trainer.kubeflow.org", "v1alpha1", "trainjobs", "TrainJob", succeeded="Complete")
PYTORCHJOB = Kind("kubeflow.org", "v1", "pytorchjobs", "PyTorchJob", succeeded="Succeeded")
KINDS = {"trainjob": TRAINJOB, "pytorchjob": PYTORCHJOB}


@dataclass(frozen=True)
class JobPod:
    """What every node's pod gets besides the command: image, volume, credentials, owner."""

    image: str
    pvc: str
    mount_path: str
    env: dict[str, str]
    mlflow_secret: str = "mlflow-credentials"
    service_account: str | None = None
    owner: dict | None = None  # ownerReference (the KFP step's pod)


def _resources(res) -> k8s.V1ResourceRequirements:
    amounts = {"cpu": res.cpu, "memory": res.memory}
    if res.gpus:
        amounts[res.gpu_type or "nvidia.com/gpu"] = str(res.gpus)
    return k8s.V1ResourceRequirements(requests=dict(amounts), limits=dict(amounts))


def _node_selector(res) -> dict[str, str]:
    return {**({"nvidia.com/gpu.product": res.gpu_product} if res.gpu_product else {}), **res.node_selector}


def _volumes(pod: JobPod) -> tuple[list, list]:
    volumes = [
        k8s.V1Volume(name="work", persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(claim_name=pod.pvc)),
        k8s.V1Volume(name="dshm", empty_dir=k8s.V1EmptyDirVolumeSource(medium="Memory")),
    ]  # NCCL needs /dev/shm
    mounts = [
        k8s.V1VolumeMount(name="work", mount_path=pod.mount_path),
        k8s.V1VolumeMount(name="dshm", mount_path="/dev/shm"),
    ]
    return volumes, mounts


def _env(pod: JobPod) -> list[k8s.V1EnvVar]:
    plain = [k8s.V1EnvVar(name=k, value=v) for k, v in pod.env.items()]
    secret = [
        k8s.V1EnvVar(
            name=k,
            value_from=k8s.V1EnvVarSource(
                secret_key_ref=k8s.V1SecretKeySelector(name=pod.mlflow_secret, key=k, optional=True)
            ),
        )
        for k in SECRET_KEYS
    ]
    return plain + secret


def _metadata(name: str, namespace: str, pod: JobPod, stage: str) -> k8s.V1ObjectMeta:
    return k8s.V1ObjectMeta(
        name=name,
        namespace=namespace,
        owner_references=[pod.owner] if pod.owner else None,
        labels={"app.kubernetes.io/part-of": "qwenflow", "qwenflow.dev/stage": stage},
    )


def to_manifest(obj) -> dict:
    """A JSON-ready manifest from either SDK's model (pydantic for Trainer v2, OpenAPI classes for v1)."""
    if hasattr(obj, "model_dump"):
        return k8s.ApiClient().sanitize_for_serialization(obj.to_dict())
    return k8s.ApiClient().sanitize_for_serialization(obj)


def train_job(name: str, namespace: str, res, args: list[str], pod: JobPod, *, stage: str = ""):
    """A Trainer v2 TrainJob: `res.nodes` nodes x `res.gpus` processes of the torch-distributed runtime."""
    # lazy: 1.7 s to import, needed only here
    from kubeflow_trainer_api import models as t

    def core(model_cls, obj):  # the Trainer SDK embeds its own copies of the core Kubernetes models
        return model_cls.from_dict(k8s.ApiClient().sanitize_for_serialization(obj))

    volumes, mounts = _volumes(pod)
    pod_patch = t.TrainerV1alpha1PodSpecPatch(
        node_selector=_node_selector(res) or None,
        tolerations=[
            t.IoK8sApiCoreV1Toleration(key=x.key, operator=x.operator, value=x.value, effect=x.effect)
            for x in res.tolerations
        ]
        or None,
        volumes=[core(t.IoK8sApiCoreV1Volume, v) for v in volumes],
        containers=[
            t.TrainerV1alpha1ContainerPatch(
                name=NODE, volume_mounts=[core(t.IoK8sApiCoreV1VolumeMount, m) for m in mounts]
            )
        ],
        service_account_name=pod.service_account,
    )
    patch = t.TrainerV1alpha1RuntimePatch(
        manager=MANAGER,
        training_runtime_spec=t.TrainerV1alpha1TrainingRuntimeSpecPatch(
            template=t.TrainerV1alpha1JobSetTemplatePatch(
                spec=t.TrainerV1alpha1JobSetSpecPatch(
                    replicated_jobs=[
                        t.TrainerV1alpha1ReplicatedJobPatch(
                            name=NODE,
                            template=t.TrainerV1alpha1JobTemplatePatch(
                                spec=t.TrainerV1alpha1JobSpecPatch(
                                    template=t.TrainerV1alpha1PodTemplatePatch(spec=pod_patch)
                                )
                            ),
                        )
                    ]
                )
            )
        ),
    )
    trainer = t.TrainerV1alpha1Trainer(
        image=pod.image,
        command=list(ENTRY),
        args=list(args),
        num_nodes=res.nodes,
        num_proc_per_node=max(res.gpus, 1),
        resources_per_node=core(t.IoK8sApiCoreV1ResourceRequirements, _resources(res)),
        env=[core(t.IoK8sApiCoreV1EnvVar, e) for e in _env(pod)],
    )
    return t.TrainerV1alpha1TrainJob(
        api_version=TRAINJOB.api_version,
        kind=TRAINJOB.kind,
        metadata=core(t.IoK8sApimachineryPkgApisMetaV1ObjectMeta, _metadata(name, namespace, pod, stage)),
        spec=t.TrainerV1alpha1TrainJobSpec(
            runtime_ref=t.TrainerV1alpha1RuntimeRef(name=RUNTIME),
            trainer=trainer,
            runtime_patches=[patch],
            active_deadline_seconds=res.timeout_s,
        ),
    )


def pytorchjob(name: str, namespace: str, res, args: list[str], pod: JobPod, *, stage: str = ""):
    """A v1 PyTorchJob: 1 master + (nodes-1) workers, `res.gpus` processes per node."""
    # lazy: 45 ms to import, needed only here
    from kubeflow.training import models as m
    from kubeflow.training.constants import constants as c

    volumes, mounts = _volumes(pod)
    container = k8s.V1Container(
        name=c.PYTORCHJOB_CONTAINER,
        image=pod.image,
        command=list(ENTRY),
        args=list(args),
        resources=_resources(res),
        env=_env(pod),
        volume_mounts=mounts,
    )
    template = k8s.V1PodTemplateSpec(
        metadata=k8s.V1ObjectMeta(annotations={"sidecar.istio.io/inject": "false"}),
        spec=k8s.V1PodSpec(
            containers=[container],
            node_selector=_node_selector(res) or None,
            volumes=volumes,
            service_account_name=pod.service_account,
            tolerations=[
                k8s.V1Toleration(key=x.key, operator=x.operator, value=x.value, effect=x.effect)
                for x in res.tolerations
            ]
            or None,
        ),
    )
    replicas = {"Master": m.KubeflowOrgV1ReplicaSpec(replicas=1, restart_policy="OnFailure", template=template)}
    if res.nodes > 1:
        replicas["Worker"] = m.KubeflowOrgV1ReplicaSpec(
            replicas=res.nodes - 1, restart_policy="OnFailure", template=template
        )
    return m.KubeflowOrgV1PyTorchJob(
        api_version=PYTORCHJOB.api_version,
        kind=PYTORCHJOB.kind,
        metadata=_metadata(name, namespace, pod, stage),
        spec=m.KubeflowOrgV1PyTorchJobSpec(
            nproc_per_node=str(max(res.gpus, 1)),
            pytorch_replica_specs=replicas,
            run_policy=m.KubeflowOrgV1RunPolicy(
                backoff_limit=res.retries, active_deadline_seconds=res.timeout_s, clean_pod_policy="None"
            ),
        ),
    )


# ---------------------------------------------------------------- following a job


def _conditions(job: dict) -> list[dict]:
    return ((job or {}).get("status") or {}).get("conditions") or []


def finished(job: dict, kind: Kind) -> str | None:
    """'succeeded', 'failed' or None (still running) from the job's conditions."""
    for cond in _conditions(job):
        if cond.get("status") == "True" and cond.get("type") == kind.succeeded:
            return "succeeded"
        if cond.get("status") == "True" and cond.get("type") == kind.failed:
            return "failed"
    return None


def wait(name: str, namespace: str, api=None, poll_s: float = POLL_S, log=print, kind: Kind = TRAINJOB) -> dict:
    """Follow the job's conditions until it succeeds (returns its status) or fails (raises with its reason)."""
    api = api or k8s.CustomObjectsApi()
    seen: set[tuple] = set()
    while True:
        job = api.get_namespaced_custom_object(kind.group, kind.version, namespace, kind.plural, name)
        for cond in _conditions(job):
            key = (cond.get("type"), cond.get("status"), cond.get("lastTransitionTime"))
            if key not in seen:
                seen.add(key)
                log(
                    f"[{name}] {cond.get('type')}={cond.get('status')}: "
                    f"{cond.get('reason', '')} {cond.get('message', '')}"
                )
            if cond.get("status") == "True" and cond.get("type") == kind.succeeded:
                return job.get("status") or {}
            if cond.get("status") == "True" and cond.get("type") == kind.failed:
                raise RuntimeError(
                    f"{kind.kind} {namespace}/{name} failed: {cond.get('reason')}: {cond.get('message')}"
                )
        time.sleep(poll_s)


def _delete(api, kind: Kind, namespace: str, name: str, log=print, wait_gone_s: float = 300, poll_s: float = 2) -> None:
    """Delete the job and its pods (foreground propagation) and wait until the API no longer has it."""
    try:
        api.delete_namespaced_custom_object(
            kind.group,
            kind.version,
            namespace,
            kind.plural,
            name,
            body=k8s.V1DeleteOptions(propagation_policy="Foreground"),
        )
    except k8s.ApiException as e:
        if e.status != 404:
            raise
        return
    log(f"[{name}] deleting {kind.kind}")
    deadline = time.monotonic() + wait_gone_s
    while time.monotonic() < deadline:
        try:
            api.get_namespaced_custom_object(kind.group, kind.version, namespace, kind.plural, name)
        except k8s.ApiException as e:
            if e.status == 404:
                return
            raise
        time.sleep(poll_s)
    raise TimeoutError(f"{kind.kind} {namespace}/{name} was not deleted within {wait_gone_s:.0f} s")


def submit(api, kind: Kind, manifest: dict, log=print, poll_s: float = 2, state=None) -> str:
    """Create the job; if a job of that name exists (a retried step): reuse it when it succeeded, replace it when it
    failed, adopt it when it runs. Returns 'created', 'reused' or 'adopted'. `state(job)` reads 'succeeded' /
    'failed' / None from a job (default: its conditions, `finished`)."""
    state = state or (lambda job: finished(job, kind))
    ns, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
    try:
        api.create_namespaced_custom_object(kind.group, kind.version, ns, kind.plural, manifest)
        return "created"
    except k8s.ApiException as e:
        if e.status != 409:
            raise
    old = api.get_namespaced_custom_object(kind.group, kind.version, ns, kind.plural, name)
    now = state(old)
    if now == "succeeded":
        log(f"[{name}] an earlier attempt's {kind.kind} succeeded: reusing its output")
        return "reused"
    if now == "failed":
        log(f"[{name}] an earlier attempt's {kind.kind} failed: replacing it (training resumes from its checkpoints)")
        _delete(api, kind, ns, name, log, poll_s=poll_s)
        api.create_namespaced_custom_object(kind.group, kind.version, ns, kind.plural, manifest)
        return "created"
    owners = manifest["metadata"].get("ownerReferences")
    if owners:  # the earlier attempt's pod is gone or going: this step owns the running job now
        api.patch_namespaced_custom_object(
            kind.group, kind.version, ns, kind.plural, name, {"metadata": {"ownerReferences": owners}}
        )
    log(f"[{name}] following the {kind.kind} an earlier attempt started")
    return "adopted"


def run_job(
    api,
    kind: Kind,
    manifest: dict,
    *,
    poll_s: float = POLL_S,
    log=print,
    follow=None,
    state=None,
    delete_when_done: bool = False,
) -> dict:
    """Submit and follow a job (`follow()` returns its final status; default: `wait` on its conditions). If this step
    is stopped (SIGTERM from Kubernetes, Ctrl-C) or the job fails, the job is deleted before the error propagates,
    so nothing keeps GPUs busy for a run that is over; delete_when_done deletes it after success too."""
    ns, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
    follow = follow or (lambda: wait(name, ns, api, poll_s=poll_s, log=log, kind=kind))

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop) if _main_thread() else None
    try:
        how = submit(api, kind, manifest, log=log, state=state)
        if how == "reused":
            status = api.get_namespaced_custom_object(kind.group, kind.version, ns, kind.plural, name).get("status")
        else:
            status = follow()
    except BaseException:
        _delete(api, kind, ns, name, log)
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if delete_when_done:
        _delete(api, kind, ns, name, log)
    return status or {}


def _main_thread() -> bool:

    return threading.current_thread() is threading.main_thread()


# ---------------------------------------------------------------- from a KFP step


def _namespace() -> str:
    path = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
    return path.read_text().strip() if path.is_file() else os.environ.get("QWENFLOW_NAMESPACE", "kubeflow")


def step_pod_owner(namespace: str, core_api=None) -> dict | None:
    """ownerReference to this step's pod (its name is the hostname), or None outside a pod."""
    name = os.environ.get("HOSTNAME")
    if not name:
        return None
    core_api = core_api or k8s.CoreV1Api()
    try:
        pod = core_api.read_namespaced_pod(name, namespace)
    except k8s.ApiException:
        return None
    return {"apiVersion": "v1", "kind": "Pod", "name": name, "uid": pod.metadata.uid, "blockOwnerDeletion": False}


def in_cluster_api():
    """The custom-objects API with the step pod's own service-account token."""

    config.load_incluster_config()
    return k8s.CustomObjectsApi()


def step_job_pod(mount: str, run_id: str, namespace: str, core_api=None, **env: str) -> JobPod:
    """What a job launched by a pipeline step inherits from it: image, shared volume, the jobs' service account,
    an ownerReference to the step's pod (the job goes with the run), and the run's identifiers."""
    return JobPod(
        image=os.environ["QWENFLOW_IMAGE"],
        pvc=os.environ["QWENFLOW_PVC"],
        mount_path=mount,
        service_account=os.environ.get("QWENFLOW_SERVICE_ACCOUNT"),
        owner=step_pod_owner(namespace, core_api),
        env={
            "QWENFLOW_PARENT_RUN_ID": os.environ.get("QWENFLOW_PARENT_RUN_ID", ""),
            "KFP_RUN_ID": run_id,
            "HF_HUB_OFFLINE": "1",
            **env,
        },
    )


def job_name(stage: str, run_id: str) -> str:
    # Kubernetes names allow no underscore: `long_context` -> `qwenflow-long-context-<run>`
    return f"qwenflow-{stage.replace('_', '-')}-{run_id}"[:63].rstrip("-").lower()


def run_as_trainjob(
    stage: str, recipe, recipe_path: str, inputs: dict[str, str | None], work: Path, res, *, api=None, core_api=None
) -> dict:
    """Stage inputs on the shared volume, run the stage as a multi-node job writing into `work`, follow it."""
    mount = os.environ.get("QWENFLOW_PVC_MOUNT")
    if not mount or not str(work).startswith(mount):
        raise RuntimeError(
            f"{stage} asks for {res.nodes} nodes: that needs the shared volume (QWENFLOW_PVC_MOUNT) "
            "that compiled pipelines mount; local runs use one node (set resources.nodes=1)"
        )
    run_id = os.environ.get("KFP_RUN_ID", "manual")
    staged = Path(mount) / "work" / run_id / f"{stage}-inputs"
    args = [stage, "--out", str(work), "--resume"]
    for key, path in {"recipe": recipe_path, **inputs}.items():
        if path:
            dest = staged / key
            if not dest.exists():  # pod-local artifact paths are invisible to the job's pods: copy them over once
                (shutil.copytree if Path(path).is_dir() else shutil.copy2)(path, dest)
            args += ["--recipe", str(dest)] if key == "recipe" else ["--input", f"{key}={dest}"]
    api = api or in_cluster_api()
    ns = _namespace()
    name = job_name(stage, run_id)
    pod = step_job_pod(mount, run_id, ns, core_api, QWENFLOW_WORK_DIR=os.environ.get("QWENFLOW_WORK_DIR", ""))
    kind = KINDS[res.launcher]
    build = train_job if kind is TRAINJOB else pytorchjob
    run_job(api, kind, to_manifest(build(name, ns, res, args, pod, stage=stage)))

    return {"model_dir": str(work), **read_entry_result(work), "job": f"{kind.kind}/{ns}/{name}", "nodes": res.nodes}

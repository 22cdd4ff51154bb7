"""The data stage on a Ray cluster through KubeRay: a `RayJob` (ray.io/v1) that brings up a RayCluster sized by the
recipe's data.resources, runs `python -m qwenflow.orchestration.entry prepare-data ...` on it (Ray Data connects
to the cluster through the RAY_ADDRESS the job's driver gets) and writes the datasets onto the shared volume.

Its life is the KFP step's, as the training jobs' are (trainjob.py): an ownerReference to the step's pod; the step
creates it, follows jobDeploymentStatus/jobStatus, and deletes it when the job ends (succeeded or failed) or the
step is stopped (SIGTERM from a terminated run, Ctrl-C); a retried step reuses a succeeded job's output and
replaces a failed one. shutdownAfterJobFinishes also has KubeRay tear the RayCluster down if the step is gone.
"""

from __future__ import annotations

import os
import shlex
import time
from pathlib import Path
from typing import Any

from . import trainjob
from .launch import read_entry_result
from .trainjob import SECRET_KEYS, JobPod, Kind, _namespace, in_cluster_api, job_name, step_job_pod

RAYJOB = Kind("ray.io", "v1", "rayjobs", "RayJob", succeeded="Complete")
RAY_VERSION = "2.60.0"  # the ray pinned in requirements.txt: the image's Ray must match the cluster's
POLL_S = 15
MARKER = "QWENFLOW_IN_RAYJOB"  # set inside the job, so the stage there runs on Ray instead of launching again


def on_cluster() -> bool:
    """A compiled pipeline's step (the shared volume is mounted), not already inside a RayJob."""
    return (
        bool(os.environ.get("QWENFLOW_PVC_MOUNT")) and not os.environ.get(MARKER) and not os.environ.get("RAY_ADDRESS")
    )


def _container(name: str, pod: JobPod, res, command: list[str] | None = None) -> dict:
    amounts = {"cpu": res.cpu, "memory": res.memory}
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in pod.env.items()]
    env += [
        {"name": k, "valueFrom": {"secretKeyRef": {"name": pod.mlflow_secret, "key": k, "optional": True}}}
        for k in SECRET_KEYS
    ]
    c: dict[str, Any] = {
        "name": name,
        "image": pod.image,
        "resources": {"requests": dict(amounts), "limits": dict(amounts)},
        "env": env,
        "volumeMounts": [{"name": "work", "mountPath": pod.mount_path}, {"name": "dshm", "mountPath": "/dev/shm"}],
    }  # Ray's object store lives in /dev/shm
    if command:
        c["command"] = command
    return c


def _pod_template(name: str, pod: JobPod, res) -> dict:
    spec: dict[str, Any] = {
        "containers": [_container(name, pod, res)],
        "volumes": [
            {"name": "work", "persistentVolumeClaim": {"claimName": pod.pvc}},
            {"name": "dshm", "emptyDir": {"medium": "Memory"}},
        ],
    }
    selector = {**({"nvidia.com/gpu.product": res.gpu_product} if res.gpu_product else {}), **res.node_selector}
    if selector:
        spec["nodeSelector"] = selector
    if res.tolerations:
        spec["tolerations"] = [{k: v for k, v in t.model_dump().items() if v is not None} for t in res.tolerations]
    if pod.service_account:
        spec["serviceAccountName"] = pod.service_account
    return {"metadata": {"annotations": {"sidecar.istio.io/inject": "false"}}, "spec": spec}


def rayjob(name: str, namespace: str, data_spec, args: list[str], pod: JobPod, *, stage: str = "prepare_data") -> dict:
    """The RayJob manifest: head + (resources.nodes - 1) workers, each with data.resources' CPU and memory."""
    res = data_spec.resources
    start = {"object-store-memory": str(data_spec.ray_object_store_mb << 20)} if data_spec.ray_object_store_mb else {}
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": {"app.kubernetes.io/part-of": "qwenflow", "qwenflow.dev/stage": stage},
    }
    if pod.owner:
        metadata["ownerReferences"] = [pod.owner]
    cluster: dict[str, Any] = {
        "rayVersion": RAY_VERSION,
        "headGroupSpec": {
            "rayStartParams": {"dashboard-host": "0.0.0.0", **start},
            "template": _pod_template("ray-head", pod, res),
        },
    }
    if res.nodes > 1:
        cluster["workerGroupSpecs"] = [
            {
                "groupName": "data",
                "replicas": res.nodes - 1,
                "minReplicas": res.nodes - 1,
                "maxReplicas": res.nodes - 1,
                "rayStartParams": dict(start),
                "template": _pod_template("ray-worker", pod, res),
            }
        ]
    return {
        "apiVersion": RAYJOB.api_version,
        "kind": RAYJOB.kind,
        "metadata": metadata,
        "spec": {
            "entrypoint": shlex.join(["python", "-m", "qwenflow.orchestration.entry", *args]),
            "submissionMode": "K8sJobMode",
            "shutdownAfterJobFinishes": True,
            "ttlSecondsAfterFinished": 300,
            "activeDeadlineSeconds": res.timeout_s,
            "backoffLimit": res.retries,
            "rayClusterSpec": cluster,
        },
    }


def finished(job: dict) -> str | None:
    """'succeeded', 'failed' or None (still running), from KubeRay's jobDeploymentStatus and the Ray job's status."""
    status = (job or {}).get("status") or {}
    deployment, ray_status = status.get("jobDeploymentStatus"), status.get("jobStatus")
    if deployment == "Complete":
        return "succeeded" if ray_status == "SUCCEEDED" else "failed"
    if deployment in ("Failed", "ValidationFailed"):
        return "failed"
    return None


def wait(api, namespace: str, name: str, poll_s: float = POLL_S, log=print) -> dict:
    """Follow the job until it ends: its status when it succeeded, RuntimeError with KubeRay's reason when not."""
    seen = None
    while True:
        job = api.get_namespaced_custom_object(RAYJOB.group, RAYJOB.version, namespace, RAYJOB.plural, name)
        status = job.get("status") or {}
        now = (status.get("jobDeploymentStatus"), status.get("jobStatus"))
        if now != seen:
            seen = now
            log(f"[{name}] RayJob {now[0] or 'New'}, Ray job {now[1] or '-'} {status.get('message', '')}".rstrip())
        state = finished(job)
        if state == "succeeded":
            return status
        if state == "failed":
            raise RuntimeError(
                f"RayJob {namespace}/{name} failed: {status.get('reason') or status.get('jobStatus')}: "
                f"{status.get('message', '')}"
            )
        time.sleep(poll_s)


def submit(api, manifest: dict, log=print) -> str:
    """trainjob.submit for a RayJob (reused if it succeeded, replaced if it failed, adopted if it runs)."""
    return trainjob.submit(api, RAYJOB, manifest, log=log, state=finished)


def run_job(api, manifest: dict, *, poll_s: float = POLL_S, log=print) -> dict:
    """Submit, follow, and delete the job whatever happens: done, failed, or this step stopped (SIGTERM); its
    RayCluster and pods go with it."""
    ns, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
    return trainjob.run_job(
        api,
        RAYJOB,
        manifest,
        log=log,
        state=finished,
        delete_when_done=True,
        follow=lambda: wait(api, ns, name, poll_s=poll_s, log=log),
    )


def run_as_rayjob(
    stage: str, recipe, work: str | Path, *, api=None, core_api=None, poll_s: float | None = None
) -> dict:
    """From a KFP step: run `stage` as a RayJob writing into `work` (on the shared volume), follow it, return the
    stage's result as the job wrote it."""
    # lazy: 367 ms to import, needed only here
    from qwenflow.recipe import recipe_to_yaml

    mount = os.environ["QWENFLOW_PVC_MOUNT"]
    work = Path(work)
    if not str(work.resolve()).startswith(str(Path(mount).resolve())):
        raise RuntimeError(
            f"{stage} on Ray writes {work}, which is not on the shared volume {mount} the RayJob's "
            "pods mount; compiled pipelines set QWENFLOW_WORK_DIR there"
        )
    run_id = os.environ.get("KFP_RUN_ID", "manual")
    recipe_file = Path(mount) / "work" / run_id / f"{stage}-inputs" / "recipe.yaml"
    recipe_file.parent.mkdir(parents=True, exist_ok=True)
    recipe_file.write_text(recipe_to_yaml(recipe), encoding="utf-8")  # the resolved recipe, overrides included
    api = api or in_cluster_api()
    ns = _namespace()
    name = job_name(stage, run_id)
    pod = step_job_pod(mount, run_id, ns, core_api, **{MARKER: "1"})
    args = [stage, "--recipe", str(recipe_file), "--out", str(work)]
    run_job(api, rayjob(name, ns, recipe.data, args, pod, stage=stage), poll_s=POLL_S if poll_s is None else poll_s)
    return {**read_entry_result(work), "rayjob": f"{ns}/{name}", "nodes": recipe.data.resources.nodes}

"""Helm values for the qwenflow-serving chart, from a registered model and the recipe's deploy section."""

from __future__ import annotations

import os
from pathlib import Path

from qwenflow.serving.settings import FROM_RECIPE
from qwenflow.tracking.model_source import SHA256_TAG, model_version, parse_registry_uri

CHART_DIR = Path(__file__).resolve().parents[3] / "helm" / "qwenflow-serving"


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(w.title() for w in rest)


def helm_values(
    model_uri: str,
    deploy,
    *,
    tracking_uri: str | None = None,
    credentials_secret: str = "",
    check_registry: bool = True,
    recipe=None,
    api_key_secret: str = "",
) -> dict:
    """Values that serve `model_uri` (models:/NAME@ALIAS) as the recipe's deploy section asks (`recipe`, when
    given, supplies the trained context length and long-context settings the vLLM engine needs)."""

    name, alias, version = parse_registry_uri(model_uri)
    tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    if not tracking_uri:
        raise ValueError(
            "no MLflow tracking URI: pass --tracking-uri (the address pods use, e.g. "
            "http://mlflow.qwenflow-platform.svc:5000) or set MLFLOW_TRACKING_URI"
        )
    annotations = {"qwenflow.io/model-uri": model_uri}
    served_uri = model_uri
    if check_registry:  # pin the version the alias points at now: upgrades roll when it moves, rollbacks restore it
        mv = model_version(model_uri)
        served_uri = f"models:/{name}/{mv.version}"
        annotations["qwenflow.io/model-version"] = str(mv.version)
        annotations["qwenflow.io/model-sha256"] = (mv.tags or {}).get(SHA256_TAG, "")
    repo, _, tag = deploy.image.rpartition(":")
    if not repo or "/" in tag:
        repo, tag = deploy.image, "latest"
    res = deploy.resources
    values = {
        "image": {"repository": repo, "tag": tag},
        "model": {
            "source": "registry",
            "uri": served_uri,
            "servedName": name,
            "mlflow": {"trackingUri": tracking_uri, "credentialsSecret": credentials_secret},
        },
        # the chart's QWENFLOW_* env: the fields serving.settings.Settings takes from the recipe, camelCased
        "serving": {_camel(k): getattr(deploy, k) for k in FROM_RECIPE},
        "gpu": {"count": res.gpus, "resourceName": res.gpu_type or "nvidia.com/gpu", "product": res.gpu_product or ""},
        "resources": {
            "requests": {"cpu": res.cpu, "memory": res.memory},
            "limits": {"cpu": res.cpu, "memory": res.memory},
        },
        "replicaCount": deploy.replicas,
        "autoscaling": {"minReplicas": deploy.replicas, "maxReplicas": max(deploy.replicas, 4)},
        "nodeSelector": dict(res.node_selector),
        "tolerations": [t.model_dump(exclude_none=True) for t in res.tolerations],
        "podAnnotations": annotations,
        "engine": deploy.engine,
    }
    if api_key_secret:
        values["apiKey"] = {"existingSecret": api_key_secret}
    if deploy.engine == "vllm":
        if recipe is None:
            raise ValueError("engine vllm needs the recipe (its trained context length and YaRN/DCA settings)")
        # lazy: imports torch, transformers, accelerate (seconds to import)
        from qwenflow.deploy.vllm_args import vllm_values

        values["vllm"] = vllm_values(recipe)
    validate_values(values)
    return values


def validate_values(values: dict, chart_dir: Path = CHART_DIR) -> None:
    """Check values against the chart's values.schema.json (merged over its defaults, as Helm does)."""
    # lazy: 56 ms to import, needed only here
    import helm_python

    chart = helm_python.Chart.load(chart_dir)
    try:
        chart.validate_schema(chart.merge_values(values))
    except helm_python.HelmValuesError as e:
        raise ValueError(f"helm values rejected by {chart_dir / 'values.schema.json'}: {e}") from None
    finally:
        chart.close()

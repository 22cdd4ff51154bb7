"""The serving chart lints, renders into manifests valid for Kubernetes 1.29 and 1.33 (kubernetes-validate
--strict), refuses an install without a model source, and renders both engines (BentoML, upstream vLLM) with the
cluster features users expect. Offline: Helm's engine from helm-python-sdk."""

from __future__ import annotations

import json

import helm_python
import pytest

from qwenflow.deploy.helm_values import CHART_DIR
from tests.infra.manifests import documents, validate

REGISTRY = {
    "model": {
        "source": "registry",
        "uri": "models:/qwen-7b@champion",
        "mlflow": {"trackingUri": "http://mlflow.qwenflow-platform.svc:5000", "credentialsSecret": "mlflow-creds"},
    }
}
GPU_REGISTRY = {
    **REGISTRY,
    "gpu": {"count": 1, "product": "NVIDIA-H100-80GB-HBM3"},
    "serving": {"yarn": True, "maxTokensLimit": 8192},
    "resources": {"requests": {"cpu": "8", "memory": "64Gi"}, "limits": {"cpu": "16", "memory": "96Gi"}},
    "ingress": {"enabled": True, "className": "nginx", "host": "llm.example.com", "tlsSecret": "llm-tls"},
    "tolerations": [{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}],
    "apiKey": {"existingSecret": "llm-api-key"},
    "priorityClassName": "serving-high",
    "modelCache": {"existingClaim": "model-cache"},
}
PVC = {"model": {"source": "pvc", "pvc": {"claimName": "models", "path": "qwen/7b"}}, "autoscaling": {"enabled": False}}
VLLM = {
    **REGISTRY,
    "engine": "vllm",
    "gpu": {"count": 4, "product": "NVIDIA-H100-80GB-HBM3"},
    "apiKey": {"existingSecret": "llm-api-key", "secretKey": "token"},
}


@pytest.fixture(scope="module")
def chart():
    c = helm_python.Chart.load(CHART_DIR)
    yield c
    c.close()


def render(chart, values):
    return chart.render(values, name="llm", namespace="serving", is_install=True)


def by_kind(docs):
    return {d["kind"]: d for d in docs}


def server(docs):
    pod = by_kind(docs)["Deployment"]["spec"]["template"]["spec"]
    return pod, next(c for c in pod["containers"] if c["name"] == "server")


def test_lint_is_clean():
    result = helm_python.lint(CHART_DIR, REGISTRY, strict=True)
    assert result["errors"] == [], result
    assert all(m["severity"] <= 1 for m in result["messages"]), result["messages"]  # info only (icon)


def test_install_without_a_model_source_fails_and_says_so(chart):
    with pytest.raises(helm_python.HelmError, match=r"/model.*missing property 'source'"):
        render(chart, {})
    with pytest.raises(helm_python.HelmError, match="uri"):
        render(chart, {"model": {"source": "registry"}})


@pytest.mark.parametrize("values", [REGISTRY, GPU_REGISTRY, PVC, VLLM], ids=["registry", "gpu-registry", "pvc", "vllm"])
def test_renders_valid_manifests_with_a_helm_test_and_no_servicemonitor_without_its_crd(chart, values):
    rendered = render(chart, values)
    docs = documents(rendered)
    problems = [p for d in docs for p in validate(d)]
    assert problems == []
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "PodDisruptionBudget", "ServiceAccount", "Pod"} <= kinds
    assert "ServiceMonitor" not in kinds  # the Prometheus Operator CRD is absent: no failed install
    (test_pod,) = [d for d in docs if d["kind"] == "Pod"]
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert test_pod["spec"]["containers"][0]["env"][0]["value"] == "http://llm-qwenflow-serving:80/v1/models"
    assert "Capabilities.APIVersions.Has" in (CHART_DIR / "templates" / "servicemonitor.yaml").read_text()


def test_pod_is_hardened_probed_and_drains(chart):
    pod, c = server(documents(render(chart, REGISTRY)))
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["automountServiceAccountToken"] is False
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"] and sc["capabilities"]["drop"] == ["ALL"]
    assert c["startupProbe"]["httpGet"]["path"] == "/readyz" and c["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert c["resources"]["limits"]["memory"] == "16Gi" and "nvidia.com/gpu" not in c["resources"]["limits"]
    assert {m["mountPath"] for m in c["volumeMounts"]} >= {"/tmp", "/var/cache/qwenflow"}  # writable under ro rootfs
    assert c["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "15"]
    assert pod["terminationGracePeriodSeconds"] > 15
    (spread,) = pod["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["labelSelector"]["matchLabels"]["app.kubernetes.io/instance"] == "llm"


def test_gpu_registry_values_reach_the_pod(chart):
    docs = by_kind(documents(render(chart, GPU_REGISTRY)))
    pod, c = server(list(docs.values()))
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert {t["key"] for t in pod["tolerations"]} == {"nvidia.com/gpu", "spot"}
    assert pod["priorityClassName"] == "serving-high"
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["QWENFLOW_MODEL"] == "models:/qwen-7b@champion" and env["QWENFLOW_YARN"] == "true"
    assert env["MLFLOW_TRACKING_URI"].startswith("http://mlflow.")
    assert c["envFrom"] == [{"secretRef": {"name": "mlflow-creds"}}]
    # The API key: a file from the Secret, named by QWENFLOW_API_KEY_FILE (never a value in the chart).
    key_file = env["QWENFLOW_API_KEY_FILE"]
    mount = next(m for m in c["volumeMounts"] if m["name"] == "api-key")
    assert key_file.startswith(mount["mountPath"] + "/") and mount["readOnly"]
    secret = next(v for v in pod["volumes"] if v["name"] == "api-key")["secret"]
    assert secret == {"secretName": "llm-api-key", "items": [{"key": "api-key", "path": key_file.rsplit("/", 1)[1]}]}
    cache = next(v for v in pod["volumes"] if v["name"] == "model-cache")
    assert cache == {"name": "model-cache", "persistentVolumeClaim": {"claimName": "model-cache"}}
    hpa = docs["HorizontalPodAutoscaler"]["spec"]["metrics"][0]
    assert hpa["type"] == "Pods" and hpa["pods"]["metric"]["name"] == "bentoml_service_request_in_progress"
    ingress = docs["Ingress"]
    assert ingress["spec"]["tls"][0]["hosts"] == ["llm.example.com"]
    ann = ingress["metadata"]["annotations"]  # streamed tokens are not buffered by ingress-nginx
    assert ann["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert int(ann["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 600
    test_pod = docs["Pod"]["spec"]["containers"][0]
    assert {"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "llm-api-key", "key": "api-key"}}} in test_pod[
        "env"
    ]


def test_pvc_source_mounts_the_claim(chart):
    docs = by_kind(documents(render(chart, PVC)))
    pod, c = server(list(docs.values()))
    assert {"name": "model", "persistentVolumeClaim": {"claimName": "models", "readOnly": True}} in pod["volumes"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["QWENFLOW_MODEL"] == "/models/qwen/7b" and "QWENFLOW_API_KEY_FILE" not in env
    assert "HorizontalPodAutoscaler" not in docs and docs["Deployment"]["spec"]["replicas"] == 1


def test_bentoml_engine_refuses_gpus_it_would_not_use(chart):
    with pytest.raises(helm_python.HelmError, match="engine bentoml serves on one GPU but gpu.count is 2.*engine=vllm"):
        render(chart, {**REGISTRY, "gpu": {"count": 2}})
    with pytest.raises(helm_python.HelmError, match="engine vllm needs gpu.count >= 1"):
        render(chart, {**REGISTRY, "engine": "vllm"})


def test_vllm_engine_serves_with_tensor_parallelism_the_api_key_and_a_verified_model(chart):
    pod, c = server(documents(render(chart, VLLM)))
    assert c["image"].startswith("vllm/vllm-openai:v") and c["command"] == ["vllm", "serve"]
    args = c["args"]
    assert args[0] == "/var/cache/qwenflow/model"  # what the init container fetched and verified
    assert "--tensor-parallel-size=4" in args and "--served-model-name=qwen-7b" in args and "--port=8000" in args
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 4
    assert c["ports"][0]["containerPort"] == 8000 and c["readinessProbe"]["httpGet"]["path"] == "/health"
    env = {e["name"]: e for e in c["env"]}
    assert env["VLLM_API_KEY"]["valueFrom"] == {"secretKeyRef": {"name": "llm-api-key", "key": "token"}}
    assert not any("api-key" in a for a in args)  # the key is never on the command line
    (init,) = pod["initContainers"]
    assert init["image"] == "ghcr.io/qwenflow/serving:0.1.0"
    assert init["command"] == ["python", "-m", "qwenflow.deploy.fetch_model"]
    assert init["args"][:2] == ["--source=models:/qwen-7b@champion", "--dest=/var/cache/qwenflow/model"]
    assert {"name": "model-cache", "mountPath": "/var/cache/qwenflow"} in init["volumeMounts"]
    assert init["envFrom"] == [{"secretRef": {"name": "mlflow-creds"}}]


def test_vllm_arguments_carry_the_recipes_context_and_long_context_settings(chart):
    from qwenflow.deploy.helm_values import helm_values
    from qwenflow.recipe import load_recipe

    recipe = load_recipe(
        "qwen2.5-7b", ["deploy.engine=vllm", "deploy.yarn=true", "deploy.attention=dca", "deploy.resources.gpus=4"]
    )
    values = helm_values(
        "models:/qwen2.5-7b@champion",
        recipe.deploy,
        tracking_uri="http://mlflow:5000",
        check_registry=False,
        recipe=recipe,
        api_key_secret="llm-api-key",
    )
    trained = recipe.long_context.seq_lens[-1]
    assert values["engine"] == "vllm" and values["gpu"]["count"] == 4
    v = values["vllm"]
    assert v["maxModelLen"] == int(trained * recipe.long_context.yarn_factor)
    assert v["hfOverrides"]["rope_parameters"] == {
        "rope_type": "yarn",
        "factor": recipe.long_context.yarn_factor,
        "original_max_position_embeddings": trained,
        "rope_theta": recipe.long_context.rope_theta,
    }
    assert v["hfOverrides"]["dual_chunk_attention_config"]["chunk_size"] == trained and v["dualChunkAttention"]
    pod, c = server(documents(render(chart, values)))
    args = c["args"]
    assert f"--max-model-len={v['maxModelLen']}" in args and "--tensor-parallel-size=4" in args
    overrides = json.loads(next(a for a in args if a.startswith("--hf-overrides=")).split("=", 1)[1])
    assert overrides == v["hfOverrides"]
    assert {"--enforce-eager", "--enable-chunked-prefill", "--max-num-batched-tokens=131072"} <= set(args)
    assert {"name": "VLLM_ATTENTION_BACKEND", "value": "DUAL_CHUNK_FLASH_ATTN"} in c["env"]
    # Without YaRN/DCA the server gets the trained length and no overrides.
    plain = load_recipe(
        "qwen2.5-7b", ["deploy.engine=vllm", "deploy.yarn=false", "deploy.attention=sdpa", "deploy.resources.gpus=2"]
    )
    pv = helm_values("models:/m/3", plain.deploy, tracking_uri="http://m", check_registry=False, recipe=plain)["vllm"]
    assert pv == {"maxModelLen": trained, "hfOverrides": {}, "dualChunkAttention": False, "maxNumBatchedTokens": 0}


@pytest.mark.parametrize(
    "bad,needle",
    [
        ({"gpu": {"count": -1}}, "count"),
        ({"model": {"source": "s3"}}, "source"),
        ({"model": {"source": "registry", "uri": "runs:/abc/model"}}, "uri"),
        ({"serving": {"attention": "flash9"}}, "attention"),
        ({"engine": "tgi"}, "engine"),
        ({"vllm": {"gpuMemoryUtilization": 1.5}}, "gpuMemoryUtilization"),
        (
            {
                "securityContext": {
                    "allowPrivilegeEscalation": True,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                }
            },
            "allowPrivilegeEscalation",
        ),
        ({"resources": {"requests": {"cpu": "lots"}, "limits": {}}}, "cpu"),
        ({"replicas": 3}, "replicas"),
    ],
)
def test_schema_rejects_bad_values(chart, bad, needle):
    bad = {**REGISTRY, **bad} if "model" not in bad else bad
    with pytest.raises(helm_python.HelmValuesError, match=needle):
        chart.validate_schema(chart.merge_values(bad))
    with pytest.raises(helm_python.HelmError):
        render(chart, bad)


def test_template_guards_catch_incomplete_sources(chart):
    with pytest.raises(helm_python.HelmError, match="trackingUri is required"):
        render(chart, {"model": {"source": "registry", "uri": "models:/m@champion"}})
    with pytest.raises(helm_python.HelmError, match="claimName"):
        render(chart, {"model": {"source": "pvc"}})
    with pytest.raises(helm_python.HelmError, match="model.source=bento is for engine bentoml"):
        render(chart, {"model": {"source": "bento"}, "engine": "vllm", "gpu": {"count": 1}})


def test_fetch_model_refuses_a_pvc_copy_with_another_hash(tiny_model_dir, tmp_path):
    from qwenflow.artifacts import sha256_path
    from qwenflow.deploy.fetch_model import main

    assert (
        main(["--source", str(tiny_model_dir), "--dest", str(tmp_path / "x"), "--sha256", sha256_path(tiny_model_dir)])
        == 0
    )
    assert main(["--source", str(tiny_model_dir), "--dest", str(tmp_path / "x"), "--sha256", "0" * 64]) == 1
    assert main(["--source", str(tmp_path), "--dest", str(tmp_path / "x")]) == 1  # not a model directory

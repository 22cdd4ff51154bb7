"""The scaling sweep compiles as a KFP pipeline: one ParallelFor task per point, GPU points, a fit after them."""

import yaml
from kfp import compiler

from qwenflow.pipelines.scaling_sweep import build_pipeline


def test_sweep_pipeline_compiles_with_parallel_points(tmp_path):
    out = tmp_path / "sweep.yaml"
    compiler.Compiler().compile(build_pipeline("registry.example/qwenflow:test", parallelism=6), str(out))
    pipeline, platform = yaml.safe_load_all(out.read_text())
    dag = pipeline["root"]["dag"]["tasks"]
    loop = next(t for t in dag.values() if "parameterIterator" in t)
    assert loop["iteratorPolicy"]["parallelismLimit"] == 6
    assert loop["parameterIterator"]["items"]["inputParameter"].endswith("Output")
    assert dag["scaling-fit"]["dependentTasks"] == [next(k for k, t in dag.items() if "parameterIterator" in t)]
    point = pipeline["deploymentSpec"]["executors"]["exec-scaling-point"]["container"]
    assert point["resources"]["accelerator"]["resourceCount"] == "1"
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-scaling-point"]
    assert k8s["pvcMount"][0]["mountPath"] == "/mnt/qwenflow" and k8s["secretAsEnv"]

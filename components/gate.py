from typing import NamedTuple

from kfp.dsl import Artifact, Input, Output


def gate(recipe: Input[Artifact], report: Input[Artifact], parent_run_id: str, kfp_run_id: str,
         verdict: Output[Artifact]) -> NamedTuple("GateOutputs", [("passed", bool), ("reasons", str)]):
    """Check the evaluation against the recipe's quality gates; registration and deployment run only if it passes.

    Args:
        recipe: Resolved recipe from start-run (eval.gates).
        report: Evaluation report from evaluate.
        parent_run_id: MLflow parent run to nest under.
        kfp_run_id: KFP run id for tagging.
        verdict: gate.json with the verdict and its reasons.

    Returns:
        passed: Whether every gate passed.
        reasons: One line per gate, why it passed or failed.
    """
    from collections import namedtuple

    from qwenflow.orchestration.stage import run_stage

    result = run_stage("gate", recipe_path=recipe.path, inputs={"report": report.path}, output=verdict.path,
                       parent_run_id=parent_run_id, kfp_run_id=kfp_run_id)
    return namedtuple("GateOutputs", ["passed", "reasons"])(bool(result["passed"]), "\n".join(result["reasons"]))

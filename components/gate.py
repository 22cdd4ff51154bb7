from kfp.dsl import Artifact, Input, Markdown, Output


def gate(
    recipe: Input[Artifact],
    report: Input[Artifact],
    parent_run_id: str,
    kfp_run_id: str,
    verdict: Output[Artifact],
    summary: Output[Markdown],
) -> bool:
    """Check the evaluation against the recipe's quality gates; registration and deployment run only if it passes.

    Args:
        recipe: Resolved recipe from start_run (eval.gates).
        report: Evaluation report from eval.
        parent_run_id: MLflow parent run to nest under.
        kfp_run_id: KFP run id for tagging.
        verdict: gate.json with the verdict and its reasons.
        summary: The step's card: verdict and reasons.

    Returns:
        Whether every gate passed (the reasons are in `verdict` and the task's log). A single bool output, not a
        NamedTuple: kfp.local cannot resolve a dsl.If on a NamedTuple field (measured with kfp 2.17.3).
    """
    from qwenflow.orchestration.stage import run_stage
    from qwenflow.tracking.stage_report import publish

    result = run_stage(
        "gate",
        recipe_path=recipe.path,
        inputs={"report": report.path},
        output=verdict.path,
        parent_run_id=parent_run_id,
        kfp_run_id=kfp_run_id,
    )
    print("\n".join(result["reasons"]))
    publish("gate", result, recipe_path=recipe.path, parent_run_id=parent_run_id)
    from pathlib import Path

    Path(summary.path).write_text(
        f"### gate: {'PASSED' if result['passed'] else 'FAILED'}\n\n" + "".join(f"- {r}\n" for r in result["reasons"]),
        encoding="utf-8",
    )
    return bool(result["passed"])

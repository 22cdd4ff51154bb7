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
    from qwenflow.pipelines.step import run_step

    result = run_step("gate", recipe, parent_run_id, kfp_run_id, verdict, {"report": report}, summary=summary)
    print("\n".join(result["reasons"]))
    return bool(result["passed"])
